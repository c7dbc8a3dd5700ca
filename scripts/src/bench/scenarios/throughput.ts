/**
 * throughput: N DELAY 0 commands through a fleet of A agents × C concurrency, submitted with a
 * fixed number of requests in flight (one command per request, or batches) → completed/s from the
 * first submit to the last COMPLETED event (seen on the server's SSE stream). Every variant gets a
 * fresh server and database. The CPU time the server and the agents spend per command (from
 * /proc) is reported too: unlike the rate, it hardly depends on what else runs on the machine.
 * With --cpu-prof the server (and each real agent) is profiled and the profiles summarised.
 * `--database postgres --replicas N`: N servers on one embedded PostgreSQL, agents spread over
 * them (agent i on replica i mod N), submits spread too, completions read on the last replica;
 * graphile-worker runs the same jobs with the same workers × concurrency on the same PostgreSQL
 * right after each variant (harness/deployment.ts).
 */
import { resolve } from 'node:path';
import { profileDirFor, readProfile, type ProfileSummary } from '../harness/cpu-profile.js';
import { AGENT_KINDS, startFleet, type AgentKind } from '../harness/fleet.js';
import { metric } from '../harness/http.js';
import { cpuSeconds } from '../harness/proc-stats.js';
import type { Figure, RunResult } from '../harness/report.js';
import { tempDir } from '../harness/processes.js';
import { SQLITE_SYNC_OPTION, sqliteSync, type Options, type RunContext, type Scenario } from '../harness/scenario.js';
import {
  DEPLOYMENT_OPTIONS,
  deploymentLabel,
  deploymentShape,
  graphilePeer,
  startDeployment,
  startRunDatabase,
  type DeploymentShape,
} from '../harness/deployment.js';
import { CompletionWatcher } from '../harness/sse-reader.js';
import { submitAll } from '../harness/submitter.js';
import { peerThroughput, type PeerBackend, type ThroughputResult } from '../peers/measure.js';
import type { Postgres } from '../../postgres/start.js';

interface Variant {
  kind: AgentKind;
  agents: number;
  concurrency: number;
  submit: 'single' | 'batch';
}

interface VariantResult extends Variant {
  label: string;
  commands: number;
  completedPerSecond: number;
  submitPerSecond: number;
  seconds: number;
  submitRequests: number;
  /** CPU time (user + system, from /proc) spent per command while the load ran (server: every replica). */
  cpuMicrosPerCommand: { server: number; agents: number; postgres: number };
  /** With replicas: each one's share of the server CPU per command. */
  serverCpuMicrosByReplica?: number[];
  /** PostgreSQL: transactions committed in our database per command (pg_stat_database). */
  pgTransactionsPerCommand?: number;
  /** graphile-worker, same jobs and workers × concurrency, same PostgreSQL, right after. */
  graphile?: ThroughputResult;
  profile?: ProfileSummary;
  /** Agent requests per command, by route (from the server's request histogram). */
  exchanges: Record<string, number>;
  /** One real agent's profile (they all run the same load). */
  agentProfile?: ProfileSummary;
}

function label(v: Variant): string {
  return `${v.kind} ${v.agents}x${v.concurrency}, ${v.submit} submit`;
}

