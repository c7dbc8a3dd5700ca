/**
 * The processes under test: the control server's replicas (each always on the same port and
 * database, so a restart is the same replica; one replica on SQLite, one or more on PostgreSQL)
 * and N agents (each with its own fixed AGENT_ID and outbox). Every
 * death is recorded with what the dead agent's outbox held right after it, read before the restart.
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AgentDeath, LeaseLoss, ServerDeath } from './evidence.js';
import { readOutbox } from './evidence.js';
import { agentLifeSeed, CHAOS_QUEUES } from './plan.js';
import { waitForHealth } from '@agent-executor/common/processes';
import { spawnNode, type Child } from './processes.js';

const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const SERVER_MAIN = join(REPO_ROOT, 'control-server/dist/main.js');
export const AGENT_MAIN = join(REPO_ROOT, 'agent/dist/main.js');

const HEALTH_TIMEOUT_MS = 60_000;

export interface ServerOptions {
  /** 0-based; recorded with each death. */
  replica: number;
  port: number;
  /** DB_PATH (SQLite) or DATABASE_URL (PostgreSQL), and anything else the database needs. */
  databaseEnv: Record<string, string>;
  leaseMs: number;
}

export class ServerUnderTest {
  readonly url: string;
  readonly deaths: ServerDeath[] = [];
  private proc: Child | undefined;
  private stopping = false;
  private killing = false;

  constructor(private readonly options: ServerOptions) {
    this.url = `http://127.0.0.1:${options.port}`;
  }

  get pid(): number | undefined {
    return this.proc?.pid;
  }

  /** Starts the server and waits until /health answers 200. */
  async start(): Promise<void> {
    const { port, databaseEnv, leaseMs, replica } = this.options;
    const proc = spawnNode(`server-${replica + 1}`, SERVER_MAIN, [], {
      HOST: '127.0.0.1',
      PORT: String(port),
      ...databaseEnv,
      LEASE_MS: String(leaseMs),
      LOG_LEVEL: 'warn',
    });
    this.proc = proc;
    void proc.exited.then((how) => {
      if (this.stopping || this.killing || this.proc !== proc) return;
      // It died without being asked to: record it and bring it back, the drill goes on.
      const at = Date.now();
      this.deaths.push({ n: this.deaths.length + 1, replica, by: 'exit', how: `${String(how)}: ${proc.output().slice(-500)}`, at, downMs: 0 });
      void this.start().catch(() => {});
    });
    await waitForHealth(proc, this.url, { timeoutMs: HEALTH_TIMEOUT_MS, intervalMs: 25 });
  }

  /** SIGKILL, then a restart on the same port and database. */
  async killAndRestart(): Promise<ServerDeath> {
    const death = await this.kill();
    await this.restart(death);
    return death;
  }

  /** SIGKILL; resolves once the process is gone. Replicas killed together are all gone before any restarts. */
  async kill(): Promise<ServerDeath> {
    const proc = this.proc;
    if (!proc) throw new Error('server not started');
    this.killing = true;
    const at = Date.now();
    const how = await proc.kill();
    this.killing = false;
    const death: ServerDeath = { n: this.deaths.length + 1, replica: this.options.replica, by: 'drill', how: String(how), at, downMs: 0 };
    this.deaths.push(death);
    return death;
  }

  /** Starts it again after kill(); the death's downtime runs until /health answers. */
  async restart(death: ServerDeath): Promise<void> {
    await this.start();
    death.downMs = Date.now() - death.at;
  }

  /** SIGTERM (the server closes its database cleanly), SIGKILL after the grace time. */
  async stop(graceMs = 10_000): Promise<void> {
    this.stopping = true;
    await this.proc?.stop(graceMs);
  }
}

export interface AgentOptions {
  index: number;
  serverUrl: string;
  dir: string;
  concurrency: number;
  /** Whether its n-th life runs with --random-failures. */
  randomFailures: (life: number) => boolean;
  seed: number;
  /** HTTP_ALLOW: the counting target's host:port (on 127.0.0.1, refused by default). */
  httpAllow: string;
  /** Called after each death is recorded, before the restart. */
  onDeath: (death: AgentDeath) => void;
  onLeaseLoss: (loss: LeaseLoss) => void;
}

const MAX_UNEXPECTED_EXITS = 10;
const CRASH_LINE = /crash drill: SIGKILL now: (.*)$/;

