/**
 * Flat cost (SPEC §7), checked on the statements themselves rather than by timing: every prepared
 * statement of the SQLite store searches an index or a rowid range, none scans a table, with and
 * without ANALYZE statistics; the event-log prune stops at the first event it keeps; the counts
 * kept by each write equal a real count.
 */
import { join } from 'node:path';
import type Database from 'better-sqlite3';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { SqliteCommandStore } from '../src/store/sqlite.js';
import { prepareStatements } from '../src/store/sqlite-statements.js';
import { tempDir } from '../../test-support/processes.js';
import { TestClock } from './helpers.js';

let dir: ReturnType<typeof tempDir>;
let failed = false;
let files = 0;
const open: SqliteCommandStore[] = [];

beforeAll(() => {
  dir = tempDir('store-sqlite-plans');
});
afterEach(async ({ task }) => {
  if (task.result?.state === 'fail') failed = true;
  for (const store of open.splice(0)) await store.close();
});
afterAll(() => dir.cleanup(!failed));

const openStore = (options: Partial<ConstructorParameters<typeof SqliteCommandStore>[0]> = {}) => {
  const store = new SqliteCommandStore({ path: join(dir.path, `plans-${++files}.db`), ...options });
  open.push(store);
  return store;
};
const dbOf = (store: SqliteCommandStore) => (store as unknown as { db: Database.Database }).db;

/** The EXPLAIN QUERY PLAN lines of `sql`, every parameter bound to 0. */
function plan(db: Database.Database, sql: string): string[] {
  const named = [...new Set([...sql.matchAll(/@(\w+)/g)].map((m) => m[1] as string))];
  const positional = (sql.match(/\?/g) ?? []).length;
  const args = named.length ? [Object.fromEntries(named.map((name) => [name, 0]))] : Array<number>(positional).fill(0);
  return db
    .prepare<unknown[], { detail: string }>(`EXPLAIN QUERY PLAN ${sql}`)
    .all(...args)
    .map((row) => row.detail);
}

/** Seeds `n` finished commands and their events directly, as a long-running server has them. */
function seed(db: Database.Database, n: number, now: number): void {
  db.prepare(`WITH RECURSIVE i(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM i WHERE k < ?)
    INSERT INTO commands (id, type, payload, status, max_attempts, timeout_ms, available_at, created_at, updated_at, finished_at, attempts, agent_id)
    SELECT 'seed-' || k, 'DELAY', '{"ms":1}', CASE WHEN k % 10 = 0 THEN 'FAILED' ELSE 'COMPLETED' END, 3, 1000, ?, ?, ?, ? - k, 1, 'agent-1' FROM i`).run(n, now, now, now, now);
  db.prepare(`WITH RECURSIVE i(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM i WHERE k < ?)
    INSERT INTO events (command_id, kind, transition, data, created_at)
    SELECT 'seed-' || k, 'status', 'report', '{}', ? FROM i`).run(n, now);
}

