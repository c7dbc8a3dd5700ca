import pg from 'pg';
import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, inject, test, vi } from 'vitest';
import { DatabaseFull } from '../src/errors.js';
import { PostgresCommandStore, type PostgresStoreOptions } from '../src/store/postgres.js';
import { createDatabase } from '../../test-support/postgres.js';
import { describeStoreContract } from './store-contract.js';
import { TestClock } from './helpers.js';
import { waitFor } from '../../test-support/processes.js';

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

  async function storeAndAdmin(
    options: Omit<PostgresStoreOptions, 'connectionString'> = {},
  ): Promise<{ store: PostgresCommandStore; db: pg.Client; url: string }> {
    const url = await createDatabase(adminUrl, 'store_pg');
    const store = await PostgresCommandStore.open({ connectionString: url, poolSize: 4, ...options });
    open.push(store);
    const db = new pg.Client({ connectionString: url });
    await db.connect();
    clients.push(db);
    return { store, db, url };
  }

  const delays = (n: number) => Array.from({ length: n }, () => ({ type: 'DELAY' as const, payload: { ms: 1 } }));
  /** The counts by status from the rows themselves. */
  const realCounts = async (db: pg.Client) => {
    const counts: Record<string, number> = { PENDING: 0, RUNNING: 0, COMPLETED: 0, FAILED: 0 };
    const { rows } = await db.query<{ status: string; n: number }>('SELECT status, count(*)::integer AS n FROM commands GROUP BY status');
    for (const row of rows) counts[row.status] = row.n;
    return counts;
  };
  const logged = async (db: pg.Client) =>
    (await db.query('SELECT min(seq)::integer AS head, max(seq)::integer AS last, count(*)::integer AS n FROM events')).rows[0];

  /** A trigger that refuses to log events of one transition: the write that logs one must fail. */
  const refuse = (db: pg.Client, transition: string) =>
    db.query(`CREATE FUNCTION refuse_events() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN IF NEW.transition = '${transition}' THEN RAISE EXCEPTION 'event log refused'; END IF; RETURN NEW; END $$;
      CREATE TRIGGER refuse_events BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION refuse_events()`);
  const allow = (db: pg.Client) => db.query('DROP TRIGGER refuse_events ON events; DROP FUNCTION refuse_events()');

  test('a change and its event are one transaction: when the event cannot be written, the change is undone', async () => {
    const { store, db } = await storeAndAdmin();
    await refuse(db, 'submit');
    await expect(store.submit({ type: 'DELAY', payload: { ms: 1 } })).rejects.toMatchObject({ message: 'event log refused' });
    expect(await store.countByStatus()).toEqual({ PENDING: 0, RUNNING: 0, COMPLETED: 0, FAILED: 0 });
    await allow(db);
    const { command } = await store.submit({ type: 'DELAY', payload: { ms: 1 } });
    await refuse(db, 'claim');
    await expect(store.claim('agent-1', 30_000)).rejects.toMatchObject({ message: 'event log refused' });
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
    const { rows } = await db.query('SELECT name FROM schema_migrations ORDER BY name');
    expect(rows.map((r: { name: string }) => r.name)).toEqual(['001_commands.sql', '002_flat_cost.sql', '003_routing.sql', '004_keyed_pending.sql', '005_counts_on_counter.sql']);
    await stores[0]!.submit({ type: 'DELAY', payload: { ms: 1 } });
    expect((await stores[3]!.countByStatus()).PENDING).toBe(1);
  });

  test('the event log is pruned from its head to the first event young enough, in batches (SPEC §4: whichever is fewer)', async () => {
    const clock = new TestClock();
    const { store, db } = await storeAndAdmin({ now: clock.now, eventRetention: { count: 1_000_000, ms: 60_000 } });
    await store.submitBatch(delays(600)); // events 1…600 at t0
    clock.advance(120_000);
    await store.submitBatch(delays(500)); // 601…1100 two minutes later: the prune runs
    await vi.waitFor(async () => expect(await logged(db)).toEqual({ head: 601, last: 1100, n: 500 }));
    expect(await store.oldestEventSeq()).toBe(601);
    clock.advance(120_000);
    for (let i = 0; i < 3; i++) await store.submitBatch(delays(1000)); // 3 000 more; the 500 are now old
    await vi.waitFor(async () => expect(await logged(db), 'the young events are kept').toEqual({ head: 1101, last: 4100, n: 3000 }));
    clock.advance(120_000);
    await store.submitBatch(delays(1000)); // 3 000 old events: one prune deletes at most 2 000
    await vi.waitFor(async () => expect(await logged(db)).toEqual({ head: 3101, last: 5100, n: 2000 }));
    await store.submit(delays(1)[0]!); // a full batch prunes again at the next write
    await vi.waitFor(async () => expect(await logged(db)).toEqual({ head: 4101, last: 5101, n: 1001 }));

    const { store: small, db: smallDb } = await storeAndAdmin({ now: clock.now, eventRetention: { count: 300, ms: 3_600_000 } });
    await small.submitBatch(delays(1000));
    await vi.waitFor(async () => expect(await logged(smallDb), 'all within the hour: the newest 300 kept').toEqual({ head: 701, last: 1000, n: 300 }));
  });

  test('the prune stops at the first young event in id order, not at the first by created_at (replicas commit out of clock order)', async () => {
    let at = 10_000;
    const { store: a, db, url } = await storeAndAdmin({ now: () => at, eventRetention: { count: 1_000_000, ms: 60_000 } });
    const b = await PostgresCommandStore.open({ connectionString: url, poolSize: 2, now: () => 6_000 });
    open.push(b);
    await a.submit(delays(1)[0]!); // event 1, written at 10 000
    await b.submit(delays(1)[0]!); // event 2, written at 6 000 by a replica whose write ran earlier
    await a.submit(delays(1)[0]!); // event 3, at 10 000
    at = 65_000; // young: written at 5 000 or later — all three
    await a.pruneEventLogNow();
    expect(await logged(db), 'before the fix event 1 went: the first young event by created_at is 2').toEqual({ head: 1, last: 3, n: 3 });
    at = 68_000; // event 2 is old now, 1 and 3 are not: the prune deletes from the head only
    await a.pruneEventLogNow();
    expect(await logged(db)).toEqual({ head: 1, last: 3, n: 3 });
    at = 70_001; // all three old
    await a.pruneEventLogNow();
    expect(await logged(db)).toEqual({ head: null, last: null, n: 0 });
  });

  test('the event-log prune reads index ranges, never the whole log', async () => {
    const { db } = await storeAndAdmin();
    await db.query('SET enable_seqscan = off'); // a plan that must scan says so even on a small table
    const bounds = await db.query(`EXPLAIN SELECT (SELECT min(seq) FROM events) AS head, (SELECT last_seq FROM event_counter) AS last,
      (SELECT seq FROM events WHERE created_at >= 5 ORDER BY created_at, seq LIMIT 1) AS kept`);
    const plan = bounds.rows.map((r: { 'QUERY PLAN': string }) => r['QUERY PLAN']).join('\n');
    expect(plan).toMatch(/Index Only Scan using events_created/);
    expect(plan).not.toMatch(/Sort/);
    const young = await db.query('EXPLAIN SELECT min(seq) AS seq FROM events WHERE seq >= 1 AND seq < 2001 AND created_at >= 5');
    expect(young.rows.map((r: { 'QUERY PLAN': string }) => r['QUERY PLAN']).join('\n')).toMatch(/Index Scan using events_pkey|Bitmap Index Scan on events_pkey/);
    const retention = await db.query(`EXPLAIN SELECT seq FROM commands WHERE status IN ('COMPLETED', 'FAILED') AND finished_at < 5
      ORDER BY finished_at LIMIT 10 FOR UPDATE SKIP LOCKED`);
    expect(retention.rows.map((r: { 'QUERY PLAN': string }) => r['QUERY PLAN']).join('\n')).toMatch(/commands_finished/);
  });


  test('plans made while the tables were empty do not read them whole once they have grown (no autovacuum ANALYZE yet)', async () => {
    // One connection, so every statement is planned by the first cycle, on empty tables.
    const { store, db } = await storeAndAdmin({ poolSize: 1 });
    const cycle = async (n: number) => {
      await store.submitBatch(delays(n));
      for (let left = n; left > 0; left -= 50) {
        const claimed = await store.claimBatch('agent-1', 60_000, Math.min(50, left));
        await Promise.all(claimed.map((c) => store.report(c.id, { agentId: 'agent-1', leaseId: c.leaseId, result: {} })));
        await store.get(claimed[0]!.id);
      }
    };
    await cycle(1);
    await cycle(2_000);
    // A backend hands in its counters when it exits: close the store, then wait for them.
    await store.close();
    open.splice(open.indexOf(store), 1);
    const stats = async () => {
      await db.query('SELECT pg_stat_clear_snapshot()');
      const { rows } = await db.query<{ relname: string; seq_tup_read: string; n_tup_ins: string }>(
        "SELECT relname, seq_tup_read, n_tup_ins FROM pg_stat_user_tables WHERE relname IN ('commands', 'events')",
      );
      return Object.fromEntries(rows.map((r) => [r.relname, { read: Number(r.seq_tup_read), inserted: Number(r.n_tup_ins) }]));
    };
    await waitFor(async () => (await stats()).commands?.inserted === 2_001, { timeoutMs: 10_000, what: "the store's counters" });
    const { commands, events } = await stats();
    // Without the session setting: 160 082 rows of `commands` read by whole-table scans here.
    expect(commands!.read).toBe(0);
    expect(events!.read).toBe(0);
  });
  test('transitions find their rows by key whatever the backlog: plans made on empty tables read no other command', async () => {
    const clock = new TestClock();
    const { store, db } = await storeAndAdmin({ poolSize: 1, now: clock.now });
    const agent = { agentId: 'agent-1' };
    // Every transition once while the tables are (nearly) empty: their plans are made now and kept.
    const transitions = async () => {
      const [a, b, c, d, e] = await store.claimBatch('agent-1', 60_000, 5);
      await store.heartbeat(a!.id, { ...agent, leaseId: a!.leaseId }, 60_000);
      await store.release(b!.id, b!.leaseId);
      await store.cancel(c!.id); // RUNNING: its cancel is asked for
      // Asked for at once: one group commit, one statement for both reports.
      await Promise.all([d!, e!].map((x) => store.report(x.id, { ...agent, leaseId: x.leaseId, result: {} })));
      const pending = await store.submit(delays(1)[0]!);
      await store.cancel(pending.command.id); // PENDING: FAILED at once
      await store.retry(pending.command.id);
      clock.advance(120_000);
      expect((await store.requeueExpired()).length).toBeGreaterThan(0); // a's and c's leases
      await store.deleteFinishedBefore(clock.now() + 1, 10);
    };
    await store.submitBatch(delays(5));
    await transitions();
    // A backlog, a fleet's RUNNING commands and a FAILED history — then every transition again.
    await store.submitBatch(delays(3_000));
    await store.claimBatch('agent-2', 600_000, 50);
    await db.query(`UPDATE commands SET status = 'FAILED', error = 'x', finished_at = 1 WHERE seq IN
      (SELECT seq FROM commands WHERE status = 'PENDING' ORDER BY seq DESC LIMIT 300)`);
    await transitions();
    await store.close();
    open.splice(open.indexOf(store), 1);
    const reads = async () => {
      await db.query('SELECT pg_stat_clear_snapshot()');
      const { rows } = await db.query<{ indexrelname: string; idx_tup_read: string }>(
        "SELECT indexrelname, idx_tup_read FROM pg_stat_user_indexes WHERE relname = 'commands'",
      );
      return Object.fromEntries(rows.map((r) => [r.indexrelname, Number(r.idx_tup_read)]));
    };
    // A backend hands in its counters when it exits; the id index has been read by then.
    await waitFor(async () => ((await reads()).commands_id_key ?? 0) > 0, { timeoutMs: 10_000, what: "the store's counters" });
    const read = await reads();
    // Before: a cancel read the 3 000 PENDING commands through commands_active_queue, a report
    // batch all PENDING and RUNNING ones, heartbeat, release and expiry the RUNNING ones, a retry
    // the 300 FAILED ones through commands_status_seq (9 128 reads for the report batches alone).
    expect(read.commands_active_queue).toBeLessThan(100);
    expect(read.commands_status_seq).toBeLessThan(100);
    expect(read.commands_agent_seq).toBeLessThan(100);
  });

  test('a retention batch deletes its rows by key: it does not walk the whole table (a merge join did, once analysed)', async () => {
    const clock = new TestClock();
    const { store, db } = await storeAndAdmin({ poolSize: 1, now: clock.now });
    await store.submitBatch(delays(5_000));
    await db.query(`UPDATE commands SET status = 'COMPLETED', result = '{}', finished_at = seq`);
    await db.query(`UPDATE event_counter SET pending = 0, completed = 5000`);
    await db.query('ANALYZE commands');
    const pkReads = async () => {
      await db.query('SELECT pg_stat_clear_snapshot()');
      const { rows } = await db.query<{ n: string }>("SELECT idx_tup_read AS n FROM pg_stat_user_indexes WHERE indexrelname = 'commands_pkey'");
      return Number(rows[0]?.n ?? 0);
    };
    await waitFor(async () => (await pkReads()) >= 0, { timeoutMs: 1_000, what: 'the counters' });
    const before = await pkReads();
    for (let i = 0; i < 5; i++) expect(await store.deleteFinishedBefore(clock.now(), 100)).toBe(100);
    await store.close();
    open.splice(open.indexOf(store), 1);
    await waitFor(async () => (await pkReads()) > before, { timeoutMs: 10_000, what: "the store's counters" });
    // Before: a merge join read the primary key whole for each batch. Now ~2 reads per row deleted.
    expect((await pkReads()) - before).toBeLessThan(2_000); // 43 005 before
  });

  test('two replicas deleting at once delete different commands: each a whole batch, none twice (SKIP LOCKED)', async () => {
    const clock = new TestClock();
    const { store: a, db, url } = await storeAndAdmin({ now: clock.now });
    const b = await PostgresCommandStore.open({ connectionString: url, poolSize: 4, now: clock.now });
    open.push(b);
    await a.submitBatch(delays(1000));
    await db.query(`UPDATE commands SET status = 'COMPLETED', finished_at = 1, result = '{}'`);
    await db.query(`UPDATE event_counter SET pending = 0, completed = 1000`);
    // Hold the first 500 as a replica mid-batch would: the other must pass over them, not wait.
    const holder = new pg.Client({ connectionString: url });
    await holder.connect();
    clients.push(holder);
    await holder.query('BEGIN');
    await holder.query(`SELECT seq FROM commands ORDER BY finished_at, seq LIMIT 500 FOR UPDATE`);
    expect(await b.deleteFinishedBefore(clock.now(), 500)).toBe(500);
    await holder.query('ROLLBACK');
    const [first, second] = await Promise.all([a.deleteFinishedBefore(clock.now(), 300), b.deleteFinishedBefore(clock.now(), 300)]);
    expect(first + second).toBeGreaterThanOrEqual(400);
    expect(first + second + (await a.deleteFinishedBefore(clock.now(), 500))).toBe(500);
    expect(await a.countByStatus()).toEqual({ PENDING: 0, RUNNING: 0, COMPLETED: 0, FAILED: 0 });
    expect(await a.oldestFinishedAt()).toBeUndefined();
  });

  test('counts stay equal to the rows with two replicas writing at once (no lost update, no deadlock)', async () => {
    const { store: a, db, url } = await storeAndAdmin();
    const b = await PostgresCommandStore.open({ connectionString: url, poolSize: 4 });
    open.push(b);
    await Promise.all([a.submitBatch(delays(200)), b.submitBatch(delays(200))]);
    const work = [a, b].map(async (store, i) => {
      for (let round = 0; round < 10; round++) {
        const claimed = await store.claimBatch(`agent-${i}`, 30_000, 10);
        await Promise.all(
          claimed.map((c, j) =>
            j % 3 === 0
              ? store.report(c.id, { agentId: `agent-${i}`, leaseId: c.leaseId, status: 'FAILED', error: 'x' })
              : j % 3 === 1
                ? store.report(c.id, { agentId: `agent-${i}`, leaseId: c.leaseId, result: {} })
                : store.release(c.id, c.leaseId),
          ),
        );
        await store.submit(delays(1)[0]!);
      }
    });
    await Promise.all(work);
    await a.deleteFinishedBefore(Date.now() + 1, 50);
    expect(await a.countByStatus()).toEqual(await realCounts(db));
    expect(await b.countByStatus()).toEqual(await realCounts(db));
  });

  test('migration 002 counts the commands a database of 001 already holds', async () => {
    const url = await createDatabase(adminUrl, 'migrate_002');
    const db = new pg.Client({ connectionString: url });
    await db.connect();
    clients.push(db);
    await db.query(readFileSync(new URL('../migrations/postgres/001_commands.sql', import.meta.url), 'utf8'));
    await db.query(`CREATE TABLE schema_migrations (name text PRIMARY KEY, applied_at bigint NOT NULL);
      INSERT INTO schema_migrations VALUES ('001_commands.sql', 0)`);
    await db.query(`INSERT INTO commands (id, type, payload, status, max_attempts, timeout_ms, available_at, created_at, updated_at, finished_at)
      SELECT 'c' || i, 'DELAY', '{"ms":1}', CASE WHEN i % 4 = 0 THEN 'FAILED' ELSE 'COMPLETED' END, 3, 1000, 0, 0, 0, 0
      FROM generate_series(1, 40) AS i`);
    const store = await PostgresCommandStore.open({ connectionString: url, poolSize: 2 });
    open.push(store);
    expect(await store.countByStatus()).toEqual({ PENDING: 0, RUNNING: 0, COMPLETED: 30, FAILED: 10 });
    expect(await store.deleteFinishedBefore(1, 100)).toBe(40);
    expect(await store.countByStatus()).toEqual({ PENDING: 0, RUNNING: 0, COMPLETED: 0, FAILED: 0 });
  });

  test('migration 005 moves the counts onto the counter row, counted from the rows; command_counts stays writable', async () => {
    const url = await createDatabase(adminUrl, 'migrate_005');
    const db = new pg.Client({ connectionString: url });
    await db.connect();
    clients.push(db);
    const older = ['001_commands.sql', '002_flat_cost.sql', '003_routing.sql', '004_keyed_pending.sql'];
    for (const name of older) await db.query(readFileSync(new URL(`../migrations/postgres/${name}`, import.meta.url), 'utf8'));
    await db.query('CREATE TABLE schema_migrations (name text PRIMARY KEY, applied_at bigint NOT NULL)');
    for (const name of older) await db.query('INSERT INTO schema_migrations VALUES ($1, 0)', [name]);
    await db.query(`INSERT INTO commands (id, type, payload, status, attempts, max_attempts, timeout_ms, available_at, created_at,
                                          updated_at, agent_id, lease_id, lease_expires_at, started_at, finished_at)
      SELECT 'c' || i, 'DELAY', '{"ms":1}', s.status, 1, 3, 1000, 0, 0, 0,
             CASE WHEN s.status = 'PENDING' THEN NULL ELSE 'agent' END, CASE WHEN s.status = 'RUNNING' THEN 'lease' || i END,
             CASE WHEN s.status = 'RUNNING' THEN 1000 END, CASE WHEN s.status <> 'PENDING' THEN 0 END,
             CASE WHEN s.status IN ('COMPLETED', 'FAILED') THEN 0 END
      FROM generate_series(1, 41) AS i, LATERAL (SELECT (ARRAY['PENDING', 'RUNNING', 'COMPLETED', 'FAILED'])[1 + i % 4] AS status) AS s`);
    // Counts an older replica kept wrong (its writes raced an upgrade): the rows are the truth.
    await db.query('UPDATE command_counts SET n = 7');
    const store = await PostgresCommandStore.open({ connectionString: url, poolSize: 2 });
    open.push(store);
    expect(await store.countByStatus()).toEqual({ PENDING: 10, RUNNING: 11, COMPLETED: 10, FAILED: 10 });
    await store.submit({ type: 'DELAY', payload: { ms: 1 } });
    expect(await store.countByStatus()).toEqual({ PENDING: 11, RUNNING: 11, COMPLETED: 10, FAILED: 10 });
    // A replica of an older version, still running during the upgrade, can still write its counts.
    await db.query("UPDATE command_counts SET n = n + 1 WHERE status = 'PENDING'");
  });

  test('a full disk (SQLSTATE 53100): the write is a DatabaseFull (503), isFull() and ping say so, reads work, it recovers', async () => {
    const { store, db } = await storeAndAdmin();
    const stored = (await store.submit(delays(1)[0]!)).command;
    // What PostgreSQL raises when it cannot extend a file, raised here by triggers.
    await db.query(`CREATE FUNCTION no_space() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'could not extend file: No space left on device' USING ERRCODE = 'disk_full'; END $$;
      CREATE TRIGGER no_space BEFORE INSERT ON commands FOR EACH ROW EXECUTE FUNCTION no_space();
      CREATE TRIGGER no_space BEFORE INSERT ON space_probe FOR EACH ROW EXECUTE FUNCTION no_space()`);
    expect(store.isFull()).toBe(false);
    await expect(store.submit(delays(1)[0]!)).rejects.toBeInstanceOf(DatabaseFull);
    expect(store.isFull()).toBe(true);
    await expect(store.ping()).rejects.toBeInstanceOf(DatabaseFull);
    expect(await store.get(stored.id)).toMatchObject({ status: 'PENDING' });
    expect(await store.countByStatus()).toEqual({ PENDING: 1, RUNNING: 0, COMPLETED: 0, FAILED: 0 });
    await db.query('DROP TRIGGER no_space ON space_probe');
    await store.ping(); // space is back: the probe write fits
    expect(store.isFull()).toBe(false);
    await expect(store.submit(delays(1)[0]!)).rejects.toBeInstanceOf(DatabaseFull);
    await db.query('DROP TRIGGER no_space ON commands');
    const claimed = await store.claim('agent-1', 30_000); // a write that stores something clears it
    expect(claimed?.id).toBe(stored.id);
    expect(store.isFull()).toBe(false);
    expect(await db.query('SELECT count(*)::integer AS n FROM space_probe')).toMatchObject({ rows: [{ n: 0 }] });
  });

  test("a committed write is answered as committed: a throwing listener is reported through onError and the others still hear", async () => {
    const errors: string[] = [];
    const { store } = await storeAndAdmin({ onError: (_err, what) => errors.push(what) });
    const heard: string[] = [];
    let woken = 0;
    store.events.on('event', () => {
      throw new Error('a listener with a bug');
    });
    store.events.on('event', (event) => heard.push(event.command.id));
    store.events.on('available', () => {
      throw new Error('another bug');
    });
    store.events.on('available', () => woken++);
    const { command } = await store.submit(delays(1)[0]!);
    await store.eventsDelivered();
    expect(heard).toEqual([command.id]);
    expect(woken).toBe(1);
    expect(errors).toEqual(["an 'available' listener failed", `an 'event' listener failed on submit of command ${command.id}`]);
    expect(await store.get(command.id)).toMatchObject({ status: 'PENDING' });
  });

  test("a replica's own notifications do not make it read the log: its commits deliver their events", async () => {
    const { store } = await storeAndAdmin();
    const heard: number[] = [];
    store.events.on('event', (event) => heard.push(event.seq));
    const reads = vi.spyOn(store, 'eventsSince');
    // One at a time: each commit's notification races its COMMIT's answer (it won 2 times in 3).
    for (const command of delays(40)) await store.submit(command);
    await store.eventsDelivered();
    // The notifications of the last commits may still be on their way: let them arrive.
    await new Promise((resolve) => setTimeout(resolve, 100));
    await store.eventsDelivered();
    expect(reads).not.toHaveBeenCalled();
    expect(heard).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
  });

  test('a replica opening while another writes: notifications heard before it knows where the log ends are covered, not a crash', async () => {
    const { store: writer, url } = await storeAndAdmin();
    let writing = true;
    const writes = (async () => {
      while (writing) await writer.submit(delays(1)[0]!);
    })();
    const errors: unknown[] = [];
    try {
      for (let i = 0; i < 8; i++) {
        const store = await PostgresCommandStore.open({ connectionString: url, poolSize: 1, onError: (err) => errors.push(err) });
        open.push(store);
        const heard: number[] = [];
        store.events.on('event', (event) => heard.push(event.seq));
        const { command } = await writer.submit(delays(1)[0]!);
        // It hears what the writer commits after it opened, in order.
        await vi.waitFor(async () => expect(heard).toContain((await store.lastEventFor(command.id))?.seq));
        expect([...heard].sort((x, y) => x - y)).toEqual(heard);
      }
    } finally {
      writing = false;
      await writes;
    }
    expect(errors).toEqual([]);
  });

  // The reports of one group-commit batch share one locking read and one update (store/postgres-
  // group-commit.ts). These pin what that must not change: each report decides from the row as the
  // writes before it in the same transaction left it.
  describe('reports batched in one transaction', () => {
    const claimAll = async (store: PostgresCommandStore, n: number) => {
      await store.submitBatch(delays(n));
      const claimed = await store.claimBatch('agent-1', 60_000, n);
      expect(claimed).toHaveLength(n);
      return claimed;
    };

    test('eight reports of one turn: each lands with its own result, one event each, counts right', async () => {
      const { store, db } = await storeAndAdmin();
      const claimed = await claimAll(store, 8);
      const outcomes = await Promise.all(
        claimed.map((c, i) =>
          store.report(c.id, { agentId: 'agent-1', leaseId: c.leaseId, ...(i % 2 ? { result: { i } } : { status: 'FAILED' as const, error: `e${i}` }) }),
        ),
      );
      expect(outcomes.map((o) => [o.command.status, o.replayed])).toEqual(
        claimed.map((_, i) => [i % 2 ? 'COMPLETED' : 'FAILED', false]),
      );
      for (const [i, c] of claimed.entries()) {
        const stored = await store.get(c.id);
        expect(stored).toMatchObject(i % 2 ? { status: 'COMPLETED', result: { i } } : { status: 'FAILED', error: `e${i}` });
      }
      const { rows } = await db.query<{ n: number }>("SELECT count(*)::integer AS n FROM events WHERE transition = 'report'");
      expect(rows[0]!.n).toBe(8);
      expect(await store.countByStatus()).toEqual(await realCounts(db));
      expect(await store.countByStatus()).toMatchObject({ COMPLETED: 4, FAILED: 4, RUNNING: 0 });
    });

    test('the same command reported twice in one turn: the same report is a replay, a different one a 409', async () => {
      const { store } = await storeAndAdmin();
      const [a, b] = await claimAll(store, 2);
      const first = { agentId: 'agent-1', leaseId: a!.leaseId, result: { n: 1 } };
      const [one, again, other] = await Promise.allSettled([
        store.report(a!.id, first),
        store.report(a!.id, first),
        store.report(a!.id, { ...first, result: { n: 2 } }),
        store.report(b!.id, { agentId: 'agent-1', leaseId: b!.leaseId, result: {} }),
      ]);
      expect(one).toMatchObject({ status: 'fulfilled', value: { replayed: false, command: { status: 'COMPLETED', result: { n: 1 } } } });
      expect(again).toMatchObject({ status: 'fulfilled', value: { replayed: true, command: { result: { n: 1 } } } });
      expect(other).toMatchObject({ status: 'rejected', reason: { statusCode: 409 } });
      expect(await store.get(a!.id)).toMatchObject({ status: 'COMPLETED', result: { n: 1 } });
      expect(await store.get(b!.id)).toMatchObject({ status: 'COMPLETED' });
    });

    test('a cancel queued between reports, before a report of the same command, in one turn: that report sees it', async () => {
      const { store } = await storeAndAdmin();
      const [a, b] = await claimAll(store, 2);
      // b's report first: a locking read for a's report taken with it would miss the cancel.
      const [, canceled, reported] = await Promise.all([
        store.report(b!.id, { agentId: 'agent-1', leaseId: b!.leaseId, result: {} }),
        store.cancel(a!.id),
        store.report(a!.id, { agentId: 'agent-1', leaseId: a!.leaseId, status: 'FAILED', error: 'boom', retryable: true }),
      ]);
      expect(canceled).toMatchObject({ status: 'RUNNING', cancelRequested: true });
      // A retryable failure of a command whose cancel was asked for ends it: no retry. Had the
      // report decided from the row as it was before the cancel, it would be PENDING again.
      expect(reported.command).toMatchObject({ status: 'FAILED' });
      expect(await store.get(a!.id)).toMatchObject({ status: 'FAILED' });
    });

    test('a batched report that writes fewer rows than it checked commits nothing; the others of its turn land alone', async () => {
      const { store, db } = await storeAndAdmin();
      const [a, b] = await claimAll(store, 2);
      // A trigger that silently skips the update of a's row: the store's check passed, the write
      // did not happen. The transaction must not commit as if it had.
      await db.query(`CREATE FUNCTION skip_row() RETURNS trigger LANGUAGE plpgsql AS $$
          BEGIN IF OLD.id = '${a!.id}' THEN RETURN NULL; END IF; RETURN NEW; END $$;
        CREATE TRIGGER skip_row BEFORE UPDATE ON commands FOR EACH ROW EXECUTE FUNCTION skip_row()`);
      const [ra, rb] = await Promise.allSettled([
        store.report(a!.id, { agentId: 'agent-1', leaseId: a!.leaseId, result: {} }),
        store.report(b!.id, { agentId: 'agent-1', leaseId: b!.leaseId, result: {} }),
      ]);
      expect(ra).toMatchObject({ status: 'rejected', reason: { message: expect.stringMatching(/division by zero/) } });
      expect(rb).toMatchObject({ status: 'fulfilled', value: { command: { status: 'COMPLETED' } } });
      expect(await store.get(a!.id)).toMatchObject({ status: 'RUNNING' });
      const { rows } = await db.query<{ n: number }>("SELECT count(*)::integer AS n FROM events WHERE transition = 'report'");
      expect(rows[0]!.n).toBe(1);
      expect(await store.countByStatus()).toEqual(await realCounts(db));
    });

    test('a report then a cancel of the same command in one turn: the cancel sees the report', async () => {
      const { store } = await storeAndAdmin();
      const [a] = await claimAll(store, 1);
      const [reported, canceled] = await Promise.allSettled([
        store.report(a!.id, { agentId: 'agent-1', leaseId: a!.leaseId, result: {} }),
        store.cancel(a!.id),
      ]);
      expect(reported).toMatchObject({ status: 'fulfilled', value: { command: { status: 'COMPLETED' } } });
      // Had the cancel's read gone out before the report's deferred write, it would have seen the
      // command RUNNING and answered so.
      expect(canceled).toMatchObject({ status: 'rejected', reason: { statusCode: 409, message: expect.stringMatching(/already COMPLETED/) } });
      expect(await store.get(a!.id)).toMatchObject({ status: 'COMPLETED', cancelRequested: false });
    });

    test('an unknown command among reports of one turn is a 404; the others land', async () => {
      const { store } = await storeAndAdmin();
      const [a] = await claimAll(store, 1);
      const [missing, ok] = await Promise.allSettled([
        store.report('no-such-command', { agentId: 'agent-1', result: {} }),
        store.report(a!.id, { agentId: 'agent-1', leaseId: a!.leaseId, result: {} }),
      ]);
      expect(missing).toMatchObject({ status: 'rejected', reason: { statusCode: 404 } });
      expect(ok).toMatchObject({ status: 'fulfilled', value: { command: { status: 'COMPLETED' } } });
    });
  });

  test('a claim that misses the keyed turn wakes polls again shortly only when a keyed command waits', async () => {
    const { store, db } = await storeAndAdmin();
    let wakes = 0;
    store.events.on('available', () => wakes++);
    await db.query('SELECT pg_advisory_lock($1)', [0x61656b79]);
    await store.submit({ type: 'DELAY', payload: { ms: 1 } });
    await store.claimBatch('agent-1', 60_000, 5);
    await new Promise((resolve) => setTimeout(resolve, 150));
    wakes = 0;
    // Nothing keyed is waiting: a missed turn leaves nothing behind, so nothing to wake for.
    expect(await store.claimBatch('agent-1', 60_000, 5)).toEqual([]);
    await new Promise((resolve) => setTimeout(resolve, 150));
    expect(wakes).toBe(0);
    await store.submit({ type: 'DELAY', payload: { ms: 1 }, concurrencyKey: 'k', concurrencyLimit: 1 });
    await new Promise((resolve) => setTimeout(resolve, 50));
    wakes = 0;
    expect(await store.claimBatch('agent-1', 60_000, 5)).toEqual([]);
    await waitFor(() => wakes > 0, { what: 'polls woken again for the keyed command', timeoutMs: 2_000, intervalMs: 5 });
    await db.query('SELECT pg_advisory_unlock($1)', [0x61656b79]);
  });

  test('a claim that misses the keyed turn (another replica holds it) takes only unkeyed commands', async () => {
    const { store, db } = await storeAndAdmin();
    const keyed = await store.submit({ type: 'DELAY', payload: { ms: 1 }, concurrencyKey: 'k', concurrencyLimit: 1 });
    const plain = await store.submit({ type: 'DELAY', payload: { ms: 1 } });
    await db.query('SELECT pg_advisory_lock($1)', [0x61656b79]);
    const first = await store.claimBatch('agent-1', 60_000, 5);
    expect(first.map((c) => c.id)).toEqual([plain.command.id]);
    await db.query('SELECT pg_advisory_unlock($1)', [0x61656b79]);
    const second = await store.claimBatch('agent-1', 60_000, 5);
    expect(second.map((c) => c.id)).toEqual([keyed.command.id]);
  });
});
