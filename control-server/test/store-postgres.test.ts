import pg from 'pg';
import { afterEach, describe, expect, inject, test } from 'vitest';
import { PostgresCommandStore } from '../src/store/postgres.js';
import { createDatabase } from '../../test-support/postgres.js';
import { describeStoreContract } from './store-contract.js';

const adminUrl = inject('postgresUrl');

// Each test gets its own database: the contract expects an empty store.
describeStoreContract('PostgreSQL', async ({ now, random }) =>
  PostgresCommandStore.open({ connectionString: await createDatabase(adminUrl, 'contract'), now, random, poolSize: 4 }),
);

describe('PostgreSQL store', () => {
  const open: PostgresCommandStore[] = [];
  const clients: pg.Client[] = [];
  afterEach(async () => {
    for (const store of open.splice(0)) await store.close();
    for (const client of clients.splice(0)) await client.end();
  });

  async function storeAndAdmin(): Promise<{ store: PostgresCommandStore; db: pg.Client }> {
    const url = await createDatabase(adminUrl, 'store_pg');
    const store = await PostgresCommandStore.open({ connectionString: url, poolSize: 4 });
    open.push(store);
    const db = new pg.Client({ connectionString: url });
    await db.connect();
    clients.push(db);
    return { store, db };
  }

  /** A trigger that refuses to log events of one transition: the write that logs one must fail. */
  const refuse = (db: pg.Client, transition: string) =>
    db.query(`CREATE FUNCTION refuse_events() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN IF NEW.transition = '${transition}' THEN RAISE EXCEPTION 'event log refused'; END IF; RETURN NEW; END $$;
      CREATE TRIGGER refuse_events BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION refuse_events()`);
  const allow = (db: pg.Client) => db.query('DROP TRIGGER refuse_events ON events; DROP FUNCTION refuse_events()');

  test('a change and its event are one transaction: when the event cannot be written, the change is undone', async () => {
    const { store, db } = await storeAndAdmin();
    await refuse(db, 'submit');
    await expect(store.submit({ type: 'DELAY', payload: { ms: 1 } })).rejects.toThrow(/event log refused/);
    expect(await store.countByStatus()).toEqual({ PENDING: 0, RUNNING: 0, COMPLETED: 0, FAILED: 0 });
    await allow(db);
    const { command } = await store.submit({ type: 'DELAY', payload: { ms: 1 } });
    await refuse(db, 'claim');
    await expect(store.claim('agent-1', 30_000)).rejects.toThrow(/event log refused/);
    expect(await store.get(command.id)).toMatchObject({ status: 'PENDING', attempts: 0 });
  });

  test('a write that fails in a group commit fails alone: the others of its transaction are stored', async () => {
    const { store, db } = await storeAndAdmin();
    const { command } = await store.submit({ type: 'DELAY', payload: { ms: 1 } });
    await refuse(db, 'claim');
    // Asked in one turn: they share a transaction, which the claim's SQL error aborts.
    const [submitted, claimed, canceled] = await Promise.allSettled([
      store.submit({ type: 'DELAY', payload: { ms: 2 } }),
      store.claimEach([{ agentId: 'agent-1', max: 1 }], 30_000),
      store.cancel(command.id),
    ]);
    expect(submitted.status).toBe('fulfilled');
    expect(claimed).toMatchObject({ status: 'rejected', reason: expect.objectContaining({ message: 'event log refused' }) });
    expect(canceled.status).toBe('fulfilled');
    expect(await store.countByStatus()).toEqual({ PENDING: 1, RUNNING: 0, COMPLETED: 0, FAILED: 1 });
    expect((await store.eventsSince(0, 10)).map((e) => e.transition)).toEqual(['submit', 'submit', 'cancel']);
  });

  test('replicas starting at once migrate once (advisory lock)', async () => {
    const url = await createDatabase(adminUrl, 'migrate');
    const stores = await Promise.all(Array.from({ length: 4 }, () => PostgresCommandStore.open({ connectionString: url, poolSize: 2 })));
    open.push(...stores);
    const db = new pg.Client({ connectionString: url });
    await db.connect();
    clients.push(db);
    const { rows } = await db.query('SELECT name FROM schema_migrations');
    expect(rows.map((r: { name: string }) => r.name)).toEqual(['001_commands.sql']);
    await stores[0]!.submit({ type: 'DELAY', payload: { ms: 1 } });
    expect((await stores[3]!.countByStatus()).PENDING).toBe(1);
  });
});