describe('statement plans', () => {
  /** What each statement must search. A SCAN of a table would cost in proportion to its size. */
  const expected: Record<string, RegExp[]> = {
    expired: [/SEARCH commands USING INDEX commands_lease/],
    nextLeaseExpiry: [/SEARCH commands USING (COVERING )?INDEX commands_lease/],
    // The claim and the per-key statements: store-sqlite-routing.test.ts.
    nextAvailable: [/SEARCH commands USING (COVERING )?INDEX commands_scheduled/],
    claimable: [/commands_ready/, /SEARCH commands USING COVERING INDEX commands_scheduled \(available_at<\?\)/],
    lastEventSeq: [/^SEARCH events$/], // max(rowid): the last page of the table b-tree
    eventLogHead: [/^SEARCH events$/],
    firstEventAtOrAfter: [/SEARCH events USING COVERING INDEX events_created \(created_at>\?\)/],
    pruneEventsBefore: [/SEARCH events USING INTEGER PRIMARY KEY \(rowid<\?\)/],
    deleteFinished: [/SEARCH commands USING INDEX commands_finished \(finished_at<\?\)/],
    oldestFinished: [/SEARCH commands USING (COVERING )?INDEX commands_finished/],
    countByStatus: [/SCAN command_counts/], // its four rows, kept by each write
    eventsSince: [/SEARCH events USING INTEGER PRIMARY KEY \(rowid>\?\)/],
    eventsSinceForCommand: [/SEARCH events USING INDEX events_command \(command_id=\? AND seq>\?\)/],
    lastEventFor: [/SEARCH events USING INDEX events_command \(command_id=\?\)/],
  };
  /** Tables a statement may SCAN: the four-row counts, the probe, no rows at all. */
  const scanAllowed = /^SCAN (command_counts|space_probe|CONSTANT ROW)/;
  /**
   * Scans allowed to one statement only. claimable: inside EXISTS, a scan of the partial index of
   * ready commands stops at its first entry (one page, whatever the backlog).
   */
  const scanAllowedFor: Record<string, RegExp> = { claimable: /^SCAN commands USING COVERING INDEX commands_ready$/ };

  for (const statistics of ['without statistics', 'after ANALYZE on 5 000 rows'] as const) {
    test(`no statement scans a table, and each uses its index (${statistics})`, () => {
      const store = openStore();
      const db = dbOf(store);
      if (statistics !== 'without statistics') {
        seed(db, 5_000, Date.now());
        db.exec('ANALYZE');
      }
      const statements = prepareStatements(db);
      const plans = Object.fromEntries(
        Object.entries(statements).map(([name, statement]) => [name, plan(db, statement.source)]),
      );
      for (const [name, lines] of Object.entries(plans)) {
        for (const line of lines) {
          if (line.startsWith('SCAN') && !scanAllowedFor[name]?.test(line)) {
            expect(line, `${name} scans: ${lines.join(' | ')}`).toMatch(scanAllowed);
          }
        }
      }
      for (const [name, patterns] of Object.entries(expected)) {
        const lines = plans[name];
        expect(lines, `no statement named ${name}`).toBeDefined();
        for (const pattern of patterns) {
          expect(lines?.some((line) => pattern.test(line)), `${name}: ${lines?.join(' | ')}`).toBe(true);
        }
      }
    });
  }
});

test('a filtered list page searches the index of its filter, from the cursor down', async () => {
  const store = openStore();
  const db = dbOf(store);
  const cases = [
    [{ status: 'COMPLETED' as const }, /SEARCH commands USING INDEX commands_status_seq \(status=\? AND seq<\?\)/],
    [{ type: 'DELAY' as const }, /SEARCH commands USING INDEX commands_type_seq \(type=\? AND seq<\?\)/],
    [{ agentId: 'agent-1' }, /SEARCH commands USING INDEX commands_agent_seq \(agent_id=\? AND seq<\?\)/],
    [{}, /SEARCH commands USING INTEGER PRIMARY KEY \(rowid<\?\)/],
  ] as const;
  for (const [filter, pattern] of cases) {
    await store.list({ ...filter, beforeSeq: 10, limit: 10 });
    const statements = (store as unknown as { listStatements: Map<string, Database.Statement> }).listStatements;
    const sql = [...statements.keys()].at(-1) ?? '';
    const lines = plan(db, sql);
    expect(lines.some((line) => pattern.test(line)), `${JSON.stringify(filter)}: ${lines.join(' | ')}`).toBe(true);
    expect(lines.join(' | '), 'no sort of the matching rows').not.toMatch(/TEMP B-TREE/);
  }
});

