/**
 * fairness: does one busy tenant or a deep backlog delay other work (issue 13, SPEC §9)?
 *
 * 1. Trickle vs flood. A trickle of one command a second (its own concurrency key) is timed
 *    from the submit to the executor starting it, first on an idle fleet, then while a flood of
 *    `--flood` commands under one key with `concurrencyLimit` `--flood-limit` waits at the head
 *    of the queue (submitted in batches before the trickle starts). The flood's key at its limit
 *    must neither hold the trickle back nor make each claim scan its backlog: p99 under the
 *    flood within 2× of idle.
 * 2. Priority. Behind `--pending` commands of priority 0 that keep every slot busy, a command of
 *    priority 100 should start in the next free slot: its wait is compared with one command's
 *    duration, and the pending commands still waiting when it started are the ones it overtook.
 *
 * Timed commands are HTTP_GET_JSON to a counting target served by this process (as in latency),
 * so the start is seen on the same clock that timed the submit.
 */
import { startWaitingAgents } from '../harness/fleet.js';
import { metric, type Api } from '../harness/http.js';
import type { Figure, RunResult } from '../harness/report.js';
import { sleep, tempDir, waitUntil } from '../harness/processes.js';
import { SQLITE_SYNC_OPTION, sqliteSync, type Options, type Scenario } from '../harness/scenario.js';
import { startServer, type BenchServer } from '../harness/server.js';
import { distribution, type Distribution } from '../harness/stats.js';
import { submitAll } from '../harness/submitter.js';
import { HitTarget } from '../harness/target.js';

const HIT_TIMEOUT_MS = 60_000;
/** Hit numbers of the priority part start here, clear of the trickle's. */
const PRIORITY_HITS = 1_000_000;

interface TrickleResult {
  latency: Distribution;
  /** Each trickle command's submit → start, ms, in submit order (to see whether outliers cluster). */
  samples: number[];
  /** Flood commands still PENDING when the last trickle command started (> 0: the flood lasted). */
  floodPendingAtEnd?: number;
}

interface PrioritySample {
  waitMs: number;
  pendingAtSubmit: number;
  /** Priority-0 commands still PENDING once it started: the ones it overtook. */
  overtook: number;
}

async function withFleet<T>(o: Options, name: string, body: (server: BenchServer, target: HitTarget) => Promise<T>): Promise<T> {
  const dir = tempDir(`fairness-${name}`);
  const server = await startServer({ dbPath: `${dir.path}/commands.db`, sqliteSync: sqliteSync(o).sqliteSync });
  const target = new HitTarget();
  let fleet;
  try {
    fleet = await startWaitingAgents(o, server, dir.path);
    await target.start();
    return await body(server, target);
  } finally {
    await fleet?.stop();
    await target.close();
    await server.stop();
    dir.remove();
  }
}

/** One command a second for `seconds`, each timed submit → start; they overlap if one is slow. */
async function trickle(api: Api, target: HitTarget, first: number, seconds: number, warmup: number): Promise<number[]> {
  const timed: Array<Promise<number>> = [];
  const t0 = performance.now();
  for (let i = 0; i < warmup + seconds; i++) {
    await sleep(Math.max(0, t0 + i * 1000 - performance.now()));
    const n = first + i;
    const sent = performance.now();
    const submitted = api.call('POST', '/commands', {
      type: 'HTTP_GET_JSON',
      payload: { url: `${target.url}/hit/${n}` },
      concurrencyKey: 'trickle',
      concurrencyLimit: 4,
    });
    const latency = submitted.then(() => target.hit(n, HIT_TIMEOUT_MS)).then((at) => at - sent);
    latency.catch(() => undefined);
    if (i >= warmup) timed.push(latency);
  }
  return Promise.all(timed);
}

async function pending(api: Api): Promise<number> {
  return metric(await api.metrics(), 'agent_executor_queue_depth');
}

async function trickleVsFlood(o: Options): Promise<{ idle: TrickleResult; flood: TrickleResult; floodSubmitSeconds: number }> {
  const seconds = o.num('trickle-seconds');
  const warmup = o.num('warmup');
  const floodSize = o.num('flood');
  return withFleet(o, 'trickle', async (server, target) => {
    const idleSamples = await trickle(server.api, target, 0, seconds, warmup);
    const idle = distribution(idleSamples);
    console.log(`  trickle, idle: p50 ${idle.p50.toFixed(1)} ms, p99 ${idle.p99.toFixed(1)} ms`);
    const submitted = await submitAll(server.url, {
      total: floodSize,
      inFlight: 4,
      batchSize: o.num('batch-size'),
      body: {
        type: 'DELAY',
        payload: { ms: o.num('flood-delay') },
        concurrencyKey: 'flood',
        concurrencyLimit: o.num('flood-limit'),
      },
    });
    const floodSubmitSeconds = (submitted.endedAt - submitted.startedAt) / 1000;
    console.log(`  flood: ${floodSize} commands submitted in ${floodSubmitSeconds.toFixed(1)} s`);
    const floodSamples = await trickle(server.api, target, warmup + seconds, seconds, warmup);
    const flood = distribution(floodSamples);
    const floodPendingAtEnd = await pending(server.api);
    console.log(
      `  trickle, flooded: p50 ${flood.p50.toFixed(1)} ms, p99 ${flood.p99.toFixed(1)} ms; ${floodPendingAtEnd} flood commands still pending`,
    );
    return {
      idle: { latency: idle, samples: idleSamples },
      flood: { latency: flood, samples: floodSamples, floodPendingAtEnd },
      floodSubmitSeconds,
    };
  });
}

