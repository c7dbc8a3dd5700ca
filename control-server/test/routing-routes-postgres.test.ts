/** The routing route suite (routing-routes.test.ts) on the PostgreSQL store: each test's app on a new database. */
import { inject } from 'vitest';
import { PostgresCommandStore } from '../src/store/postgres.js';
import { createDatabase } from '../../test-support/postgres.js';
import { setTestStore } from './helpers.js';

const adminUrl = inject('postgresUrl');
setTestStore('postgres', async (_dbPath, options) =>
  PostgresCommandStore.open({ connectionString: await createDatabase(adminUrl, 'routing'), poolSize: 4, ...options }),
);
await import('./routing-routes.test.js');