describe('event-log prune', () => {
  const logged = (db: Database.Database) =>
    db.prepare<[], { head: number; last: number; n: number }>('SELECT min(seq) AS head, max(seq) AS last, count(*) AS n FROM events').get();

  test('deletes from the head up to the first event young enough to keep, in batches; stops there', async () => {
    const clock = new TestClock();
    const store = openStore({ now: clock.now, eventRetention: { count: 1_000_000, ms: 60_000 } });
    const db = dbOf(store);
    const batch = (n: number) => store.submitBatch(Array.from({ length: n }, () => ({ type: 'DELAY' as const, payload: { ms: 1 } })));
    await batch(600); // events 1…600 at t0
    clock.advance(120_000);
    await batch(500); // 601…1100 at t0 + 2 min: 1 100 events, the prune runs
    expect(logged(db), 'the 600 events older than a minute are gone, the young ones kept').toEqual({ head: 601, last: 1100, n: 500 });
    clock.advance(120_000);
    for (let i = 0; i < 3; i++) await batch(1000); // 3 000 more; the 500 are now old
    expect(logged(db), 'the young events are kept').toEqual({ head: 1101, last: 4100, n: 3000 });
    clock.advance(120_000);
    await batch(1000); // 3 000 old events: one prune deletes at most 2 000 of them
    expect(logged(db)).toEqual({ head: 3101, last: 5100, n: 2000 });
    await batch(1); // a full batch prunes again at the next write
    expect(logged(db)).toEqual({ head: 4101, last: 5101, n: 1001 });
  });

  test('after the clock stepped back, the prune stops at the first young event by seq, not the first by time', async () => {
    const clock = new TestClock();
    const store = openStore({ now: clock.now, eventRetention: { count: 1_000_000, ms: 60_000 } });
    const db = dbOf(store);
    const batch = (n: number) => store.submitBatch(Array.from({ length: n }, () => ({ type: 'DELAY' as const, payload: { ms: 1 } })));
    clock.advance(50_000);
    await batch(500); // events 1…500 at t0 + 50 s
    clock.advance(-50_000); // the wall clock steps back
    await batch(499); // 501…999 at t0: older by time, newer by seq
    clock.advance(30_000);
    await store.submit({ type: 'DELAY', payload: { ms: 1 } }); // the 1 000th event: the prune runs
    // Every event is younger than a minute. Before the fix the first young one by time (501) was
    // the boundary, and events 1…500 went.
    expect(logged(db)).toEqual({ head: 1, last: 1000, n: 1000 });
    clock.advance(40_000); // now 1…500 are 20 s old, 501…999 70 s: only a head of old events goes
    await batch(1000);
    expect(logged(db), 'events 1…500 are young: nothing before them goes').toEqual({ head: 1, last: 2000, n: 2000 });
  });

  test('keeps no more than the newest `count` events, however young (SPEC §4: 24 h or 100 000 events, whichever is fewer)', async () => {
    const clock = new TestClock();
    const store = openStore({ now: clock.now, eventRetention: { count: 300, ms: 3_600_000 } });
    const db = dbOf(store);
    await store.submitBatch(Array.from({ length: 999 }, () => ({ type: 'DELAY' as const, payload: { ms: 1 } })));
    clock.advance(5_000);
    await store.submit({ type: 'DELAY', payload: { ms: 1 } }); // the 1 000th event: the prune runs
    expect(logged(db), 'all within the hour: the newest 300 kept').toEqual({ head: 701, last: 1000, n: 300 });
    await store.submitBatch(Array.from({ length: 1000 }, () => ({ type: 'DELAY' as const, payload: { ms: 1 } })));
    expect(logged(db)).toEqual({ head: 1701, last: 2000, n: 300 });
  });
});

test('the counts kept by each write equal a real count; rows written by plain SQL while the store was closed are counted when it opens; migration 002 counts an existing database', async () => {
  const first = openStore();
  const real = (db: Database.Database) => {
    const counts: Record<string, number> = { PENDING: 0, RUNNING: 0, COMPLETED: 0, FAILED: 0 };
    for (const row of db.prepare<[], { status: string; n: number }>('SELECT status, count(*) AS n FROM commands GROUP BY status').all()) {
      counts[row.status] = row.n;
    }
    return counts;
  };
  const seededAt = Date.now() - 1000;
  const path = dbOf(first).name;
  await first.close();
  const Sqlite = (await import('better-sqlite3')).default;
  const other = new Sqlite(path);
  seed(other, 1000, seededAt); // as `bench growth` seeds a file before the server starts
  other.close();
  const store = openStore({ path });
  const db = dbOf(store);
  expect(await store.countByStatus()).toEqual(real(db));
  for (let i = 0; i < 20; i++) await store.submit({ type: 'DELAY', payload: { ms: 1 } });
  const claimed = await store.claimBatch('agent-1', 30_000, 7);
  for (const c of claimed.slice(0, 3)) await store.report(c.id, { agentId: 'agent-1', leaseId: c.leaseId, result: {} });
  // Deletes the 500 seeded commands finished more than 500 ms before seededAt (50 of them FAILED).
  expect(await store.deleteFinishedBefore(seededAt - 500, 1000)).toBe(500);
  expect(await store.countByStatus()).toEqual(real(db));
  expect(await store.countByStatus()).toEqual({ PENDING: 13, RUNNING: 4, COMPLETED: 450 + 3, FAILED: 50 });

  // Migration 002 on a database of 001 only counts what it already holds.
  db.exec(`DELETE FROM schema_migrations WHERE name = '002_flat_cost.sql'`);
  db.exec(`DROP INDEX commands_finished; DROP INDEX events_created; DROP TABLE command_counts; DROP TABLE space_probe;`);
  await store.close();
  const reopened = new SqliteCommandStore({ path: db.name });
  open.push(reopened);
  expect(await reopened.countByStatus()).toEqual(real(dbOf(reopened)));
  expect(await reopened.countByStatus()).toEqual({ PENDING: 13, RUNNING: 4, COMPLETED: 453, FAILED: 50 });
});
