/**
 * The drill: a counting target, a control server (or several replicas on one PostgreSQL that the
 * drill starts) and a fleet of agents, all real processes, and an SSE client that follows the
 * event log. Commands are submitted all run long (the backlog keeps them coming) while replicas
 * (one, or all at once) and agents are SIGKILLed and restarted on the seeded schedule; then the
 * drill waits until every command is terminal and the SSE client has the whole log, stops
 * everything and judges what it collected.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '@agent-executor/common/processes';
import { judge, type Verdict } from './checks.js';
import { lastEventId, readOutbox, readServerDb, readServerPg, type AgentDeath, type Evidence, type LeaseLoss, type ServerDeath, type ServerRecords } from './evidence.js';
import { AgentUnderTest, ServerUnderTest } from './fleet.js';
import type { ChaosOptions } from './options.js';
import { ALL_REPLICAS, lifeHasRandomFailures, makePlan, type Plan, type PlannedKill } from './plan.js';
import { startPostgres, type Postgres } from '../postgres/start.js';
import { SseFollower } from './sse-follower.js';
import { Submitter } from './submitter.js';
import { CountingTarget } from './target.js';

export interface DrillResult {
  options: ChaosOptions;
  plan: Plan;
  dir: string;
  durationMs: number;
  evidence: Evidence;
  verdict: Verdict;
}

const PROBE_INTERVAL_MS = 250;
const SUBMITS_IN_FLIGHT = 8;
/** Beyond a third of a lease, the least uptime between two server kills. */
const SERVER_UPTIME_MARGIN_MS = 1_000;
/** After the last command is terminal, the SSE client must have the whole log within this. */
const SSE_CATCH_UP_MS = 30_000;
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

interface Counts {
  PENDING: number;
  RUNNING: number;
  COMPLETED: number;
  FAILED: number;
}

/** Reads the server's status counts from /metrics, four times a second; keeps the last answer through downtime. */
class ProgressProbe {
  counts: Counts = { PENDING: 0, RUNNING: 0, COMPLETED: 0, FAILED: 0 };
  /** When the last successful probe was sent. */
  sentAt = 0;
  lastProgressAt = Date.now();
  private stopped = false;
  private loop: Promise<void> | undefined;

  private next = 0;

  /** Any replica answers: the counts are the database's. */
  constructor(private readonly serverUrls: string[]) {}

  get terminal(): number {
    return this.counts.COMPLETED + this.counts.FAILED;
  }

  start(): void {
    this.loop = (async () => {
      while (!this.stopped) {
        await this.probe();
        await sleep(PROBE_INTERVAL_MS);
      }
    })();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
  }

  private async probe(): Promise<void> {
    const sentAt = Date.now();
    const url = this.serverUrls[this.next % this.serverUrls.length];
    try {
      const res = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(5000) });
      if (!res.ok) return;
      const text = await res.text();
      const counts: Counts = { PENDING: 0, RUNNING: 0, COMPLETED: 0, FAILED: 0 };
      for (const m of text.matchAll(/^agent_executor_commands\{status="(\w+)"\} (\d+)$/gm)) {
        counts[m[1] as keyof Counts] = Number(m[2]);
      }
      const before = this.terminal;
      this.counts = counts;
      this.sentAt = sentAt;
      if (this.terminal > before) this.lastProgressAt = Date.now();
    } catch {
      // The server is down (being killed, or restarting): keep the last counts, ask the next replica.
      this.next++;
    }
  }
}

