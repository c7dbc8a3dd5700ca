/**
 * latency: one command at a time, from sending the submit to the executor starting it. Each
 * command is an HTTP_GET_JSON pointing at a counting target served by this process, which
 * records the arrival on the same clock that timed the submit. The next command is submitted
 * once the previous one is COMPLETED (seen on SSE), with at least one other agent waiting.
 * `--database postgres --replicas N`: submits go to the first replica and every agent long-polls
 * on the last one, so with 2 replicas each sample crosses replicas (the submit's NOTIFY wakes a
 * poll on the other server); graphile-worker's add → handler start is measured on the same
 * PostgreSQL right after (harness/deployment.ts).
 */
import { startFleet, AGENT_KINDS } from '../harness/fleet.js';
import type { Figure, RunResult } from '../harness/report.js';
import { sleep, tempDir } from '../harness/processes.js';
import { SQLITE_SYNC_OPTION, sqliteSync, type Options, type Scenario } from '../harness/scenario.js';
import {
  DEPLOYMENT_OPTIONS,
  deploymentLabel,
  deploymentShape,
  graphilePeer,
  startDeployment,
  startRunDatabase,
  type DeploymentShape,
} from '../harness/deployment.js';
import { peerLatency } from '../peers/measure.js';
import type { Postgres } from '../../postgres/start.js';
import { CompletionWatcher } from '../harness/sse-reader.js';
import { distribution, type Distribution } from '../harness/stats.js';
import { HitTarget } from '../harness/target.js';
import { measureBareDispatch, type BareDispatch } from '../harness/bare-dispatch.js';
import { chainProcesses, describeWindowCpu, WindowCpu, type ChainCpu } from '../harness/window-cpu.js';

type Mode = 'long-poll' | 'polling';

interface ModeResult {
  mode: Mode;
  startLatency: Distribution;
  submitRoundTrip: Distribution;
  /** Long-poll: each process's CPU inside a dispatch (submit → the target's request), by role. */
  cpu?: ChainCpu;
}

async function measure(o: Options, mode: Mode, shape: DeploymentShape, postgres: Postgres | null): Promise<ModeResult> {
  const kind = o.oneOf('agent', AGENT_KINDS);
  const longPoll = mode === 'long-poll';
  const samples = longPoll ? o.num('samples') : o.num('poll-samples');
  const warmup = longPoll ? o.num('warmup') : 1;
  const pollInterval = o.num('poll-interval');
  const dir = tempDir('latency');
  const deployment = await startDeployment(shape, { dir: dir.path, postgres, sqliteSync: sqliteSync(o).sqliteSync });
  const server = deployment.servers[0] as (typeof deployment.servers)[number];
  const target = new HitTarget();
  const watcher = new CompletionWatcher(server.url);
  const fleet = await startFleet({
    kind,
    serverUrl: deployment.urls.at(-1) as string,
    dir: dir.path,
    agents: o.num('agents'),
    concurrency: 1,
    longPollWait: longPoll ? o.num('long-poll-wait') : 0,
    pollInterval,
  }).catch(async (err: unknown) => {
    await deployment.stop();
    throw err;
  });
  try {
    await target.start();
    await watcher.opened();
    if (longPoll) await deployment.waitForWaitingPolls(fleet.idlePolls, fleet.procs);
    const latencies: number[] = [];
    const roundTrips: number[] = [];
    const timeoutMs = longPoll ? 10_000 : pollInterval * 3 + 10_000;
    const cpu = new WindowCpu(
      chainProcesses({ replicas: deployment.servers.map((s) => s.proc.pid), agents: fleet.procs.map((p) => p.pid), postmaster: postgres?.pid }),
    );
    try {
      for (let i = 0; i < warmup + samples; i++) {
        // With plain polling, a random pause puts the submit at a random phase of the agents' polls.
        if (!longPoll) await sleep(Math.random() * pollInterval);
        if (longPoll) cpu.begin();
        const t0 = performance.now();
        const { body } = await server.api.call<{ id: string }>('POST', '/commands', {
          type: 'HTTP_GET_JSON',
          payload: { url: `${target.url}/hit/${i}` },
        });
        const acked = performance.now();
        const hitAt = await target.hit(i, timeoutMs);
        if (longPoll) cpu.end(i >= warmup);
        await watcher.until(() => watcher.finished.has(body.id), `command ${i} to finish`, timeoutMs);
        if (watcher.finished.get(body.id)?.status !== 'COMPLETED') throw new Error(`command ${body.id} did not complete`);
        if (i >= warmup) {
          latencies.push(hitAt - t0);
          roundTrips.push(acked - t0);
        }
      }
    } finally {
      cpu.close();
    }
    const result: ModeResult = { mode, startLatency: distribution(latencies), submitRoundTrip: distribution(roundTrips) };
    if (longPoll) {
      result.cpu = cpu.perWindow();
      console.log(`  ours: ${describeWindowCpu(result.cpu)}`);
    }
    return result;
  } finally {
    await fleet.stop();
    watcher.close();
    await target.close();
    await deployment.stop();
    dir.remove();
  }
}

