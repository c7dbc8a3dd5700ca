#!/usr/bin/env node
import { buildApp } from './app.js';
import { ConfigError, loadConfig } from './config.js';
import { PostgresCommandStore } from './store/postgres.js';
import { SqliteCommandStore } from './store/sqlite.js';
import type { CommandStore } from './store/store.js';

let config;
try {
  config = loadConfig();
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  console.error(`control-server: ${err.message}`);
  process.exit(1);
}

let store: CommandStore;
try {
  store =
    config.databaseUrl === undefined
      ? new SqliteCommandStore({ path: config.dbPath, synchronous: config.sqliteSynchronous })
      : await PostgresCommandStore.open({
          connectionString: config.databaseUrl,
          poolSize: config.pgPoolSize,
          onError: (err, what) => console.error(JSON.stringify({ level: 50, time: new Date().toISOString(), msg: what, err: String(err) })),
        });
} catch (err) {
  // Not an SQLite file, a directory, no permission, no server…: one line naming the setting, no stack trace.
  const setting = config.databaseUrl === undefined ? `DB_PATH ${config.dbPath}` : 'DATABASE_URL';
  console.error(`control-server: cannot use ${setting}: ${(err as Error).message}`);
  process.exit(1);
}
const app = await buildApp(config, store);

let closing = false;
async function shutdown(signal: string): Promise<void> {
  if (closing) return;
  closing = true;
  app.log.info({ signal }, 'shutting down: answering waiting polls, closing the database');
  const force = setTimeout(() => {
    app.log.error('shutdown took longer than 10 s; exiting');
    process.exit(1);
  }, 10_000);
  force.unref();
  await app.close();
  await store.close();
  process.exit(0);
}
process.once('SIGTERM', () => void shutdown('SIGTERM'));
process.once('SIGINT', () => void shutdown('SIGINT'));

try {
  await app.listen({ port: config.port, host: config.host });
  const database =
    config.databaseUrl === undefined
      ? { dbPath: config.dbPath, sqliteSynchronous: config.sqliteSynchronous }
      : { database: 'postgres', databaseUrl: config.databaseUrl.replace(/\/\/[^@/]*@/, '//[credentials]@') };
  app.log.info({ ...database, leaseMs: config.leaseMs, requestTimeoutMs: config.requestTimeoutMs }, 'control server ready');
} catch (err) {
  app.log.error({ err }, 'could not start');
  await store.close();
  process.exit(1);
}
