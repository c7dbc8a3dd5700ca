import { inject } from 'vitest';
import { PostgresCommandStore } from '../src/store/postgres.js';
import { createDatabase } from '../../test-support/postgres.js';
import { describeStoreContract } from './store-contract.js';

const adminUrl = inject('postgresUrl');

// Each test gets its own database: the contract expects an empty store.
describeStoreContract('PostgreSQL', async ({ now, random }) =>
  PostgresCommandStore.open({ connectionString: await createDatabase(adminUrl, 'contract'), now, random, poolSize: 4 }),
);