export const latency: Scenario = {
  name: 'latency',
  summary: 'submit → executor start, one command at a time, long-poll vs plain polling',
  defaultRuns: 3,
  options: {
    agent: { type: 'string', default: 'process', description: 'process (node agent/dist/main.js) or protocol (bench protocol agent)' },
    agents: { type: 'string', default: '2', description: 'agents, CONCURRENCY=1 each (2: one is always waiting)' },
    samples: { type: 'string', default: '1000', description: 'long-poll samples' },
    warmup: { type: 'string', default: '50', description: 'long-poll samples discarded first' },
    'long-poll-wait': { type: 'string', default: '25', description: 'LONG_POLL_WAIT of the agents, seconds' },
    'poll-samples': { type: 'string', default: '30', description: 'plain-polling samples (LONG_POLL_WAIT=0)' },
    'poll-interval': { type: 'string', default: '2000', description: 'POLL_INTERVAL of the plain-polling agents, ms' },
    modes: { type: 'string', default: 'long-poll,polling', description: 'which of long-poll, polling' },
    'no-baseline': {
      type: 'boolean',
      default: false,
      description: 'with --database postgres: skip the bare chain (node:http + pg, the same hops, nothing of ours) measured after ours',
    },
    'sqlite-sync': SQLITE_SYNC_OPTION,
    ...DEPLOYMENT_OPTIONS,
  },
  async run(o): Promise<RunResult> {
    const shape = deploymentShape(o);
    const database = await startRunDatabase(shape);
    try {
      return await runOn(o, shape, database.postgres);
    } finally {
      await database.stop();
    }
  },
};

async function runOn(o: Options, shape: DeploymentShape, postgres: Postgres | null): Promise<RunResult> {
  const kind = o.str('agent');
  const label = postgres ? deploymentLabel(shape) : sqliteSync(o).label;
  const figures: Figure[] = [];
  const results: ModeResult[] = [];
  for (const mode of o.list('modes') as Mode[]) {
    if (mode !== 'long-poll' && mode !== 'polling') throw new Error(`--modes: unknown mode ${String(mode)}`);
    const r = await measure(o, mode, shape, postgres);
    results.push(r);
    const d = r.startLatency;
    const longPoll = mode === 'long-poll';
    figures.push(
      { name: `${kind} agents, ${mode}: start p50${label}`, value: d.p50, unit: 'ms', ...(longPoll ? { goal: { op: '<=', value: postgres ? 5 : 2 } } : {}) },
      { name: `${kind} agents, ${mode}: start p90${label}`, value: d.p90, unit: 'ms' },
      { name: `${kind} agents, ${mode}: start p99${label}`, value: d.p99, unit: 'ms', ...(longPoll ? { goal: { op: '<=', value: 5 } } : {}) },
      { name: `${kind} agents, ${mode}: submit round trip p50${label}`, value: r.submitRoundTrip.p50, unit: 'ms' },
    );
    if (r.cpu) figures.push({ name: `${kind} agents, ${mode}: CPU per dispatch, all processes${label}`, value: r.cpu.all.cpuMs, unit: 'ms' });
  }
  const lp = results.find((r) => r.mode === 'long-poll');
  const pp = results.find((r) => r.mode === 'polling');
  if (lp && pp) {
    figures.push({ name: `${kind} agents: polling p50 / long-poll p50${label}`, value: pp.startLatency.p50 / lp.startLatency.p50, unit: '×' });
  }
  let graphile: { versions: string; dispatch: ReturnType<typeof distribution> } | undefined;
  if (postgres && shape.peer === 'graphile-worker') {
    // Its workers as our agents: o.num('agents') processes, one job at a time each.
    const peer = await graphilePeer(postgres, 4);
    const dispatch = await peerLatency(peer, 'latency', { workers: o.num('agents'), concurrency: 1, samples: o.num('samples'), warmup: o.num('warmup') });
    graphile = { versions: peer.versions, dispatch };
    console.log(`  graphile-worker (${peer.versions}), same PostgreSQL: add → handler start p50 ${dispatch.p50.toFixed(2)} ms, p99 ${dispatch.p99.toFixed(2)} ms`);
    figures.push(
      { name: `graphile-worker ${o.num('agents')}x1: add → start p50`, value: dispatch.p50, unit: 'ms' },
      { name: `graphile-worker ${o.num('agents')}x1: add → start p99`, value: dispatch.p99, unit: 'ms' },
    );
  }
  let bare: BareDispatch | undefined;
  if (postgres && !o.bool('no-baseline')) {
    bare = await measureBareDispatch(postgres, {
      replicas: shape.replicas,
      agents: o.num('agents'),
      samples: o.num('samples'),
      warmup: o.num('warmup'),
      longPollWait: o.num('long-poll-wait'),
    });
    const { dispatch, cpu } = bare;
    console.log(`  bare chain (node:http + pg, same hops), same PostgreSQL: submit → target p50 ${dispatch.p50.toFixed(2)} ms, p99 ${dispatch.p99.toFixed(2)} ms`);
    console.log(`  bare chain: ${describeWindowCpu(cpu)}`);
    figures.push(
      { name: `bare chain ${o.num('agents')}x1: start p50${label}`, value: dispatch.p50, unit: 'ms' },
      { name: `bare chain ${o.num('agents')}x1: start p99${label}`, value: dispatch.p99, unit: 'ms' },
      { name: `bare chain ${o.num('agents')}x1: CPU per dispatch, all processes${label}`, value: cpu.all.cpuMs, unit: 'ms' },
    );
    const ours = results.find((r) => r.mode === 'long-poll');
    if (ours) figures.push({ name: `${kind} agents, long-poll p50 / bare chain p50${label}`, value: ours.startLatency.p50 / dispatch.p50, unit: '×' });
    if (ours?.cpu) {
      figures.push({ name: `${kind} agents, long-poll CPU per dispatch / bare chain's${label}`, value: ours.cpu.all.cpuMs / cpu.all.cpuMs, unit: '×' });
    }
  }
  return { figures, details: { agent: kind, deployment: shape, results, graphile, bare } };
}
