/**
 * The PostgreSQL group commit (store/postgres-group-commit.ts) on a real database: a batch's
 * afterCommit (with replicas, a read of the other replicas' events) must not hold up the next
 * commit, while each batch's callers still hear back only after their own afterCommit, in order.
 */
import pg from 'pg';
import { afterEach, expect, inject, test } from 'vitest';
import { migratePostgres } from '../src/store/migrate-postgres.js';
import { PgGroupCommit, type Committed } from '../src/store/postgres-group-commit.js';
import { carriedEvents, parseNotice, type Notice } from '../src/store/postgres-notice.js';
import { CHANNEL } from '../src/store/postgres-statements.js';
import { newCommandRow } from '../src/store/transitions.js';
import { createDatabase } from '../../test-support/postgres.js';
import { waitFor } from '../../test-support/processes.js';

const pools: pg.Pool[] = [];
afterEach(async () => {
  for (const pool of pools.splice(0)) await pool.end();
});

test('the next batch commits while the last one is still in afterCommit; callers hear back in commit order', async () => {
  const url = await createDatabase(inject('postgresUrl'), 'group_commit');
  const pool = new pg.Pool({ connectionString: url, max: 4 });
  pools.push(pool);
  await migratePostgres(pool);

  let releaseFirst!: () => void;
  const firstHeld = new Promise<void>((resolve) => (releaseFirst = resolve));
  const announced: number[] = [];
  const writes = new PgGroupCommit(pool, {
    replica: 'test',
    now: Date.now,
    afterCommit: async (_: Committed) => {
      announced.push(announced.length + 1);
      if (announced.length === 1) await firstHeld;
    },
  });
  // Each write counts one more PENDING command: the counter row's count another connection reads.
  const pending = async () => Number((await pool.query<{ n: string }>('SELECT pending AS n FROM event_counter')).rows[0]?.n);
  const heard: string[] = [];
  const a = writes.run(async (tx) => tx.count(null, 'PENDING')).then(() => heard.push('a'));
  await waitFor(() => announced.length === 1, { what: 'the first batch committed', timeoutMs: 5_000, intervalMs: 10 });
  const b = writes.run(async (tx) => tx.count(null, 'PENDING')).then(() => heard.push('b'));

  // Committed while the first batch's afterCommit still holds: before, the drain waited for it.
  await waitFor(async () => (await pending()) === 2, { what: 'the second batch committed', timeoutMs: 5_000, intervalMs: 20 });
  expect(heard).toEqual([]);

  releaseFirst();
  await Promise.all([a, b]);
  expect(heard).toEqual(['a', 'b']);
  expect(announced).toEqual([1, 2]);
  await writes.flush();
});

test('a second batch runs its writes while the first waits for the event counter; both commit', async () => {
  const url = await createDatabase(inject('postgresUrl'), 'group_commit_lanes');
  const pool = new pg.Pool({ connectionString: url, max: 4 });
  pools.push(pool);
  await migratePostgres(pool);
  const writes = new PgGroupCommit(pool, { replica: 'test', now: Date.now, afterCommit: async () => {} });

  // Another replica's commit in progress: it holds the counter row until it commits.
  const other = await pool.connect();
  await other.query('BEGIN');
  await other.query('SELECT last_seq FROM event_counter FOR UPDATE');
  const started: string[] = [];
  const write = (name: string) =>
    writes.run(async (tx) => {
      started.push(name);
      tx.count(null, 'PENDING');
      return name;
    });
  const a = write('a');
  await waitFor(() => started.length === 1, { what: 'the first batch to run its write', timeoutMs: 5_000, intervalMs: 10 });
  const b = write('b');
  // With one batch at a time, b would wait for a's commit, which waits for the counter.
  await waitFor(() => started.length === 2, { what: 'the second batch to run its write meanwhile', timeoutMs: 5_000, intervalMs: 10 });
  await other.query('COMMIT');
  other.release();
  expect(await Promise.all([a, b])).toEqual(['a', 'b']);
  const { rows } = await pool.query<{ n: string }>('SELECT pending AS n FROM event_counter');
  expect(Number(rows[0]?.n)).toBe(2);
  await writes.flush();
});

test('a batch whose writes need no answer goes to PostgreSQL in one write to the socket, BEGIN with it', async () => {
  const url = await createDatabase(inject('postgresUrl'), 'group_commit_writes');
  // As the store's pool: pipelined, so nothing waits for an answer it does not need.
  const pool = new pg.Pool({ connectionString: url, max: 1, pipeline: true });
  pools.push(pool);
  let socketWrites = 0;
  pool.on('connect', (client) => {
    const stream = (client as unknown as { connection: { stream: Record<'_write' | '_writev', (...args: unknown[]) => unknown> } }).connection.stream;
    for (const method of ['_write', '_writev'] as const) {
      const original = stream[method].bind(stream);
      stream[method] = (...args: unknown[]) => {
        socketWrites++;
        return original(...args);
      };
    }
  });
  await migratePostgres(pool);
  const writes = new PgGroupCommit(pool, { replica: 'test', now: Date.now, afterCommit: async () => {} });
  const submit = () =>
    writes.run(async (tx) => {
      const row = newCommandRow({ type: 'DELAY', payload: { ms: 1 } }, Date.now(), null, null);
      tx.insertLater(row);
      return tx.log('submit', row, null);
    });
  await submit(); // the connection's first use prepares its statements
  socketWrites = 0;
  const command = await submit();
  // BEGIN, the insert, the events and COMMIT: one write, one round trip (BEGIN went alone before).
  expect(socketWrites).toBe(1);
  expect((await pool.query<{ status: string }>('SELECT status FROM commands WHERE id = $1', [command.id])).rows).toEqual([{ status: 'PENDING' }]);
  await writes.flush();
});