async function measure(
  o: Options,
  v: Variant,
  context: RunContext,
  shape: DeploymentShape,
  postgres: Postgres | null,
): Promise<{ result: VariantResult; profileDir?: string; agentProfileDir?: string }> {
  const n = o.num('commands');
  const dir = tempDir('throughput');
  const profileDir = o.bool('cpu-prof')
    ? profileDirFor(context.outDir, `throughput-${v.kind}-${v.agents}x${v.concurrency}-${v.submit}${postgres ? `-pg${shape.replicas}` : ''}`)
    : undefined;
  const agentProfileDir = profileDir && v.kind === 'process' ? `${profileDir}-agents` : undefined;
  const deployment = await startDeployment(shape, {
    dir: dir.path,
    postgres,
    sqliteSync: sqliteSync(o).sqliteSync,
    ...(profileDir ? { cpuProfDir: profileDir } : {}),
  });
  const server = deployment.servers[0] as (typeof deployment.servers)[number];
  const urls = deployment.urls;
  let fleet;
  let watcher;
  try {
    fleet = await startFleet({
      kind: v.kind,
      serverUrl: (i) => urls[i % urls.length] as string,
      dir: dir.path,
      agents: v.agents,
      concurrency: v.concurrency,
      longPollWait: o.num('long-poll-wait'),
      pollInterval: 2000,
      protocolMode: 'batch',
      claimMax: o.num('claim-max'),
      ...(agentProfileDir ? { cpuProfDir: agentProfileDir } : {}),
      ...(o.str('agent-main') ? { agentMain: resolve(o.str('agent-main')) } : {}),
    });
    await deployment.waitForWaitingPolls(fleet.idlePolls, fleet.procs);
    // On the last replica: with replicas, completions reported elsewhere reach it through the database.
    watcher = new CompletionWatcher(urls.at(-1) as string, { parseIds: false });
    await watcher.opened();
    const agentPids = fleet.procs.map((p) => p.pid);
    const cpuBefore = { ...deployment.cpu(), agents: sum(agentPids.map(cpuSeconds)) };
    const transactionsBefore = await deployment.transactions();
    const submitted = await submitAll(urls, {
      total: n,
      inFlight: o.num('in-flight'),
      batchSize: v.submit === 'batch' ? o.num('batch-size') : 1,
    });
    const w = watcher;
    await w.until(() => w.completed + w.failed >= n, `${n} commands to finish`, 120_000 + n * 10);
    const seconds = (w.lastAt - submitted.startedAt) / 1000;
    const cpuAfter = deployment.cpu();
    const cpuMicrosPerCommand = {
      server: ((cpuAfter.servers - cpuBefore.servers) / n) * 1e6,
      agents: ((sum(agentPids.map(cpuSeconds)) - cpuBefore.agents) / n) * 1e6,
      postgres: ((cpuAfter.postgres - cpuBefore.postgres) / n) * 1e6,
    };
    const metrics = await server.api.metrics();
    // Every replica's agent requests (agents are spread over them).
    const exchanges: Record<string, number> = {};
    for (const x of deployment.servers) {
      for (const [route, perCommand] of Object.entries(agentExchanges(await x.api.metrics(), n))) {
        exchanges[route] = (exchanges[route] ?? 0) + perCommand;
      }
    }
    let pgTransactionsPerCommand: number | undefined;
    if (postgres) {
      await new Promise((r) => setTimeout(r, 1_000)); // the backends' counters reach the shared ones
      pgTransactionsPerCommand = ((await deployment.transactions()) - transactionsBefore) / n;
    }
    const serverCpuMicrosByReplica = cpuAfter.byServer.map((after, i) => ((after - (cpuBefore.byServer[i] ?? 0)) / n) * 1e6);
    const completed = metric(metrics, 'agent_executor_commands{status="COMPLETED"}');
    if (completed !== n || w.failed > 0) {
      throw new Error(`expected ${n} COMPLETED, the server counts ${completed} (failed events: ${w.failed})`);
    }
    const result: VariantResult = {
      ...v,
      label: `${label(v)}${postgres ? deploymentLabel(shape) : sqliteSync(o).label}`,
      commands: n,
      seconds,
      completedPerSecond: n / seconds,
      submitPerSecond: n / ((submitted.endedAt - submitted.startedAt) / 1000),
      submitRequests: submitted.requests,
      cpuMicrosPerCommand,
      ...(postgres ? { serverCpuMicrosByReplica, pgTransactionsPerCommand } : {}),
      exchanges,
    };
    return { result, ...(profileDir ? { profileDir } : {}), ...(agentProfileDir ? { agentProfileDir } : {}) };
  } finally {
    watcher?.close();
    await fleet?.stop();
    await deployment.stop();
    dir.remove();
  }
}

