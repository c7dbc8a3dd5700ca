/**
 * The SQLite store's life around its transitions: it makes the directory of its file, answers
 * reads on an empty file, reports a failure after a commit on stderr by default, closes once (a
 * second close is a no-op, not a crash at shutdown), keeps its full flag until a write stores
 * something, and answers a health check without the write lock while it has space.
 *
 * Equivalent mutants of sqlite.ts that `npm run mutate store` leaves (besides those named in
 * store-replays.test.ts, store-sqlite-key-slots.test.ts and store-sqlite-fleet.test.ts):
 * - `if (options.path !== ':memory:') mkdirSync(…)` → always, or ':memory:' → "": dirname of
 *   ':memory:' is '.', which exists, so the recursive mkdir does nothing.
 * - `get()?.seq ?? 0` / `?.at ?? null` / `?.seq ?? undefined` (lastCommandSeq, lastEventSeq,
 *   oldestEventSeq, oldestFinishedAt, nextWakeAt) → without `?.`: min()/max() over a table always
 *   answer one row (NULL when empty), so `?.` never short-cuts; the empty answers are pinned below.
 * - insertCommand(): `key !== null && row.concurrency_limit !== null` → `||` or either side
 *   `true`: a submit names both or neither (SubmitBody refuses one alone).
 * - claimEach(): `if (exhausted.has(shape))` → never, and `if (rows.length < max)` → never: a
 *   request on a route that already came back short finds nothing in the same transaction
 *   either; the skip only saves its statement.
 * - cachedStatement(): `if (!statement)` → always: the statement is prepared again, same SQL.
 * - retry(): `if (!row) throw …` → never (and its message, never reached): the row was read as
 *   FAILED in the same transaction, so the guarded UPDATE always matches; likewise cancelPending's
 *   `if (!row) return undefined` in a bulk step.
 * - pendingState(): `row.ready === SCHEDULED && …` → `true && …`, `row.concurrency_key === null`
 *   → false, `key?.running`/`key?.limit` → without `?.`: a ready or held row has no time ahead
 *   unless the clock stepped back (tested in store-sqlite-refusals), a held row always has a key,
 *   and its key's row exists from its submit on.
 * - holdsSlot(): `row.status === 'PENDING'` → true: it is only asked of RUNNING or PENDING rows.
 * - countByStatus(): the zeros `{ PENDING: 0, … }` → `{}`: command_counts always holds the four rows.
 * - close(): `if (!this.db.open) return` → never: better-sqlite3's close() of a closed database
 *   does nothing, and the group commit has nothing queued.
 * And of migrate-sqlite.ts (`npm run mutate store-statements`):
 * - `name.endsWith('.sql')` → `endsWith('')`: migrations/sqlite/ holds only .sql files.
 */
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { existsSync } from 'node:fs';
import { afterEach, describe, expect, test, vi } from 'vitest';
import { SqliteCommandStore } from '../src/store/sqlite.js';
import { tempDir } from '../../test-support/processes.js';
import { delay, useSqliteStore } from './sqlite-test-store.js';

const t = useSqliteStore('store-lifecycle');

afterEach(() => {
  vi.restoreAllMocks();
});

