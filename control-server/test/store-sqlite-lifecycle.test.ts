/**
 * The SQLite store's life around its transitions: it makes the directory of its file, answers
 * reads on an empty file, reports a failure after a commit on stderr by default, and closes
 * once (a second close is a no-op, not a crash at shutdown).
 *
 * Equivalent mutants (sqlite.ts):
 * - `if (options.path !== ':memory:') mkdirSync(…)` → always: dirname(':memory:') is '.', which
 *   exists, so the recursive mkdir does nothing.
 * - `this.stmt.eventLogHead.get()?.seq ?? undefined` → `&&`/without `?.`: min(seq) over an empty
 *   table is one row holding NULL, so `?.` never short-cuts; NULL ?? undefined is pinned below.
 */
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