/** Runs after the server and agents stopped: a profile is written when its process exits. */
function withProfile(result: VariantResult, profileDir: string | undefined, agentProfileDir: string | undefined): VariantResult {
  const withServer = profileDir ? { ...result, profile: readProfile(profileDir) } : result;
  return agentProfileDir ? { ...withServer, agentProfile: readProfile(agentProfileDir) } : withServer;
}

export const throughput: Scenario = {
  name: 'throughput',
  summary: 'N DELAY 0 commands through A agents × C concurrency → completed/s end to end',
  defaultRuns: 3,
  options: {
    agent: { type: 'string', default: 'process', description: 'process, protocol (next-batch + batched reports), or both' },
    configs: { type: 'string', default: '1x1,2x8,4x8', description: 'agents x concurrency for real agents' },
    'protocol-configs': { type: 'string', default: '1x4,2x4', description: 'agent processes x claim loops for protocol agents' },
    commands: { type: 'string', default: '20000', description: 'commands per variant' },
    'in-flight': { type: 'string', default: '32', description: 'submit requests in flight' },
    submit: { type: 'string', default: 'single,batch', description: 'single (POST /commands) and/or batch (POST /commands/batch)' },
    'batch-size': { type: 'string', default: '100', description: 'commands per batched submit' },
    'claim-max': { type: 'string', default: '64', description: 'max of next-batch (protocol agents)' },
    'long-poll-wait': { type: 'string', default: '25', description: 'seconds each agent poll waits' },
    'cpu-prof': { type: 'boolean', default: false, description: 'profile the server and real agents (node --cpu-prof) and summarise them' },
    'sqlite-sync': SQLITE_SYNC_OPTION,
    'agent-main': { type: 'string', default: '', description: 'real agents: another build to run (e.g. a copy of agent/dist from before a change)' },
    ...DEPLOYMENT_OPTIONS,
  },
  async run(o, context): Promise<RunResult> {
    const shape = deploymentShape(o);
    const database = await startRunDatabase(shape);
    try {
      return await runOn(o, context, shape, database.postgres);
    } finally {
      await database.stop();
    }
  },
};

