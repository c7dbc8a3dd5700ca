/**
 * growth: the same operations against a database holding few and many finished commands
 * → claim, report, list (first page and a cursor page), get and /metrics latency, and their ratio
 * to the first size (issue 10: within 1.2× from 1 000 to 10 000 000 stored). The server migrates an empty database once; each
 * size gets a copy, filled straight through better-sqlite3 (harness/seed.ts), then served.
 * `--database postgres`: one embedded PostgreSQL for the run; each size gets a fresh database
 * there, which a server migrates (started and stopped), filled with set-based SQL through `pg`
 * (harness/seed-postgres.ts) while no server runs, then served by a new server.
 * One sequential client on one keep-alive connection, so each figure is one request's latency.
 */
import { copyFileSync, existsSync, statSync } from 'node:fs';
import pg from 'pg';
import type { Postgres } from '../../postgres/start.js';
import { freshDatabase, startRunDatabase } from '../harness/deployment.js';
import { Api, metric } from '../harness/http.js';
import type { Figure, RunResult } from '../harness/report.js';
import { tempDir } from '../harness/processes.js';
import type { Options, Scenario } from '../harness/scenario.js';
import { seedCommands } from '../harness/seed.js';
import { databaseMiB, seedPostgresCommands } from '../harness/seed-postgres.js';
import { startServer, type BenchServer } from '../harness/server.js';
import { distribution, type Distribution } from '../harness/stats.js';

interface SizeResult {
  stored: number;
  pending: number;
  /** The server's counts by status before the timed part (/metrics): what the seeding left. */
  seededCounts: Record<string, number>;
  seedMs: number;
  seedCpuMs: number;
  dbMiB: number;
  claim: Distribution;
  report: Distribution;
  list: Distribution;
  listCursor: Distribution;
  listByStatus: Distribution;
  get: Distribution;
  metrics: Distribution;
}

/** The path of the `rel="next"` page in a Link header. */
function nextPage(link: string | string[] | undefined): string | undefined {
  const value = Array.isArray(link) ? link.join(',') : link;
  return value ? /<([^>]+)>;\s*rel="next"/.exec(value)?.[1] : undefined;
}

async function timed(samples: number[], op: () => Promise<unknown>): Promise<void> {
  const t0 = performance.now();
  await op();
  samples.push(performance.now() - t0);
}

/** An empty database migrated by the server itself (started once and stopped), to copy per size. */
async function migratedTemplate(dir: string): Promise<string> {
  const dbPath = `${dir}/template.db`;
  const server = await startServer({ dbPath });
  await server.stop();
  for (const suffix of ['-wal', '-shm']) {
    if (existsSync(dbPath + suffix)) throw new Error(`the server left ${dbPath}${suffix} behind after a clean stop`);
  }
  return dbPath;
}

/** A size's database, seeded: its sample of ids, and how to serve it. */
interface SeededDatabase {
  ids: string[];
  ms: number;
  cpuMs: number;
  dbMiB: number;
  serve: () => Promise<BenchServer>;
  remove: () => Promise<void>;
}

/** Where the sizes are seeded: a copy of a migrated SQLite file each, or a database each on the run's PostgreSQL. */
interface GrowthDatabase {
  label: string;
  /** Whose CPU the seed CPU time is. */
  seedCpuOf: string;
  seed: (stored: number, pending: number, heldShare: number) => Promise<SeededDatabase>;
  stop: () => Promise<void>;
}

async function sqliteDatabase(): Promise<GrowthDatabase> {
  const templateDir = tempDir('growth-template');
  let template: string;
  try {
    template = await migratedTemplate(templateDir.path);
  } catch (err) {
    templateDir.remove();
    throw err;
  }
  return {
    label: '',
    seedCpuOf: 'the bench',
    seed: async (stored, pending, heldShare) => {
      const dir = tempDir('growth');
      try {
        const dbPath = `${dir.path}/commands.db`;
        copyFileSync(template, dbPath);
        const seeded = seedCommands(dbPath, stored, pending, heldShare);
        return {
          ...seeded,
          dbMiB: statSync(dbPath).size / 2 ** 20,
          serve: () => startServer({ dbPath }),
          remove: async () => dir.remove(),
        };
      } catch (err) {
        dir.remove();
        throw err;
      }
    },
    stop: async () => templateDir.remove(),
  };
}