/**
 * A group commit on a fresh database with a LISTEN connection beside it: every notification heard,
 * and every statement its pool sent (name, or text, and values).
 */
async function notifyingWrites(name: string, noticeDelayMs: number) {
  const url = await createDatabase(inject('postgresUrl'), name);
  const pool = new pg.Pool({ connectionString: url, max: 1, pipeline: true });
  pools.push(pool);
  const listener = new pg.Client({ connectionString: url });
  await listener.connect();
  const heard: Notice[] = [];
  listener.on('notification', ({ payload }) => heard.push(parseNotice(payload)!));
  await listener.query(`LISTEN ${CHANNEL}`);
  const sent: Array<{ name: string | undefined; values: unknown[] | undefined }> = [];
  pool.on('connect', (client) => {
    const query = client.query.bind(client) as (...args: unknown[]) => unknown;
    (client as unknown as { query: (...args: unknown[]) => unknown }).query = (config: unknown, ...rest: unknown[]) => {
      const { name, text, values } = (typeof config === 'string' ? { text: config } : config) as pg.QueryConfig & { name?: string };
      sent.push({ name: name ?? text, values });
      return query(config, ...rest);
    };
  });
  await migratePostgres(pool);
  sent.length = 0;
  const writes = new PgGroupCommit(pool, { replica: 'test', now: Date.now, afterCommit: async () => {}, noticeDelayMs });
  const logOne = (status: 'PENDING' | 'COMPLETED') =>
    writes.run(async (tx) => {
      const row = { ...newCommandRow({ type: 'DELAY', payload: { ms: 1 } }, Date.now(), null, null), status };
      if (status === 'PENDING') tx.insertLater(row);
      return tx.log(status === 'PENDING' ? 'submit' : 'report', row, null);
    });
  return { heard, sent, writes, logOne, end: () => listener.end() };
}

test('a batch that made work available notifies at its commit; any other batch\'s notification is held, then sent alone', async () => {
  const { heard, sent, writes, logOne, end } = await notifyingWrites('group_commit_notify', 20);
  try {
    const submitted = await logOne('PENDING');
    const reported = await logOne('COMPLETED');
    await waitFor(() => heard.length === 2, { what: 'both notifications', timeoutMs: 5_000, intervalMs: 10 });
    await writes.flush();
    const names = sent.map((s) => s.name);
    const logs = sent.filter((s) => s.name === 'ae_log_events');
    // The submit's notification went with its commit; the report's after its COMMIT, alone.
    expect(logs.map((s) => s.values?.[9])).toEqual([true, false]);
    expect(names.filter((n) => n === 'ae_notify_each')).toHaveLength(1);
    expect(names.indexOf('ae_notify_each')).toBeGreaterThan(names.lastIndexOf('COMMIT'));
    // Both carry what a listener needs: who, the last id, whether work appeared, the events.
    expect(heard.map((n) => [n.replica, n.lastSeq, n.available])).toEqual([
      ['test', 1, true],
      ['test', 2, false],
    ]);
    expect(carriedEvents(heard[0]!)?.map((e) => e.command.id)).toEqual([submitted.id]);
    expect(carriedEvents(heard[1]!)?.map((e) => [e.seq, e.command.id, e.command.status])).toEqual([[2, reported.id, 'COMPLETED']]);
  } finally {
    await end();
  }
});

test('a held notification goes with the next commit, ahead of that commit\'s own; flush sends what is still held', async () => {
  // Held far longer than the test: only a commit or flush can send it.
  const { heard, sent, writes, logOne, end } = await notifyingWrites('group_commit_notify_carried', 600_000);
  try {
    const reported = await logOne('COMPLETED');
    const submitted = await logOne('PENDING');
    await waitFor(() => heard.length === 2, { what: 'both notifications', timeoutMs: 5_000, intervalMs: 10 });
    const names = sent.map((s) => s.name);
    // Sent inside the submit's transaction, before its events and its COMMIT: no statement of its own.
    expect(names.filter((n) => n === 'ae_notify_each')).toHaveLength(1);
    const carriedAt = names.indexOf('ae_notify_each');
    expect(carriedAt).toBeLessThan(names.lastIndexOf('ae_log_events'));
    expect(carriedAt).toBeLessThan(names.lastIndexOf('COMMIT'));
    expect(carriedAt).toBeGreaterThan(names.indexOf('COMMIT'));
    // Delivered in commit order: the held one (id 1) first.
    expect(heard.map((n) => [n.lastSeq, n.available])).toEqual([
      [1, false],
      [2, true],
    ]);
    expect(carriedEvents(heard[0]!)?.map((e) => e.command.id)).toEqual([reported.id]);
    expect(carriedEvents(heard[1]!)?.map((e) => e.command.id)).toEqual([submitted.id]);
    // Held again (a report), it waits for nothing once the store closes.
    await logOne('COMPLETED');
    await writes.flush();
    await waitFor(() => heard.length === 3, { what: 'the held notification, at flush', timeoutMs: 5_000, intervalMs: 10 });
    expect(heard[2]!.lastSeq).toBe(3);
  } finally {
    await end();
  }
});