async function runOn(o: Options, context: RunContext, shape: DeploymentShape, postgres: Postgres | null): Promise<RunResult> {
  const kinds: AgentKind[] = o.str('agent') === 'both' ? ['process', 'protocol'] : [o.oneOf('agent', AGENT_KINDS)];
  const variants: Variant[] = [];
  for (const kind of kinds) {
    for (const config of o.list(kind === 'process' ? 'configs' : 'protocol-configs')) {
      const match = /^(\d+)x(\d+)$/.exec(config);
      if (!match) throw new Error(`bad config ${config}: use AxC, e.g. 2x8`);
      for (const submit of o.list('submit')) {
        if (submit !== 'single' && submit !== 'batch') throw new Error(`--submit: single or batch, not ${submit}`);
        variants.push({ kind, agents: Number(match[1]), concurrency: Number(match[2]), submit });
      }
    }
  }
  const results: VariantResult[] = [];
  const figures: Figure[] = [];
  let graphile: (PeerBackend & { versions: string }) | undefined;
  if (postgres && shape.peer === 'graphile-worker') {
    graphile = await graphilePeer(postgres, o.num('in-flight'));
    console.log(`  peer: ${graphile.versions}, on the same PostgreSQL`);
  }
  for (const v of variants) {
    const measured = await measure(o, v, context, shape, postgres);
    const r: VariantResult = withProfile(measured.result, measured.profileDir, measured.agentProfileDir);
    const pgCpu = postgres ? `, PostgreSQL ${Math.round(r.cpuMicrosPerCommand.postgres)} µs` : '';
    console.log(
      `  ${r.label}: ${Math.round(r.completedPerSecond)} completed/s (${r.seconds.toFixed(2)} s), submit ${Math.round(r.submitPerSecond)}/s, ` +
        `CPU per command: server ${Math.round(r.cpuMicrosPerCommand.server)} µs, agents ${Math.round(r.cpuMicrosPerCommand.agents)} µs${pgCpu}`,
    );
    const routes = Object.entries(r.exchanges).map(([route, perCommand]) => `${route} ${perCommand.toFixed(3)}`);
    console.log(`    agent requests per command: ${routes.join(', ')}`);
    if (r.pgTransactionsPerCommand !== undefined) {
      const byReplica = (r.serverCpuMicrosByReplica ?? []).map((x) => `${Math.round(x)}`).join(' + ');
      console.log(`    PostgreSQL transactions per command ${r.pgTransactionsPerCommand.toFixed(3)}; server CPU per command by replica ${byReplica} µs`);
    }
    results.push(r);
    figures.push(
      { name: `${r.label}: completed/s`, value: r.completedPerSecond, unit: 'cmd/s', ...(postgres ? {} : { goal: { op: '>=', value: 7000 } }) },
      { name: `${r.label}: submitted/s`, value: r.submitPerSecond, unit: 'cmd/s' },
      { name: `${r.label}: server CPU per command`, value: r.cpuMicrosPerCommand.server, unit: 'µs' },
      { name: `${r.label}: agents' CPU per command`, value: r.cpuMicrosPerCommand.agents, unit: 'µs' },
    );
    if (postgres) figures.push({ name: `${r.label}: PostgreSQL CPU per command`, value: r.cpuMicrosPerCommand.postgres, unit: 'µs' });
    if (graphile) {
      const g = await peerThroughput(graphile, `throughput-${context.run}-${results.length}`, {
        workers: v.agents,
        concurrency: v.concurrency,
        jobs: o.num('commands'),
        inFlight: o.num('in-flight'),
        batchSize: v.submit === 'batch' ? o.num('batch-size') : 1,
      });
      r.graphile = g;
      const gl = `graphile-worker ${v.agents}x${v.concurrency}, ${v.submit === 'batch' ? 'addJobs' : 'addJob'}`;
      console.log(
        `  ${gl}: ${Math.round(g.completedPerSecond)} jobs/s (${g.seconds.toFixed(2)} s), CPU per job: workers ${Math.round(g.cpuMicrosPerJob.workers)} µs, PostgreSQL ${Math.round(g.cpuMicrosPerJob.server)} µs` +
          ` → ours / graphile-worker ${(r.completedPerSecond / g.completedPerSecond).toFixed(2)}×`,
      );
      figures.push(
        { name: `${gl}: completed/s`, value: g.completedPerSecond, unit: 'jobs/s' },
        { name: `${gl}: PostgreSQL CPU per job`, value: g.cpuMicrosPerJob.server, unit: 'µs' },
        { name: `${r.label}: ours / graphile-worker`, value: r.completedPerSecond / g.completedPerSecond, unit: '×', ...(shape.replicas >= 2 ? { goal: { op: '>=', value: 2 } } : {}) },
      );
    }
  }
  return { figures, details: { deployment: shape, graphileVersions: graphile?.versions, results } };
}

function sum(values: number[]): number {
  return values.reduce((a, b) => a + b, 0);
}

/** Agent route → requests per command, read off the server's request-duration histogram counts. */
function agentExchanges(metrics: Map<string, number>, n: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, value] of metrics) {
    if (!name.startsWith('agent_executor_http_request_duration_seconds_count{')) continue;
    const route = /route="([^"]*)"/.exec(name)?.[1];
    const method = /method="([^"]*)"/.exec(name)?.[1];
    if (!route || !method || !/^\/commands\/(next|next-batch|results|:id\/result|:id\/heartbeat)$/.test(route)) continue;
    const key = `${method} ${route}`;
    out[key] = (out[key] ?? 0) + value / n;
  }
  return out;
}