describe('SQLite store life', () => {
  test('opens a file in a directory that does not exist yet', async () => {
    const path = join(t.dir, 'not', 'yet', 'there', 'store.db');
    const store = new SqliteCommandStore({ path });
    try {
      await store.submit(delay());
      expect(existsSync(path)).toBe(true);
      expect(await store.countByStatus()).toMatchObject({ PENDING: 1 });
    } finally {
      await store.close();
    }
  });

  test('an empty file: no events, no commands, nothing due', async () => {
    expect(await t.store.lastEventSeq()).toBe(0);
    expect(await t.store.lastCommandSeq()).toBe(0);
    expect(await t.store.oldestEventSeq()).toBeUndefined();
    expect(await t.store.oldestFinishedAt()).toBeUndefined();
    expect(await t.store.nextWakeAt()).toEqual({});
    expect(await t.store.eventsSince(0, 10)).toEqual([]);
    expect(await t.store.lastEventFor('no-such-id')).toBeUndefined();
    expect(await t.store.countByStatus()).toEqual({ PENDING: 0, RUNNING: 0, COMPLETED: 0, FAILED: 0 });
    expect(await t.store.list({ limit: 10 })).toEqual({ commands: [] });
    expect(t.store.isFull()).toBe(false);
  });

  test('the first event and command are seq 1; oldestEventSeq follows the head of the log', async () => {
    const { command } = await t.store.submit(delay());
    expect(await t.store.oldestEventSeq()).toBe(1);
    expect(await t.store.lastEventSeq()).toBe(1);
    expect(await t.store.lastCommandSeq()).toBe(1);
    await t.store.claim('a1', 30_000);
    expect(await t.store.lastEventSeq()).toBe(2);
    expect(await t.store.lastEventFor(command.id)).toMatchObject({ seq: 2, transition: 'claim', command: { status: 'RUNNING' } });
  });

  test('close twice: the second is a no-op; the store answers nothing after', async () => {
    const dir = tempDir('store-close');
    const store = new SqliteCommandStore({ path: join(dir.path, 'store.db') });
    await store.submit(delay());
    await store.close();
    await expect(store.close()).resolves.toBeUndefined();
    await expect(store.ping()).rejects.toThrow();
    dir.cleanup(true);
  });

  test('without onError, a failure after a commit goes to stderr naming what failed', async () => {
    const dir = tempDir('store-stderr');
    const store = new SqliteCommandStore({ path: join(dir.path, 'store.db') });
    const lines: unknown[][] = [];
    vi.spyOn(console, 'error').mockImplementation((...args: unknown[]) => {
      lines.push(args);
    });
    const boom = new Error('listener bug');
    store.events.on('event', () => {
      throw boom;
    });
    try {
      const { command } = await store.submit(delay());
      expect(lines).toEqual([[`control-server: an 'event' listener failed on submit of command ${command.id}`, boom]]);
    } finally {
      await store.close();
      dir.cleanup(true);
    }
  });

  test('without a clock, the store reads the wall clock', async () => {
    const dir = tempDir('store-wall-clock');
    const store = new SqliteCommandStore({ path: join(dir.path, 'store.db') });
    try {
      const before = Date.now();
      const { command } = await store.submit(delay());
      const after = Date.now();
      expect(Date.parse(command.createdAt)).toBeGreaterThanOrEqual(before);
      expect(Date.parse(command.createdAt)).toBeLessThanOrEqual(after);
    } finally {
      await store.close();
      dir.cleanup(true);
    }
  });
});

describe('a full database', () => {
  test('a write that stores nothing does not clear the full flag; one that stores something does', async () => {
    const db = (t.store as unknown as { db: Database.Database }).db;
    db.pragma(`max_page_count = ${(db.pragma('page_count', { simple: true }) as number) + 1}`);
    const big = delay({ queue: 'q', concurrencyKey: 'x'.repeat(200), concurrencyLimit: 1 });
    for (let i = 0; i < 100 && !t.store.isFull(); i++) await t.store.submit(big).catch(() => undefined);
    expect(t.store.isFull()).toBe(true);
    // Writes that change nothing: no due command to promote, no agent to save.
    expect(await t.store.promoteDue()).toBe(false);
    await t.store.saveAgents([]);
    expect(t.store.isFull()).toBe(true);
    db.pragma('max_page_count = 1073741823');
    await t.store.submit(delay());
    expect(t.store.isFull()).toBe(false);
  });

  test('a health check does not wait for the write lock while the database has space', async () => {
    const other = new Database(join(t.dir, 'store.db'));
    try {
      other.exec('BEGIN IMMEDIATE');
      const started = performance.now();
      await t.store.ping();
      expect(performance.now() - started).toBeLessThan(1_000);
      other.exec('ROLLBACK');
    } finally {
      other.close();
    }
  });
});