export async function runDrill(o: ChaosOptions, say: (line: string) => void): Promise<DrillResult> {
  const startedAt = Date.now();
  const deadline = startedAt + o.deadlineS * 1000;
  const plan = makePlan(o);
  const dir = mkdtempSync(join(tmpdir(), `chaos-${o.seed}-`));
  say(`chaos: seed ${o.seed}; files in ${dir}`);

  const target = new CountingTarget(o.seed, o.targetDelayMaxMs);
  let postgres: Postgres | undefined;
  const servers: ServerUnderTest[] = [];
  try {
    await target.start();
    let databaseEnv: Record<string, string>;
    if (o.database === 'postgres') {
      postgres = await startPostgres(dir);
      say(`chaos: PostgreSQL (embedded) at ${postgres.url.replace(/:[^:@/]*@/, ':…@')}`);
      // DB_PATH is not used with DATABASE_URL; set so nothing falls back to a default file.
      databaseEnv = { DATABASE_URL: postgres.url, DB_PATH: join(dir, 'unused.db') };
    } else {
      databaseEnv = { DB_PATH: join(dir, 'commands.db') };
    }
    for (let replica = 0; replica < o.replicas; replica++) {
      servers.push(new ServerUnderTest({ replica, port: await freePort(), databaseEnv, leaseMs: o.leaseMs }));
    }
    await Promise.all(servers.map((s) => s.start()));
    return await drillOn(o, say, { plan, dir, startedAt, deadline, target, servers, postgres });
  } finally {
    await Promise.all(servers.map((s) => s.stop(10_000)));
    await target.stop();
    await postgres?.stop();
  }
}

interface Setup {
  plan: Plan;
  dir: string;
  startedAt: number;
  deadline: number;
  target: CountingTarget;
  servers: ServerUnderTest[];
  postgres: Postgres | undefined;
}