async function priorityBehindBacklog(o: Options): Promise<PrioritySample[]> {
  const backlog = o.num('pending');
  return withFleet(o, 'priority', async (server, target) => {
    await submitAll(server.url, {
      total: backlog,
      inFlight: 4,
      batchSize: o.num('batch-size'),
      body: { type: 'DELAY', payload: { ms: o.num('priority-delay') } },
    });
    // Every slot busy first: the command must wait for a slot to free, not find one idle.
    const slots = o.num('agents') * o.num('concurrency');
    await waitUntil(async () => (await pending(server.api)) <= backlog - slots, { timeoutMs: 30_000, intervalMs: 20, what: 'all slots busy' });
    const samples: PrioritySample[] = [];
    // The first ones are discarded: an agent's first HTTP_GET_JSON pays for loading its client.
    const warmup = o.num('warmup');
    for (let i = 0; i < warmup + o.num('priority-samples'); i++) {
      await sleep(Math.random() * 200);
      const pendingAtSubmit = await pending(server.api);
      const n = PRIORITY_HITS + i;
      const sent = performance.now();
      await server.api.call('POST', '/commands', { type: 'HTTP_GET_JSON', payload: { url: `${target.url}/hit/${n}` }, priority: 100 });
      const waitMs = (await target.hit(n, HIT_TIMEOUT_MS)) - sent;
      const overtook = await pending(server.api);
      if (i >= warmup) samples.push({ waitMs, pendingAtSubmit, overtook });
      console.log(`  ${i < warmup ? '(warm-up) ' : ''}priority 100 behind ${pendingAtSubmit} pending: started after ${waitMs.toFixed(1)} ms, ahead of ${overtook}`);
    }
    return samples;
  });
}

export const fairness: Scenario = {
  name: 'fairness',
  summary: 'a trickle beside a flooding key at its concurrency limit, and priority 100 behind a backlog (real agents)',
  defaultRuns: 1,
  options: {
    agents: { type: 'string', default: '2', description: 'real agents' },
    concurrency: { type: 'string', default: '8', description: 'CONCURRENCY of each agent' },
    flood: { type: 'string', default: '50000', description: 'commands of the flooding key' },
    'flood-limit': { type: 'string', default: '4', description: 'concurrencyLimit of the flooding key' },
    'flood-delay': { type: 'string', default: '20', description: 'DELAY ms of each flood command (its key stays at its limit)' },
    'trickle-seconds': { type: 'string', default: '30', description: 'trickle commands (one a second), idle and flooded each' },
    warmup: { type: 'string', default: '2', description: 'trickle and priority commands discarded first, in each phase' },
    pending: { type: 'string', default: '50000', description: 'priority-0 commands pending ahead of the priority-100 one' },
    'priority-delay': { type: 'string', default: '50', description: 'DELAY ms of each pending command (keeps every slot busy)' },
    'priority-samples': { type: 'string', default: '10', description: 'priority-100 commands, one after another' },
    'batch-size': { type: 'string', default: '500', description: 'commands per batched submit of the flood / backlog' },
    'sqlite-sync': SQLITE_SYNC_OPTION,
  },
  async run(o): Promise<RunResult> {
    const { label } = sqliteSync(o);
    const slots = o.num('agents') * o.num('concurrency');
    const fleet = `${o.num('agents')}x${o.num('concurrency')}`;
    const tf = await trickleVsFlood(o);
    const samples = await priorityBehindBacklog(o);
    const waits = distribution(samples.map((s) => s.waitMs));
    const delay = o.num('priority-delay');
    const flood = `${o.num('flood')} flood (limit ${o.num('flood-limit')})`;
    const figures: Figure[] = [
      { name: `trickle idle, ${fleet}: start p50${label}`, value: tf.idle.latency.p50, unit: 'ms' },
      { name: `trickle idle, ${fleet}: start p99${label}`, value: tf.idle.latency.p99, unit: 'ms' },
      { name: `trickle beside ${flood}: start p50${label}`, value: tf.flood.latency.p50, unit: 'ms' },
      { name: `trickle beside ${flood}: start p99${label}`, value: tf.flood.latency.p99, unit: 'ms' },
      {
        name: `trickle p99 flooded / idle${label}`,
        value: tf.flood.latency.p99 / tf.idle.latency.p99,
        unit: '×',
        goal: { op: '<=', value: 2 },
      },
      { name: 'flood commands still pending after the trickle', value: tf.flood.floodPendingAtEnd ?? 0, unit: 'cmd' },
      { name: `priority 100 behind ${o.num('pending')}: wait p50${label}`, value: waits.p50, unit: 'ms', goal: { op: '<=', value: delay } },
      { name: `priority 100 behind ${o.num('pending')}: wait max${label}`, value: waits.max, unit: 'ms' },
      { name: `one pending command's duration (DELAY)`, value: delay, unit: 'ms' },
      { name: `slot turnover (DELAY / ${slots} slots)`, value: delay / slots, unit: 'ms' },
      {
        // An upper bound: the scrapes before the submit and after the start count a few more.
        name: 'priority 100: pending commands started between its submit and its start (max)',
        value: Math.max(...samples.map((s) => s.pendingAtSubmit - s.overtook)),
        unit: 'cmd',
        goal: { op: '<=', value: slots },
      },
      {
        name: 'priority 100: share of the pending it overtook (min)',
        value: Math.min(...samples.map((s) => s.overtook / Math.max(1, s.pendingAtSubmit))),
        unit: 'ratio',
      },
    ];
    return {
      figures,
      details: {
        slots,
        trickle: { idle: tf.idle, flood: tf.flood, floodSubmitSeconds: tf.floodSubmitSeconds },
        priority: { samples, wait: waits },
      },
    };
  },
};
