/**
 * Which server the agent's calls go to (SERVER_URL with several replicas): real HTTP servers on
 * free ports standing in for replicas that fail in the ways the real one can (a 5xx, a refused
 * connection, a long-poll cut off), and the real ServerClient with its undici pools.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { freePort } from '../../test-support/processes.js';
import { firstServer } from '../src/failover.js';
import { ServerClient } from '../src/server-client.js';

interface Replica {
  url: string;
  /** `METHOD path` of every request it received, in order. */
  seen: string[];
  server: Server;
}

const replicas: Replica[] = [];
const clients: ServerClient[] = [];

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await Promise.all(
    replicas.splice(0).map(
      ({ server }) =>
        new Promise<void>((resolve) => {
          server.closeAllConnections();
          server.close(() => resolve());
        }),
    ),
  );
});

async function replica(handle: (req: IncomingMessage, res: ServerResponse, count: number) => void): Promise<Replica> {
  const seen: string[] = [];
  const server = createServer((req, res) => {
    seen.push(`${req.method} ${req.url?.split('?')[0]}`);
    req.resume();
    req.on('end', () => handle(req, res, seen.length));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const r = { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen, server };
  replicas.push(r);
  return r;
}

const renewed = (res: ServerResponse) => json(res, 200, { leaseExpiresAt: new Date(Date.now() + 30_000).toISOString(), cancelRequested: false });
function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

/** An agent id whose first server is index 0 of `count`: the tests name which replica is tried first. */
function idStartingAtFirst(count: number): string {
  for (let i = 0; ; i++) if (firstServer(`agent-${i}`, count) === 0) return `agent-${i}`;
}

/** A client over `urls` whose log lines are kept. */
function client(urls: string[]): { client: ServerClient; logs: () => Array<{ level: number; msg: string; to?: string }> } {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(...chunk.toString().split('\n').filter(Boolean));
      done();
    },
  });
  const log = pino({ level: 'debug' }, sink);
  const c = new ServerClient({ serverUrls: urls, agentId: idStartingAtFirst(urls.length), token: undefined, log });
  clients.push(c);
  return { client: c, logs: () => lines.map((l) => JSON.parse(l) as { level: number; msg: string; to?: string }) };
}

const body = { agentId: 'a', leaseId: 'lease-1' };
const beat = (c: ServerClient) => c.heartbeat('cmd-1', body, new AbortController().signal);
const switches = (logs: Array<{ msg: string }>) => logs.filter((l) => /switching to/.test(l.msg));