async function drillOn(o: ChaosOptions, say: (line: string) => void, setup: Setup): Promise<DrillResult> {
  const { plan, dir, startedAt, deadline, target, servers, postgres } = setup;
  const elapsed = () => `${((Date.now() - startedAt) / 1000).toFixed(0).padStart(4)} s`;
  const urls = servers.map((s) => s.url);
  const serverDeaths = (): ServerDeath[] => servers.flatMap((s) => s.deaths).sort((a, b) => a.at - b.at);
  const database = postgres ? { url: postgres.url } : { path: join(dir, 'commands.db') };

  const agentDeaths: AgentDeath[] = [];
  const leaseLosses: LeaseLoss[] = [];
  const agents = Array.from(
    { length: o.agents },
    (_, index) =>
      new AgentUnderTest({
        index,
        // Each agent starts on another replica and fails over along the list.
        serverUrl: [...urls.slice(index % urls.length), ...urls.slice(0, index % urls.length)].join(','),
        dir,
        concurrency: o.concurrency,
        randomFailures: (life) => lifeHasRandomFailures(o, index, life),
        seed: o.seed,
        httpAllow: new URL(target.url).host,
        onDeath: (d) => agentDeaths.push(d),
        onLeaseLoss: (l) => leaseLosses.push(l),
      }),
  );
  for (const a of agents) a.start();

  const probe = new ProgressProbe(urls);
  probe.start();
  const follower = new SseFollower(urls);
  follower.start();
  let gaveUp: string | null = null;
  const stopped = () => gaveUp !== null;

  const submitter = new Submitter(plan.commands, {
    serverUrls: urls,
    urlFor: (key) => target.urlFor(key),
    maxAttempts: o.maxAttempts,
    inFlight: SUBMITS_IN_FLIGHT,
    gate: async () => {
      while (submitter.acknowledged - probe.terminal >= o.backlog && !stopped()) await sleep(20);
    },
    deadline,
    stopped,
  });
  const submitting = submitter.run();

  let killsDone = 0;
  const kill = async (k: PlannedKill) => {
    const threshold = Math.ceil(k.atProgress * o.commands);
    while (probe.terminal < threshold && !(submitter.done && probe.counts.PENDING + probe.counts.RUNNING === 0) && !stopped()) {
      await sleep(50);
    }
    if (stopped()) return;
    await sleep(k.jitterMs);
    if (k.target === 'server') {
      // Agents get time to renew their leases between two server kills, so that a lease lost
      // across a restart can be judged (see restartsLeftTimeToRenew in checks.ts).
      const last = serverDeaths().at(-1);
      if (last) await sleep(last.at + last.downMs + o.leaseMs / 3 + SERVER_UPTIME_MARGIN_MS - Date.now());
      const hit = k.replica === ALL_REPLICAS ? servers : [servers[k.replica] as ServerUnderTest];
      // Every one is gone before any comes back.
      const deaths = await Promise.all(hit.map((s) => s.kill()));
      await Promise.all(hit.map((s, i) => s.restart(deaths[i] as ServerDeath)));
      const which = servers.length === 1 ? 'server' : k.replica === ALL_REPLICAS ? `all ${servers.length} replicas` : `replica ${k.replica + 1}`;
      if (!o.quiet) say(`${elapsed()}  kill ${k.n}/${plan.kills.length}: ${which} SIGKILLed, healthy again after ${Math.max(...deaths.map((d) => d.downMs))} ms`);
    } else {
      const agent = agents[k.agent] as AgentUnderTest;
      await agent.killAndRestart();
      const death = agentDeaths.filter((d) => d.agent === agent.id && d.by === 'drill').at(-1);
      if (!o.quiet) say(`${elapsed()}  kill ${k.n}/${plan.kills.length}: ${agent.id} SIGKILLed with ${death?.started.length ?? 0} command(s) started, ${death?.unreported.length ?? 0} unreported`);
    }
    killsDone++;
  };
  const killing = (async () => {
    for (const k of plan.kills) await kill(k);
  })();

  const progress = setInterval(() => {
    if (o.quiet) return;
    const c = probe.counts;
    const self = agentDeaths.filter((d) => d.by === 'self').length;
    say(`${elapsed()}  ${probe.terminal}/${o.commands} terminal (${c.COMPLETED} completed, ${c.FAILED} failed), ${submitter.acknowledged} acknowledged, ${c.PENDING} pending, ${c.RUNNING} running; kills ${killsDone}/${plan.kills.length}, agents died by themselves ${self}`);
  }, 5_000);

  try {
    let busySince = Date.now();
    for (;;) {
      // Done when a probe sent after the last submit and the last kill finds nothing left to run.
      if (!submitter.done || killsDone < plan.kills.length) busySince = Date.now();
      const c = probe.counts;
      if (probe.sentAt > busySince && c.PENDING + c.RUNNING === 0 && probe.terminal >= submitter.acknowledged) break;
      if (Date.now() > deadline) {
        gaveUp = `deadline of ${o.deadlineS} s reached: ${probe.terminal} of ${submitter.acknowledged} acknowledged commands terminal, ${killsDone} of ${plan.kills.length} kills done`;
      } else if (Date.now() - probe.lastProgressAt > o.stallS * 1000) {
        gaveUp = `no command became terminal for ${o.stallS} s (${probe.counts.PENDING} pending, ${probe.counts.RUNNING} running)`;
      }
      if (gaveUp !== null) {
        say(`chaos: giving up: ${gaveUp}`);
        break;
      }
      await sleep(100);
    }
    await Promise.all([submitting, killing]);
  } finally {
    clearInterval(progress);
    await probe.stop();
    await Promise.all(agents.map((a) => a.stop(5_000)));
  }
  // Nothing writes any more: the SSE client must come to the log's last id, wherever it is connected.
  const last = await lastEventId(database);
  if (!(await follower.reached(last, SSE_CATCH_UP_MS)) && !o.quiet) say(`chaos: the SSE client is at event ${follower.lastId} of ${last} after ${SSE_CATCH_UP_MS} ms`);
  await follower.stop();
  await Promise.all(servers.map((s) => s.stop(10_000)));

  const { commands, events, eventIds }: ServerRecords = postgres ? await readServerPg(postgres.url) : readServerDb(join(dir, 'commands.db'));
  const evidence: Evidence = {
    run: { replicas: servers.length, agentsKillable: o.agentKills > 0 || (o.randomFailures && o.randomFailureShare > 0), leaseMs: o.leaseMs, gaveUp },
    submits: submitter.records,
    commands,
    events,
    witness: target.witness(),
    agentDeaths,
    serverDeaths: serverDeaths(),
    outboxes: new Map(agents.map((a) => [a.id, readOutbox(a.dbPath)])),
    leaseLosses,
    eventIds,
    sse: follower.record,
  };
  return { options: o, plan, dir, durationMs: Date.now() - startedAt, evidence, verdict: judge(evidence) };
}
