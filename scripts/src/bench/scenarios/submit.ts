/**
 * submit: autocannon against POST /commands of the control server, and against a bare Fastify
 * hello-world POST started in the same run (same body, same connections) → the ratio of req/s.
 * Each target runs as its own process; autocannon runs in this one.
 */
import autocannon from 'autocannon';
import type { Figure, RunResult } from '../harness/report.js';
import { cpuSeconds } from '../harness/proc-stats.js';
import { freePort, tempDir } from '../harness/processes.js';
import { SQLITE_SYNC_OPTION, sqliteSync, type Options, type Scenario } from '../harness/scenario.js';
import { startServer } from '../harness/server.js';
import { startWorker } from '../harness/workers.js';

const BODY = JSON.stringify({ type: 'DELAY', payload: { ms: 0 } });

interface Load {
  requestsPerSecond: number;
  p50: number;
  p99: number;
  requests: number;
  non2xx: number;
  errors: number;
  /** The target process's CPU (user + system) per answered request over the measured run: load-robust. */
  cpuUsPerRequest: number;
}

async function cannon(url: string, o: Options, seconds: number): Promise<Omit<Load, 'cpuUsPerRequest'>> {
  const result = await autocannon({
    url,
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: BODY,
    connections: o.num('connections'),
    duration: seconds,
  });
  return {
    requestsPerSecond: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    requests: result.requests.total,
    non2xx: result.non2xx,
    errors: result.errors + result.timeouts,
  };
}

/** A short warm-up (JIT, connections), then the measured load; `pid` is the target's process. */
async function load(url: string, o: Options, pid: number): Promise<Load> {
  if (o.num('warmup') > 0) await cannon(url, o, o.num('warmup'));
  const cpuBefore = cpuSeconds(pid);
  const measured = await cannon(url, o, o.num('duration'));
  const cpuUsed = cpuSeconds(pid) - cpuBefore;
  if (measured.non2xx > 0 || measured.errors > 0) {
    throw new Error(`${url}: ${measured.non2xx} non-2xx answers and ${measured.errors} errors under load`);
  }
  return { ...measured, cpuUsPerRequest: (cpuUsed * 1e6) / Math.max(1, measured.requests) };
}

async function hello(o: Options): Promise<Load> {
  const port = await freePort();
  const worker = startWorker('hello-server', [`--port=${port}`]);
  try {
    await worker.next('ready', 20_000);
    return await load(`http://127.0.0.1:${port}/hello`, o, worker.proc.pid);
  } finally {
    await worker.proc.stop();
  }
}

async function controlServer(o: Options): Promise<Load> {
  const dir = tempDir('submit');
  const server = await startServer({
    dbPath: `${dir.path}/commands.db`,
    env: { LOG_LEVEL: o.str('log-level') },
    sqliteSync: sqliteSync(o).sqliteSync,
  });
  try {
    return await load(`${server.url}/commands`, o, server.proc.pid);
  } finally {
    await server.stop();
    dir.remove();
  }
}

export const submit: Scenario = {
  name: 'submit',
  summary: 'autocannon: POST /commands vs a bare Fastify hello-world POST → req/s ratio',
  defaultRuns: 3,
  options: {
    duration: { type: 'string', default: '10', description: 'measured seconds per target' },
    warmup: { type: 'string', default: '2', description: 'warm-up seconds per target (not measured)' },
    connections: { type: 'string', default: '32', description: 'autocannon connections' },
    'log-level': { type: 'string', default: 'warn', description: 'LOG_LEVEL of the control server (its default is info)' },
    'sqlite-sync': SQLITE_SYNC_OPTION,
  },
  async run(o): Promise<RunResult> {
    const base = await hello(o);
    const ours = await controlServer(o);
    const what = `POST /commands${sqliteSync(o).label}${o.str('log-level') === 'warn' ? '' : ` [LOG_LEVEL=${o.str('log-level')}]`}`;
    const figures: Figure[] = [
      { name: 'bare Fastify POST: req/s', value: base.requestsPerSecond, unit: 'req/s' },
      { name: `${what}: req/s`, value: ours.requestsPerSecond, unit: 'req/s' },
      { name: `${what} / bare Fastify`, value: (ours.requestsPerSecond / base.requestsPerSecond) * 100, unit: '%', goal: { op: '>=', value: 60 } },
      { name: 'bare Fastify POST: CPU per request', value: base.cpuUsPerRequest, unit: 'µs' },
      { name: `${what}: CPU per request`, value: ours.cpuUsPerRequest, unit: 'µs' },
      { name: 'bare Fastify POST: latency p50', value: base.p50, unit: 'ms' },
      { name: `${what}: latency p50`, value: ours.p50, unit: 'ms' },
      { name: `${what}: latency p99`, value: ours.p99, unit: 'ms' },
    ];
    return { figures, details: { bareFastify: base, controlServer: ours, logLevel: o.str('log-level') } };
  },
};