async function postgresDatabase(postgres: Postgres, stopPostgres: () => Promise<void>): Promise<GrowthDatabase> {
  const dir = tempDir('growth');
  return {
    label: ' [PostgreSQL]',
    seedCpuOf: 'PostgreSQL',
    seed: async (stored, pending, heldShare) => {
      const url = await freshDatabase(postgres, 'growth');
      // DB_PATH is required by the server's config but unused with DATABASE_URL.
      const serverOptions = { dbPath: `${dir.path}/unused.db`, env: { DATABASE_URL: url } };
      // The server migrates the empty database; it is stopped while the rows go in.
      await (await startServer(serverOptions)).stop();
      const seeded = await seedPostgresCommands(url, postgres.pid, stored, pending, heldShare);
      return {
        ...seeded,
        dbMiB: await databaseMiB(url),
        serve: () => startServer(serverOptions),
        // Each size's rows are dropped once measured: a 10 M database takes gigabytes.
        remove: () => dropDatabase(postgres, url),
      };
    },
    stop: async () => {
      dir.remove();
      await stopPostgres();
    },
  };
}

async function dropDatabase(postgres: Postgres, url: string): Promise<void> {
  const client = new pg.Client({ connectionString: postgres.url });
  await client.connect();
  try {
    await client.query(`DROP DATABASE ${client.escapeIdentifier(new URL(url).pathname.slice(1))}`);
  } finally {
    await client.end();
  }
}

async function measureSize(o: Options, database: GrowthDatabase, stored: number, pending: number): Promise<SizeResult> {
  const seeded = await database.seed(stored, pending, o.num('held-share'));
  try {
    const { dbMiB } = seeded;
    console.log(
      `  ${stored.toLocaleString('en-US')} stored + ${pending.toLocaleString('en-US')} pending${database.label}: seeded in ` +
        `${(seeded.ms / 1000).toFixed(1)} s (${(seeded.cpuMs / 1000).toFixed(1)} s of ${database.seedCpuOf}'s CPU), database ${dbMiB.toFixed(0)} MiB`,
    );
    const server = await seeded.serve();
    const api = new Api(server.url, 1);
    try {
      const before = await api.metrics();
      const seededCounts = Object.fromEntries(
        ['PENDING', 'RUNNING', 'COMPLETED', 'FAILED'].map((status) => [status, metric(before, `agent_executor_commands{status="${status}"}`)]),
      );
      const s = {
        claim: [] as number[],
        report: [] as number[],
        list: [] as number[],
        listCursor: [] as number[],
        listByStatus: [] as number[],
        get: [] as number[],
        metrics: [] as number[],
      };
      const limit = o.num('list-limit');
      const warmup = o.num('warmup');
      const samples = o.num('samples');
      for (let i = 0; i < warmup + samples; i++) {
        const keep = i >= warmup;
        const sink = (list: number[]) => (keep ? list : []);
        // The submit is not timed: it keeps the backlog the same size, as in a steady queue.
        await api.call('POST', '/commands', { type: 'DELAY', payload: { ms: 0 } });
        let claimed: { id: string; leaseId: string } | undefined;
        await timed(sink(s.claim), async () => {
          claimed = (await api.call<{ id: string; leaseId: string }>('GET', '/commands/next?agentId=growth-agent')).body;
        });
        if (!claimed) throw new Error('nothing claimed');
        const { id: claimedId, leaseId } = claimed;
        await timed(sink(s.report), () =>
          api.call('PUT', `/commands/${claimedId}/result`, { agentId: 'growth-agent', leaseId, result: { ok: true } }),
        );
        let next: string | undefined;
        await timed(sink(s.list), async () => {
          next = nextPage((await api.call('GET', `/commands?limit=${limit}`)).headers.link);
        });
        if (!next) throw new Error('the first page of GET /commands has no Link to a next page');
        const cursorPage = next;
        await timed(sink(s.listCursor), () => api.call('GET', cursorPage));
        await timed(sink(s.listByStatus), () => api.call('GET', `/commands?status=COMPLETED&limit=${limit}`));
        const id = seeded.ids[i % seeded.ids.length] as string;
        await timed(sink(s.get), () => api.call('GET', `/commands/${id}`));
        if ((i - warmup) % 50 === 0) await timed(sink(s.metrics), () => api.metrics());
      }
      return {
        stored,
        pending,
        seededCounts,
        seedMs: seeded.ms,
        seedCpuMs: seeded.cpuMs,
        dbMiB,
        claim: distribution(s.claim),
        report: distribution(s.report),
        list: distribution(s.list),
        listCursor: distribution(s.listCursor),
        listByStatus: distribution(s.listByStatus),
        get: distribution(s.get),
        metrics: distribution(s.metrics),
      };
    } finally {
      await api.close();
      await server.stop();
    }
  } finally {
    await seeded.remove();
  }
}

