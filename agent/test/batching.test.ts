/**
 * CONCURRENCY > 1 with real processes: one fetch loop claims through `/commands/next-batch` for
 * the free slots only, outcomes go back together through `PUT /commands/results`, each item's
 * answer is handled as the single route's would be, a server without the batched routes gets
 * single calls, and a SIGKILL in the middle of a batch loses nothing and runs nothing finished
 * twice (counted by a local HTTP target).
 */
import { once } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ClaimedCommand, Command } from '@agent-executor/common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor, waitForOutput, type RunningServer } from '../../test-support/processes.js';
import { openDatabase } from '../src/database.js';
import { Outbox, type OutboxEntry } from '../src/outbox.js';
import { completed } from '../src/outcome.js';
import { forward, startProxy, type Proxy } from './proxy.js';
import { api, executionsIn, isSettled, useStack, waitForCommand } from './stack.js';
import { startTarget, type Target } from './target.js';

const stack = useStack();
let target: Target;
beforeAll(async () => {
  target = await startTarget();
});
afterAll(async () => {
  await target.close();
});

async function call<T>(server: RunningServer, method: string, path: string, body?: unknown): Promise<{ status: number; json: T }> {
  const res = await fetch(`${server.url}${path}`, {
    method,
    ...(body === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, json: (text === '' ? undefined : JSON.parse(text)) as T };
}

async function submitBatch(server: RunningServer, commands: unknown[]): Promise<Command[]> {
  const { status, json } = await call<{ commands: Command[] }>(server, 'POST', '/commands/batch', { commands });
  if (status !== 201) throw new Error(`POST /commands/batch answered ${status}: ${JSON.stringify(json)}`);
  return json.commands;
}

/** How many requests the server answered on `route` (its request-duration histogram's count). */
async function requestsOn(server: RunningServer, method: string, route: string): Promise<number> {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  let total = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith('agent_executor_http_request_duration_seconds_count{')) continue;
    if (line.includes(`method="${method}"`) && line.includes(`route="${route}"`)) total += Number(line.split(' ').pop());
  }
  return total;
}

async function countIn(server: RunningServer, status: string): Promise<number> {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  const match = new RegExp(`^agent_executor_commands\\{status="${status}"\\} (\\d+)$`, 'm').exec(text);
  return Number(match?.[1] ?? 0);
}

async function waitForCount(server: RunningServer, status: string, n: number, timeoutMs = 20_000): Promise<void> {
  await waitFor(async () => (await countIn(server, status)) >= n, { timeoutMs, intervalMs: 50, what: `${n} commands ${status}` });
}

/** Every outbox row of an agent's database (the agent must not be running). */
function outboxRows(path: string, ids: string[]): Map<string, OutboxEntry> {
  const db = openDatabase(path);
  try {
    const outbox = new Outbox(db);
    return new Map(ids.flatMap((id) => (outbox.get(id) ? [[id, outbox.get(id) as OutboxEntry]] : [])));
  } finally {
    db.close();
  }
}