export class AgentUnderTest {
  readonly id: string;
  readonly dbPath: string;
  life = 0;
  private proc: Child | undefined;
  private drillKill = false;
  private stopping = false;
  /** Settles when the current death has been recorded and the agent restarted. */
  private recovering: Promise<void> = Promise.resolve();
  private lastWords = '';
  private exits = 0;
  private drillDeaths = 0;
  private lifeHasRandomFailures = false;

  constructor(private readonly options: AgentOptions) {
    this.id = `chaos-agent-${options.index + 1}`;
    this.dbPath = join(options.dir, `${this.id}.db`);
  }

  get pid(): number | undefined {
    return this.proc?.pid;
  }

  start(): void {
    const { serverUrl, concurrency, randomFailures, seed, index } = this.options;
    this.life++;
    this.lastWords = '';
    const life = this.life;
    this.lifeHasRandomFailures = randomFailures(life);
    const args = this.lifeHasRandomFailures ? ['--random-failures', `--seed=${agentLifeSeed(seed, index, life)}`] : [];
    const proc = spawnNode(
      `${this.id}#${life}`,
      AGENT_MAIN,
      args,
      {
        SERVER_URL: serverUrl,
        AGENT_ID: this.id,
        IDEMPOTENCY_DB_PATH: this.dbPath,
        CONCURRENCY: String(concurrency),
        AGENT_QUEUES: CHAOS_QUEUES.join(','),
        LONG_POLL_WAIT: '10',
        DRAIN_MS: '2000',
        HTTP_ALLOW: this.options.httpAllow,
        LOG_LEVEL: 'warn',
      },
      (line) => this.read(line),
    );
    this.proc = proc;
    void proc.exited.then((how) => {
      if (this.stopping) return;
      this.recovering = this.died(life, String(how));
    });
  }

  /** SIGKILL by the drill; resolves once the death is recorded and the agent runs again. */
  async killAndRestart(): Promise<void> {
    const before = this.drillDeaths;
    while (this.drillDeaths === before && !this.stopping) {
      await this.recovering;
      const proc = this.proc;
      if (!proc) return;
      // Set before the signal: the exit handler, which reads it, runs before kill() resolves.
      if (proc.isRunning()) this.drillKill = true;
      // Killed by the drill, or it died by itself just before (then the next life is killed).
      await proc.kill();
      await this.recovering;
      // Not restarted (it kept ending by itself): nothing left to kill.
      if (this.proc === proc) return;
    }
  }

  async stop(graceMs = 5_000): Promise<void> {
    this.stopping = true;
    await this.recovering;
    await this.proc?.stop(graceMs);
  }

  private async died(life: number, how: string): Promise<void> {
    const by: AgentDeath['by'] = this.lastWords !== '' ? 'self' : this.drillKill ? 'drill' : 'exit';
    if (by === 'exit') this.exits++;
    if (by === 'drill') this.drillDeaths++;
    this.drillKill = false;
    const at = Date.now();
    // The process is gone: its outbox can be read as it was left, before the next life opens it.
    const rows = readOutbox(this.dbPath);
    this.options.onDeath({
      agent: this.id,
      life,
      randomFailures: this.lifeHasRandomFailures,
      by,
      how: by === 'self' ? `SIGKILL (${this.lastWords})` : by === 'exit' ? `${how}: ${this.proc?.output().slice(-500) ?? ''}` : how,
      at,
      started: rows.filter((r) => r.state === 'started'),
      unreported: rows.filter((r) => r.state === 'finished'),
    });
    // An agent that keeps ending by itself is broken: the run fails on it; do not spin.
    if (!this.stopping && this.exits <= MAX_UNEXPECTED_EXITS) this.start();
  }

  private read(line: string): void {
    const crash = CRASH_LINE.exec(line);
    if (crash) {
      this.lastWords = crash[1] ?? 'crash drill';
      return;
    }
    if (!line.includes('lease lost')) return;
    try {
      const entry = JSON.parse(line) as { commandId?: string; msg?: string };
      if (entry.commandId !== undefined && entry.msg?.includes('stopped, lease lost')) {
        this.options.onLeaseLoss({ agent: this.id, commandId: entry.commandId, why: entry.msg.replace(/^.*lease lost \(/, '').replace(/\).*$/, ''), at: Date.now() });
      }
    } catch {
      // Not a log line of ours.
    }
  }
}