/** `--pending`: one backlog for every size, or one per size (so one run compares backlogs). */
function backlogs(o: Options, sizes: number[]): number[] {
  const pending = o.list('pending').map(Number);
  for (const p of pending) {
    if (!Number.isInteger(p) || p < 0) throw new Error(`--pending: whole numbers ≥ 0, not ${o.str('pending')}`);
  }
  if (pending.length === 1) return sizes.map(() => pending[0] as number);
  if (pending.length !== sizes.length) {
    throw new Error(`--pending: one backlog, or one per size (${sizes.length}), not ${pending.length}`);
  }
  return pending;
}

export const growth: Scenario = {
  name: 'growth',
  summary: 'claim, report, list, get and /metrics latency with few vs many stored commands → ratio',
  defaultRuns: 3,
  options: {
    sizes: { type: 'string', default: '1000,1000000', description: 'stored (finished) commands; the ratio is last / first' },
    samples: { type: 'string', default: '1000', description: 'timed iterations per size' },
    warmup: { type: 'string', default: '100', description: 'untimed iterations first' },
    'list-limit': { type: 'string', default: '100', description: 'limit of the timed lists' },
    pending: {
      type: 'string',
      default: '100',
      description: 'PENDING backlog seeded after the finished commands (claims take from it): one for every size, or a list, one per size',
    },
    'held-share': {
      type: 'string',
      default: '0',
      description: 'share (0…1) of each size seeded PENDING behind concurrency keys at their limit (100 per key) instead of finished',
    },
    database: {
      type: 'string',
      default: 'sqlite',
      description: 'sqlite (a copy of a migrated file per size) or postgres (a database per size on an embedded PostgreSQL 17 the run starts)',
    },
  },
  async run(o): Promise<RunResult> {
    const results: SizeResult[] = [];
    const figures: Figure[] = [];
    const sizes = o.list('sizes').map(Number);
    const pending = backlogs(o, sizes);
    const kind = o.oneOf('database', ['sqlite', 'postgres'] as const);
    let database: GrowthDatabase;
    if (kind === 'postgres') {
      const run = await startRunDatabase({ database: 'postgres', replicas: 1, peer: 'none', pgPoolSize: 10 });
      database = await postgresDatabase(run.postgres as Postgres, run.stop);
    } else database = await sqliteDatabase();
    try {
      for (const [i, size] of sizes.entries()) results.push(await measureSize(o, database, size, pending[i] as number));
    } finally {
      await database.stop();
    }
    const label = database.label;
    for (const r of results) {
      const size = r.stored;
      const backlog = r.pending;
      const held = o.num('held-share') > 0 ? ` (${Math.round(o.num('held-share') * 100)} % held behind keys)` : '';
      const at = `${size.toLocaleString('en-US')} stored${held}${backlog > 0 ? ` + ${backlog.toLocaleString('en-US')} pending` : ''}${label}`;
      figures.push(
        { name: `${at}: claim p50`, value: r.claim.p50, unit: 'ms' },
        { name: `${at}: claim p99`, value: r.claim.p99, unit: 'ms' },
        { name: `${at}: report p50`, value: r.report.p50, unit: 'ms' },
        { name: `${at}: list p50`, value: r.list.p50, unit: 'ms' },
        { name: `${at}: list p99`, value: r.list.p99, unit: 'ms' },
        { name: `${at}: list cursor page p50`, value: r.listCursor.p50, unit: 'ms' },
        { name: `${at}: list ?status=COMPLETED p50`, value: r.listByStatus.p50, unit: 'ms' },
        { name: `${at}: get by id p50`, value: r.get.p50, unit: 'ms' },
        { name: `${at}: GET /metrics p50`, value: r.metrics.p50, unit: 'ms' },
        { name: `${at}: seed time`, value: r.seedMs / 1000, unit: 's' },
        { name: `${at}: seed CPU time`, value: r.seedCpuMs / 1000, unit: 's' },
        { name: `${at}: database size`, value: r.dbMiB, unit: 'MiB' },
      );
    }
    const small = results[0];
    const large = results.at(-1);
    if (small && large && results.length > 1) {
      const ratio = (name: string, pick: (r: SizeResult) => number, goal?: number) =>
        figures.push({ name: `ratio ${name}${label}`, value: pick(large) / pick(small), unit: '×', ...(goal ? { goal: { op: '<=', value: goal } } : {}) });
      ratio('claim p50', (r) => r.claim.p50, 1.2);
      ratio('claim p99', (r) => r.claim.p99);
      ratio('report p50', (r) => r.report.p50, 1.2);
      ratio('list p50', (r) => r.list.p50, 1.2);
      ratio('list p99', (r) => r.list.p99);
      ratio('list cursor page p50', (r) => r.listCursor.p50, 1.2);
      ratio('list ?status p50', (r) => r.listByStatus.p50);
      ratio('get by id p50', (r) => r.get.p50);
      ratio('GET /metrics p50', (r) => r.metrics.p50, 1.2);
    }
    return { figures, details: { results } };
  },
};
