#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { ConfigError, loadConfig, type AgentConfig } from './config.js';
import { CrashDrill } from './crash-drill.js';
import { DatabaseInUse, openDatabase } from './database.js';
import { executors } from './executors/index.js';
import { GroupCommit } from '@agent-executor/common/group-commit';
import { AgentMetrics } from './metrics.js';
import { agentIdentity } from './identity.js';
import { Outbox } from './outbox.js';
import { OutboxWrites } from './outbox-writes.js';
import { OUTBOX_PRUNE_EVERY_MS, OUTBOX_RETENTION_MS, OutboxPruner } from './outbox-pruner.js';
import { ServerClient } from './server-client.js';
import { SsrfGuard } from './ssrf-guard.js';
import { Worker } from './worker.js';

const AGENT_VERSION = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;

function fail(message: string): never {
  console.error(`agent: ${message}`);
  process.exit(1);
}

function flags(): { killAfterS: number | undefined; randomFailures: boolean; seed: number | undefined } {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        'kill-after': { type: 'string' },
        'random-failures': { type: 'boolean', default: false },
        seed: { type: 'string' },
      },
    }));
  } catch (err) {
    fail((err as Error).message);
  }
  const number = (name: string, raw: string | undefined, valid: (n: number) => boolean) => {
    if (raw === undefined) return undefined;
    const n = Number(raw);
    if (raw.trim() === '' || !valid(n)) fail(`--${name}=${raw}: not a valid value`);
    return n;
  };
  return {
    killAfterS: number('kill-after', values['kill-after'], (n) => Number.isFinite(n) && n >= 0),
    randomFailures: values['random-failures'] ?? false,
    seed: number('seed', values.seed, Number.isSafeInteger),
  };
}

let config: AgentConfig;
try {
  config = loadConfig();
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  fail(err.message);
}
const drill = new CrashDrill({ ...flags(), crashAt: config.crashAt });

let db;
try {
  db = openDatabase(config.dbPath);
} catch (err) {
  fail(err instanceof DatabaseInUse ? err.message : `cannot open IDEMPOTENCY_DB_PATH ${config.dbPath}: ${(err as Error).message}`);
}
const outbox = new Outbox(db);
const commits = new GroupCommit(db);
const agentId = agentIdentity(db, config.agentId);

const log = pino({ level: config.logLevel, base: { agentId }, timestamp: pino.stdTimeFunctions.isoTime });
const metrics = new AgentMetrics(() => outbox.countUnreported());
// Counted only when someone can read them: labelled counters and a histogram per command cost
// a few microseconds each, for nothing without METRICS_PORT.
const counted = config.metricsPort === undefined ? undefined : metrics;
const pruner = new OutboxPruner({ outbox, retentionMs: OUTBOX_RETENTION_MS, everyMs: OUTBOX_PRUNE_EVERY_MS, log });
const runners = executors({ guard: new SsrfGuard({ blockPrivate: config.blockPrivate, allow: config.httpAllow }) });
const client = new ServerClient({
  serverUrls: config.serverUrls,
  agentId,
  token: config.agentToken,
  log,
  ...(counted ? { metrics: counted } : {}),
  // Every poll says what this agent serves: its queues, and the types it has an executor for.
  route: { queues: config.queues, types: Object.keys(runners) },
  details: { hostname: hostname(), version: AGENT_VERSION, concurrency: config.concurrency },
  onDrain: () => worker.drainRequested(),
});
const worker: Worker = new Worker({
  client,
  outbox,
  writes: new OutboxWrites(db, outbox, commits),
  executors: runners,
  agentId,
  concurrency: config.concurrency,
  longPollWaitS: config.longPollWaitS,
  pollIntervalMs: config.pollIntervalMs,
  drill,
  log,
  ...(counted ? { metrics: counted } : {}),
});

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    log.info(`${signal}: stopping`);
    void worker.stop(config.drainMs);
  });
}

log.info({ serverUrl: client.serverUrl, serverUrls: config.serverUrls, dbPath: config.dbPath }, `agent ${agentId} starting`);
let metricsServer;
if (config.metricsPort !== undefined) {
  try {
    metricsServer = await metrics.serve(config.metricsPort);
  } catch (err) {
    fail(`cannot serve metrics on METRICS_PORT ${config.metricsPort}: ${(err as Error).message}`);
  }
  log.info(`metrics on http://0.0.0.0:${config.metricsPort}/metrics`);
}
if (config.blockPrivate) {
  const allowed = config.httpAllow.map((e) => e.text).join(', ');
  log.info(
    `HTTP_GET_JSON refuses loopback and private addresses${allowed ? ` except HTTP_ALLOW (${allowed})` : ''}; ` +
      'for a target on this machine set HTTP_ALLOW=host:port or HTTP_BLOCK_PRIVATE=false',
  );
}
if (drill.enabled) log.warn('crash drill armed: this agent will SIGKILL itself');
drill.start();
pruner.start();
let exitCode = 0;
try {
  await worker.run();
  log.info('stopped');
} catch (err) {
  log.fatal(`stopped: ${(err as Error).message}`);
  exitCode = 1;
}
drill.stop();
metricsServer?.close();
pruner.stop();
await client.close();
commits.flush();
db.close();
process.exit(exitCode);