describe('batched claims and reports (CONCURRENCY > 1)', () => {
  it('200 commands at CONCURRENCY 8: each executed exactly once, through the batched routes, with no heartbeat and no log line', async () => {
    const { server, agent } = stack();
    const srv = await server();
    const worker = agent(srv, 'a', { CONCURRENCY: '8', LOG_LEVEL: 'warn' });
    const paths = Array.from({ length: 200 }, (_, i) => `/count?batched-${i}`);
    const submitted = await submitBatch(
      srv,
      paths.map((path, i) => (i % 2 === 0 ? { type: 'HTTP_GET_JSON', payload: { url: `${target.url}${path}` } } : { type: 'DELAY', payload: { ms: 0 } })),
    );
    await waitForCount(srv, 'COMPLETED', 200);

    for (const [i, path] of paths.entries()) if (i % 2 === 0) expect(target.hits(path), path).toBe(1);
    const client = api(srv);
    for (const { id } of submitted) expect(await client.get(id)).toMatchObject({ status: 'COMPLETED', attempts: 1 });
    const claims = await requestsOn(srv, 'GET', '/commands/next-batch');
    const batchedReports = await requestsOn(srv, 'PUT', '/commands/results');
    const singleClaims = await requestsOn(srv, 'GET', '/commands/next');
    const singleReports = await requestsOn(srv, 'PUT', '/commands/:id/result');
    console.log(`200 commands: ${claims} next-batch + ${singleClaims} next, ${batchedReports} results + ${singleReports} single reports`);
    expect(claims).toBeGreaterThan(0);
    expect(batchedReports).toBeGreaterThan(0);
    expect(claims + singleClaims).toBeLessThan(200);
    expect(batchedReports + singleReports).toBeLessThan(200);
    // Short commands end long before a renewal is due: no heartbeat at all.
    expect(await requestsOn(srv, 'POST', '/commands/:id/heartbeat')).toBe(0);
    // LOG_LEVEL=warn: nothing per command.
    for (const { id } of submitted) expect(worker.output()).not.toContain(id);
  });

  it('never runs more than CONCURRENCY commands at once, and does run them side by side', async () => {
    const { server, agent } = stack();
    const srv = await server();
    let open = 0;
    let most = 0;
    const slow = createServer((req: IncomingMessage, res: ServerResponse) => {
      most = Math.max(most, ++open);
      setTimeout(() => {
        open--;
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
      }, 150);
    });
    slow.listen(0, '127.0.0.1');
    await once(slow, 'listening');
    try {
      agent(srv, 'a', { CONCURRENCY: '4' });
      const url = `http://127.0.0.1:${(slow.address() as AddressInfo).port}/`;
      await submitBatch(srv, Array.from({ length: 24 }, () => ({ type: 'HTTP_GET_JSON', payload: { url } })));
      await waitForCount(srv, 'COMPLETED', 24);
      expect(most).toBe(4);
    } finally {
      slow.closeAllConnections();
      slow.close();
    }
  });

  it('a report answered 409 inside a batch is dropped; the others in the same batch are reported', async () => {
    const { server, agent, dbPath } = stack();
    const srv = await server();
    const client = api(srv);
    const submitted = await submitBatch(srv, Array.from({ length: 3 }, () => ({ type: 'DELAY', payload: { ms: 0 } })));
    // Claimed as this agent, and their outcomes kept in its outbox, as if it had run them and
    // died before reporting. The second one is settled meanwhile by someone else's report.
    const { json } = await call<{ commands: ClaimedCommand[] }>(srv, 'GET', '/commands/next-batch?agentId=seeded&max=3');
    expect(json.commands.map((c) => c.id).sort()).toEqual(submitted.map((c) => c.id).sort());
    const [first, settled, third] = json.commands as [ClaimedCommand, ClaimedCommand, ClaimedCommand];
    await client.report(settled, { status: 'FAILED', error: 'settled elsewhere', retryable: false });
    const db = openDatabase(dbPath('a'));
    const outbox = new Outbox(db);
    for (const c of json.commands) {
      outbox.begin(c.id, c.leaseId, c.type);
      outbox.finish(c.id, c.leaseId, completed({ ok: true, tookMs: 0 }));
    }
    db.close();

    const worker = agent(srv, 'a', { AGENT_ID: 'seeded', CONCURRENCY: '8' });
    await waitForCommand(client, first.id, isSettled);
    await waitForCommand(client, third.id, isSettled);
    await waitForOutput(worker, new RegExp(`command ${settled.id} is not ours any more \\(409 `));
    expect(await worker.kill('SIGTERM')).toBe(0);

    expect(await client.get(first.id)).toMatchObject({ status: 'COMPLETED', result: { ok: true } });
    expect(await client.get(third.id)).toMatchObject({ status: 'COMPLETED', result: { ok: true } });
    expect(await client.get(settled.id)).toMatchObject({ status: 'FAILED', error: 'settled elsewhere' });
    // One batched report carried all three; the single route served only the test's own report.
    expect(await requestsOn(srv, 'PUT', '/commands/results')).toBe(1);
    expect(await requestsOn(srv, 'PUT', '/commands/:id/result')).toBe(1);
    const rows = outboxRows(dbPath('a'), json.commands.map((c) => c.id));
    expect(rows.get(first.id)?.state).toBe('reported');
    expect(rows.get(third.id)?.state).toBe('reported');
    expect(rows.get(settled.id)).toMatchObject({ state: 'dropped', note: expect.stringMatching(/^report answered 409 /) });
  });

  it('a server without the batched routes (404) gets single claims and reports, and everything completes', async () => {
    const { server, agent, dbPath } = stack();
    const srv = await server();
    const client = api(srv);
    const older = await olderServer(srv);
    try {
      // Three outcomes waiting in the outbox go out together at start-up: a batched report.
      const submitted = await submitBatch(srv, Array.from({ length: 3 }, () => ({ type: 'DELAY', payload: { ms: 0 } })));
      const { json } = await call<{ commands: ClaimedCommand[] }>(srv, 'GET', '/commands/next-batch?agentId=old&max=3');
      const db = openDatabase(dbPath('a'));
      const outbox = new Outbox(db);
      for (const c of json.commands) {
        outbox.begin(c.id, c.leaseId, c.type);
        outbox.finish(c.id, c.leaseId, completed({ ok: true, tookMs: 0 }));
      }
      db.close();

      const worker = agent({ ...srv, url: older.url }, 'a', { AGENT_ID: 'old', CONCURRENCY: '4' });
      for (const { id } of submitted) expect(await waitForCommand(client, id, isSettled)).toMatchObject({ status: 'COMPLETED' });
      const more = await submitBatch(srv, Array.from({ length: 20 }, () => ({ type: 'DELAY', payload: { ms: 0 } })));
      for (const { id } of more) expect(await waitForCommand(client, id, isSettled)).toMatchObject({ status: 'COMPLETED' });

      expect(older.refused()).toEqual({ claims: 1, reports: 1 });
      await waitForOutput(worker, /PUT \/commands\/results answered 404 \(a server without batched routes\): reports go one by one/);
      await waitForOutput(worker, /GET \/commands\/next-batch answered 404 \(a server without batched routes\): claims go one by one/);
      expect(await requestsOn(srv, 'PUT', '/commands/:id/result')).toBe(23);
      expect(await requestsOn(srv, 'GET', '/commands/next-batch')).toBe(1); // the test's own claim
      expect(await requestsOn(srv, 'PUT', '/commands/results')).toBe(0);
    } finally {
      await older.close();
    }
  });

  it.each(['after-start', 'after-finish', 'after-report'] as const)(
    'SIGKILL %s in the middle of a batch: after a restart every command completes, none finished is run again',
    async (point) => {
      const { server, agent, dbPath } = stack();
      // A short lease: a command claimed in the last moment before the kill, not even `started`,
      // is known to nobody but the server, and comes back when its lease runs out.
      const srv = await server({ LEASE_MS: '2000' });
      const client = api(srv);
      const paths = Array.from({ length: 40 }, (_, i) => `/count?${point}-${i}`);
      const submitted = await submitBatch(
        srv,
        paths.map((path) => ({ type: 'HTTP_GET_JSON', payload: { url: `${target.url}${path}` } })),
      );
      const pathOf = new Map(submitted.map((c, i) => [c.id, paths[i] as string]));
      const ids = submitted.map((c) => c.id);

      const first = agent(srv, 'a', { CONCURRENCY: '8', AGENT_CRASH_AT: point });
      expect(await first.exited).toBe('SIGKILL');
      const atKill = outboxRows(dbPath('a'), ids);
      // What the dead agent had finished: kept in its outbox, so never to be run again.
      const finished = [...atKill.values()].filter((row) => row.state === 'finished' || row.state === 'reported');
      const started = [...atKill.values()].filter((row) => row.state === 'started');
      if (point === 'after-start') expect(started.length).toBeGreaterThan(1);
      else expect(finished.length).toBeGreaterThan(0);

      const second = agent(srv, 'a', { CONCURRENCY: '8' });
      for (const id of ids) {
        expect(await waitForCommand(client, id, isSettled, { timeoutMs: 20_000 })).toMatchObject({ status: 'COMPLETED' });
      }
      for (const row of finished) {
        expect(target.hits(pathOf.get(row.commandId) as string), row.commandId).toBe(1);
        expect(executionsIn(second, row.commandId)).toBe(0);
      }
      // Started and cut off before their executor ran: reported interrupted, run once afterwards.
      if (point === 'after-start') for (const row of started) expect(target.hits(pathOf.get(row.commandId) as string)).toBe(1);
      for (const path of paths) expect(target.hits(path)).toBeGreaterThanOrEqual(1);
    },
  );
});

/**
 * A control server from before the batched routes: answers 404 to them, as Fastify does for an
 * unknown route, and forwards everything else to the real server.
 */
async function olderServer(real: RunningServer): Promise<Proxy & { refused: () => { claims: number; reports: number } }> {
  const refused = { claims: 0, reports: 0 };
  const proxy = await startProxy((req, res) => {
    const path = req.url ?? '/';
    const batched = path.startsWith('/commands/next-batch') ? 'claims' : path.split('?')[0] === '/commands/results' ? 'reports' : undefined;
    if (batched) {
      refused[batched]++;
      req.resume();
      const message = `Route ${req.method}:${path} not found`;
      res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ statusCode: 404, error: 'Not Found', message }));
      return;
    }
    forward(real.url, req, res);
  });
  return { ...proxy, refused: () => ({ ...refused }) };
}
