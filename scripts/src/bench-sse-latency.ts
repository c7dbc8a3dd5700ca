/**
 * Latency from a status change to SSE clients receiving it.
 *
 *   node scripts/dist/bench-sse-latency.js [--events 1000] [--clients 1] [--url URL] [--token T]
 *
 * Without --url it starts `node control-server/dist/main.js` on a free port with a temp database,
 * and stops it at the end. The clients (the `eventsource` package) follow GET /events; the script
 * plays client and agent over HTTP, one change at a time (submit → claim → progress → report,
 * four events per command), and makes the next change once every client has the last one, so the
 * figures are the latency of one change, not of a queue.
 *
 * Two figures per event, in milliseconds:
 *  - from the change: arrival − the command's `updatedAt` (set in the transaction that made the change);
 *  - from the answer: arrival − the moment the HTTP call that made the change returned (negative
 *    when the event overtakes the answer).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { EventSource } from 'eventsource';
import type { ClaimedCommand, Command } from '@agent-executor/common';

const SERVER_MAIN = fileURLToPath(new URL('../../control-server/dist/main.js', import.meta.url));

const { values } = parseArgs({
  options: {
    events: { type: 'string', default: '1000' },
    clients: { type: 'string', default: '1' },
    url: { type: 'string' },
    token: { type: 'string' },
  },
});
const events = Number(values.events);
const clients = Number(values.clients);
if (!Number.isInteger(events) || events < 4 || !Number.isInteger(clients) || clients < 1) {
  console.error('usage: bench-sse-latency [--events N≥4] [--clients N≥1] [--url URL] [--token T]');
  process.exit(2);
}
const token = values.token ?? (process.env.API_TOKEN || undefined);
const authorization: Record<string, string> = token === undefined ? {} : { authorization: `Bearer ${token}` };

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

/** A server of our own on a temp database, unless --url names one. */
async function serverUrl(): Promise<{ url: string; stop: () => void }> {
  if (values.url !== undefined) return { url: values.url.replace(/\/+$/, ''), stop: () => {} };
  const dir = mkdtempSync(join(tmpdir(), 'bench-sse-'));
  const port = await freePort();
  const child = spawn(process.execPath, [SERVER_MAIN], {
    env: { ...process.env, HOST: '127.0.0.1', PORT: String(port), DB_PATH: join(dir, 'commands.db'), LOG_LEVEL: 'warn', SSE_PING_MS: '3600000' },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    if (await fetch(`${url}/health`).then((r) => r.ok, () => false)) break;
    if (i > 300 || child.exitCode !== null) throw new Error('the server did not start');
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url,
    stop: () => {
      child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function call<T>(url: string, method: string, path: string, body?: unknown): Promise<T> {
  const res = await fetch(`${url}${path}`, {
    method,
    headers: { ...authorization, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return JSON.parse(text) as T;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
}

function describe(name: string, samples: number[]): string {
  const s = [...samples].sort((a, b) => a - b);
  const f = (n: number) => n.toFixed(2).padStart(8);
  return `${name.padEnd(18)} p50 ${f(percentile(s, 50))}  p90 ${f(percentile(s, 90))}  p99 ${f(percentile(s, 99))}  max ${f(s.at(-1) ?? NaN)}  (n=${s.length})`;
}

const now = () => performance.timeOrigin + performance.now();

const { url, stop } = await serverUrl();
try {
  const fromChange: number[] = [];
  const fromAnswer: number[] = [];
  let arrivals: number[] = [];
  let waiting: { remaining: number; resolve: () => void } | undefined;

  const sources = Array.from({ length: clients }, () => {
    const source = new EventSource(`${url}/events`, {
      fetch: (input, init) => fetch(input, { ...init, headers: { ...init.headers, ...authorization } }),
    });
    const onEvent = (event: MessageEvent) => {
      const at = now();
      const command = JSON.parse(event.data as string) as Command;
      fromChange.push(at - Date.parse(command.updatedAt));
      arrivals.push(at);
      if (waiting && --waiting.remaining === 0) waiting.resolve();
    };
    source.addEventListener('status', onEvent);
    source.addEventListener('progress', onEvent);
    return source;
  });
  await Promise.all(sources.map((s) => new Promise((resolve) => s.addEventListener('open', resolve, { once: true }))));

  /** Makes one change and waits until every client has its event. */
  const change = async <T>(make: () => Promise<T>): Promise<T> => {
    arrivals = [];
    const arrived = new Promise<void>((resolve) => (waiting = { remaining: clients, resolve }));
    const result = await make();
    const answeredAt = now();
    await arrived;
    // An event may arrive before the answer: that gap is negative.
    for (const at of arrivals) fromAnswer.push(at - answeredAt);
    return result;
  };

  const started = Date.now();
  for (let i = 0; i < Math.ceil(events / 4); i++) {
    const submitted = await change(() => call<Command>(url, 'POST', '/commands', { type: 'DELAY', payload: { ms: 1 } }));
    const claimed = await change(() => call<ClaimedCommand>(url, 'GET', `/commands/next?agentId=bench`));
    if (claimed.id !== submitted.id) throw new Error('another command was pending: run against an idle server');
    const lease = { agentId: 'bench', leaseId: claimed.leaseId };
    await change(() => call(url, 'POST', `/commands/${claimed.id}/heartbeat`, { ...lease, progress: { percent: 50 } }));
    await change(() => call(url, 'PUT', `/commands/${claimed.id}/result`, { ...lease, result: { ok: true, tookMs: 1 } }));
  }
  for (const source of sources) source.close();

  console.log(`SSE latency: ${fromChange.length / clients} changes × ${clients} client(s) on ${url}, in ${Date.now() - started} ms`);
  console.log(describe('from the change', fromChange));
  console.log(describe('from the answer', fromAnswer));
} finally {
  stop();
}
