/** The SSE suite (sse.test.ts) on the PostgreSQL store: each test's app on a new database. */
import pg from 'pg';
import { inject } from 'vitest';
import { PostgresCommandStore } from '../src/store/postgres.js';
import { createDatabase } from '../../test-support/postgres.js';
import { setTestStore } from './helpers.js';

const adminUrl = inject('postgresUrl');
/** The database made for each app, by the dbPath the suite named it with. */
const databases = new Map<string, string>();
setTestStore(
  'postgres',
  async (dbPath, options) => {
    const connectionString = await createDatabase(adminUrl, 'sse');
    databases.set(dbPath, connectionString);
    return PostgresCommandStore.open({ connectionString, poolSize: 4, ...options });
  },
  async (dbPath, text, values) => {
    const client = new pg.Client({ connectionString: databases.get(dbPath) });
    await client.connect();
    try {
      let n = 0;
      await client.query(text.replace(/\?/g, () => `$${++n}`), values);
    } finally {
      await client.end();
    }
  },
);
await import('./sse.test.js');
