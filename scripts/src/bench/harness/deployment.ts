/**
 * What the throughput and latency scenarios measure against: one server on a SQLite file (the
 * default), or `--database postgres` with `--replicas N` server processes on one embedded
 * PostgreSQL (scripts/src/postgres/start.ts, started once per run; each measure gets a fresh
 * database in it). With PostgreSQL, graphile-worker is measured on the same server in the same
 * run (`--peer graphile-worker`, the peers scenario's pieces), so the two share the disk and the
 * machine's load.
 */
import pg from 'pg';
import { processTreeCpuSeconds } from '../peers/cpu.js';
import { graphileOn } from '../peers/graphile.js';
import type { PeerBackend } from '../peers/measure.js';
import { startPostgres, type Postgres } from '../../postgres/start.js';
import { metric } from './http.js';
import { cpuSeconds } from './proc-stats.js';
import { tempDir, waitUntil, type Started } from './processes.js';
import type { OptionSpec, Options } from './scenario.js';
import { startServer, type BenchServer } from './server.js';

export const DEPLOYMENT_OPTIONS: Record<string, OptionSpec> = {
  database: { type: 'string', default: 'sqlite', description: 'sqlite (a temp file) or postgres (an embedded PostgreSQL 17 the run starts)' },
  replicas: { type: 'string', default: '1', description: 'server processes on the one PostgreSQL database; agents are spread over them' },
  peer: { type: 'string', default: 'graphile-worker', description: 'with --database postgres: graphile-worker on the same PostgreSQL in the same run, or none' },
  'pg-pool-size': { type: 'string', default: '10', description: 'PG_POOL_SIZE of each replica' },
};

export interface DeploymentShape {
  database: 'sqlite' | 'postgres';
  replicas: number;
  peer: 'graphile-worker' | 'none';
  pgPoolSize: number;
}

export function deploymentShape(o: Options): DeploymentShape {
  const database = o.oneOf('database', ['sqlite', 'postgres'] as const);
  const replicas = o.num('replicas');
  if (!Number.isInteger(replicas) || replicas < 1) throw new Error(`--replicas: a positive integer, not ${replicas}`);
  if (replicas > 1 && database !== 'postgres') throw new Error('--replicas above 1 needs --database postgres (replicas share one database)');
  return { database, replicas, peer: o.oneOf('peer', ['graphile-worker', 'none'] as const), pgPoolSize: o.num('pg-pool-size') };
}

/** The label figures carry: nothing for the SQLite default. */
export function deploymentLabel(s: DeploymentShape): string {
  return s.database === 'postgres' ? ` [PostgreSQL, ${s.replicas} replica${s.replicas > 1 ? 's' : ''}]` : '';
}

/** One PostgreSQL for a scenario run (null on SQLite); stop it after the run. */
export async function startRunDatabase(s: DeploymentShape): Promise<{ postgres: Postgres | null; stop: () => Promise<void> }> {
  if (s.database !== 'postgres') return { postgres: null, stop: async () => {} };
  const dir = tempDir('postgres');
  const postgres = await startPostgres(dir.path);
  return {
    postgres,
    stop: async () => {
      await postgres.stop();
      dir.remove();
    },
  };
}

let databases = 0;

/** A new empty database on the run's PostgreSQL; answers its URL. */
export async function freshDatabase(postgres: Postgres, prefix: string): Promise<string> {
  const name = `${prefix}_${++databases}`.replace(/[^a-z0-9_]/g, '_');
  const client = new pg.Client({ connectionString: postgres.url });
  await client.connect();
  try {
    await client.query(`CREATE DATABASE ${client.escapeIdentifier(name)}`);
  } finally {
    await client.end();
  }
  const url = new URL(postgres.url);
  url.pathname = `/${name}`;
  return url.toString();
}

export interface Deployment {
  servers: BenchServer[];
  urls: string[];
  /** CPU seconds so far: the replicas together and each, and PostgreSQL's (postmaster and backends). */
  cpu: () => { servers: number; byServer: number[]; postgres: number };
  /** Transactions committed so far in our database (pg_stat_database); 0 on SQLite. */
  transactions: () => Promise<number>;
  /** Resolves once at least `n` polls wait, over every replica. */
  waitForWaitingPolls: (n: number, procs: Started[], timeoutMs?: number) => Promise<void>;
  stop: () => Promise<void>;
}

export interface DeploymentOptions {
  dir: string;
  postgres: Postgres | null;
  sqliteSync: 'full' | 'normal';
  /** Each replica writes its V8 CPU profile here (on a clean stop). */
  cpuProfDir?: string;
}

export async function startDeployment(s: DeploymentShape, o: DeploymentOptions): Promise<Deployment> {
  const servers: BenchServer[] = [];
  let databaseUrl: string | undefined;
  const profile = o.cpuProfDir ? { cpuProfDir: o.cpuProfDir } : {};
  try {
    if (o.postgres === null) {
      servers.push(await startServer({ dbPath: `${o.dir}/commands.db`, sqliteSync: o.sqliteSync, ...profile }));
    } else {
      const url = await freshDatabase(o.postgres, 'ours');
      databaseUrl = url;
      const env = { DATABASE_URL: url, PG_POOL_SIZE: String(s.pgPoolSize) };
      // The first one migrates; the others find the schema in place.
      servers.push(await startServer({ dbPath: `${o.dir}/unused.db`, env, ...profile }));
      for (let i = 1; i < s.replicas; i++) servers.push(await startServer({ dbPath: `${o.dir}/unused.db`, env, ...profile }));
    }
  } catch (err) {
    await Promise.all(servers.map((x) => x.stop()));
    throw err;
  }
  const pgPid = o.postgres?.pid;
  return {
    servers,
    urls: servers.map((x) => x.url),
    cpu: () => {
      const byServer = servers.map((x) => cpuSeconds(x.proc.pid));
      return {
        servers: byServer.reduce((sum, x) => sum + x, 0),
        byServer,
        postgres: pgPid === undefined ? 0 : processTreeCpuSeconds(pgPid),
      };
    },
    transactions: async () => {
      if (databaseUrl === undefined) return 0;
      const client = new pg.Client({ connectionString: databaseUrl });
      await client.connect();
      try {
        // Counted by each backend and flushed to the shared counters within about a second.
        const { rows } = await client.query<{ n: string }>('SELECT xact_commit AS n FROM pg_stat_database WHERE datname = current_database()');
        return Number(rows[0]?.n ?? 0);
      } finally {
        await client.end();
      }
    },
    waitForWaitingPolls: async (n, procs, timeoutMs = 20_000) => {
      await waitUntil(
        async () => {
          for (const p of procs) if (!p.isRunning()) throw new Error(`${p.name} exited:\n${p.output()}`);
          let waiting = 0;
          for (const x of servers) waiting += metric(await x.api.metrics(), 'agent_executor_waiting_polls');
          return waiting >= n;
        },
        { timeoutMs, intervalMs: 50, what: `${n} waiting polls` },
      );
    },
    stop: async () => {
      await Promise.all(servers.map((x) => x.stop()));
    },
  };
}

/** graphile-worker on its own database of the run's PostgreSQL. */
export async function graphilePeer(postgres: Postgres, inFlight: number): Promise<PeerBackend & { versions: string }> {
  return graphileOn({ ...postgres, url: await freshDatabase(postgres, 'graphile'), stop: async () => {} }, inFlight);
}