describe('failover between servers', () => {
  it('a 5xx moves the call to the next server at once, and later calls stay there', async () => {
    const a = await replica((_req, res) => json(res, 503, { statusCode: 503, error: 'Service Unavailable', message: 'down' }));
    const b = await replica((_req, res) => renewed(res));
    const { client: c, logs } = client([a.url, b.url]);

    expect(await beat(c)).toMatchObject({ kind: 'renewed' });
    expect(await beat(c)).toMatchObject({ kind: 'renewed' });
    expect(a.seen).toEqual(['POST /commands/cmd-1/heartbeat']);
    expect(b.seen).toEqual(['POST /commands/cmd-1/heartbeat', 'POST /commands/cmd-1/heartbeat']);
    expect(switches(logs())).toMatchObject([{ level: 40, to: b.url }]);
    expect(c.serverUrl).toBe(b.url);
  });

  it('a 4xx is an answer: no switch, nothing sent to the next server', async () => {
    const a = await replica((_req, res) => json(res, 409, { statusCode: 409, error: 'Conflict', message: 'lease lost' }));
    const b = await replica((_req, res) => renewed(res));
    const { client: c, logs } = client([a.url, b.url]);

    expect(await beat(c)).toMatchObject({ kind: 'lost' });
    expect(await c.report('cmd-1', { agentId: 'a', leaseId: 'l', status: 'COMPLETED', result: {} }, new AbortController().signal))
      .toMatchObject({ kind: 'gone', statusCode: 409 });
    expect(a.seen).toHaveLength(2);
    expect(b.seen).toEqual([]);
    expect(switches(logs())).toEqual([]);
  });

  it('a 429 is retried on the same server (slow down), not failed over', async () => {
    const a = await replica((_req, res, n) => (n === 1 ? json(res, 429, { message: 'slow down' }) : res.writeHead(204).end()));
    const b = await replica((_req, res) => res.writeHead(204).end());
    const { client: c } = client([a.url, b.url]);

    expect(await c.next(0, new AbortController().signal)).toBeUndefined();
    expect(a.seen).toEqual(['GET /commands/next', 'GET /commands/next']);
    expect(b.seen).toEqual([]);
  });

  it('a refused connection moves reports to the next server', async () => {
    const dead = `http://127.0.0.1:${await freePort()}`;
    const b = await replica((_req, res) => json(res, 404, { statusCode: 404, error: 'Not Found', message: 'no such command' }));
    const { client: c, logs } = client([dead, b.url]);

    const answer = await c.report('cmd-1', { agentId: 'a', leaseId: 'l', status: 'COMPLETED', result: {} }, new AbortController().signal);
    expect(answer).toMatchObject({ kind: 'gone', statusCode: 404 });
    expect(b.seen).toEqual(['PUT /commands/cmd-1/result']);
    expect(switches(logs())).toHaveLength(1);
    // Answered on the first try on b: p-retry never backed off.
    expect(logs().filter((l) => /retrying/.test(l.msg))).toEqual([]);
  });

  it('a long-poll cut off by a dying server is polled again on the next one at once', async () => {
    let cut: (() => void) | undefined;
    const a = await replica((req) => {
      cut = () => req.socket.destroy();
    });
    const b = await replica((_req, res) => res.writeHead(204).end());
    const { client: c, logs } = client([a.url, b.url]);

    const poll = c.next(25, new AbortController().signal);
    await expect.poll(() => a.seen.length).toBe(1);
    cut?.();
    expect(await poll).toBeUndefined();
    expect(b.seen).toEqual(['GET /commands/next']);
    expect(logs().filter((l) => /retrying/.test(l.msg))).toEqual([]);
  });

  it('calls failing together on one server switch once, with one warning', async () => {
    const a = await replica((_req, res) => json(res, 500, { message: 'boom' }));
    const b = await replica((_req, res) => renewed(res));
    const { client: c, logs } = client([a.url, b.url]);
    // Four heartbeats in flight at once on a: each fails there, only the first one switches.
    const gate: Array<() => void> = [];
    a.server.removeAllListeners('request');
    a.server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      a.seen.push(`${req.method} ${req.url}`);
      req.resume();
      gate.push(() => json(res, 500, { message: 'boom' }));
      if (gate.length === 4) for (const open of gate) open();
    });

    const answers = await Promise.all([1, 2, 3, 4].map(() => beat(c)));
    expect(answers.every((x) => x.kind === 'renewed')).toBe(true);
    expect(a.seen).toHaveLength(4);
    expect(b.seen).toHaveLength(4);
    expect(switches(logs())).toHaveLength(1);
  });

  it('when every server fails, the call fails after one try on each; the next goes round the list', async () => {
    const a = await replica((_req, res) => json(res, 502, { message: 'bad gateway' }));
    const b = await replica((_req, res) => json(res, 503, { message: 'down' }));
    const { client: c, logs } = client([a.url, b.url]);

    await expect(beat(c)).rejects.toMatchObject({ statusCode: 503, message: expect.stringMatching(/503/) });
    expect([a.seen.length, b.seen.length]).toEqual([1, 1]);
    // b failed last, so a (first after b) is current again: a comes back only by failing over to it.
    expect(c.serverUrl).toBe(a.url);
    await expect(beat(c)).rejects.toMatchObject({ statusCode: 503, message: expect.stringMatching(/503/) });
    expect([a.seen.length, b.seen.length]).toEqual([2, 2]);
    expect(switches(logs())).toHaveLength(4);
  });

  it('one server: a failure is the call failing, as before (no switch to log)', async () => {
    const a = await replica((_req, res) => json(res, 503, { message: 'down' }));
    const { client: c, logs } = client([a.url]);
    await expect(beat(c)).rejects.toMatchObject({ statusCode: 503, message: expect.stringMatching(/503/) });
    expect(a.seen).toHaveLength(1);
    expect(switches(logs())).toEqual([]);
  });

  it('a fleet given one list spreads over it by agent id; one agent always starts at the same server', () => {
    for (const count of [2, 3]) {
      const starts = new Array<number>(count).fill(0);
      for (let i = 0; i < 3000; i++) starts[firstServer(`agent-${i}`, count)]! += 1;
      for (const n of starts) expect(n).toBeGreaterThan((3000 / count) * 0.9);
    }
    expect(firstServer('7c4a0d1e-0000-4000-8000-000000000001', 2)).toBe(firstServer('7c4a0d1e-0000-4000-8000-000000000001', 2));
    expect(firstServer('anything', 1)).toBe(0);
  });
});
