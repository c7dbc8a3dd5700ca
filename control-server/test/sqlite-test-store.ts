/**
 * A SQLite store on a real file in a temp dir, on an injected clock, for the SQLite store's own
 * tests: opened fresh for each test, closed after it; a failing test keeps its directory.
 */
import { join } from 'node:path';
import { afterEach, beforeEach } from 'vitest';
import type { SubmitBody } from '@agent-executor/common';
import { SqliteCommandStore, type SqliteStoreOptions } from '../src/store/sqlite.js';
import { tempDir } from '../../test-support/processes.js';
import { TestClock } from './helpers.js';

export interface TestStore {
  store: SqliteCommandStore;
  clock: TestClock;
  /** The temp dir of this test. */
  dir: string;
}

/**
 * Registers the hooks; the returned object is filled before each test. Errors reported after a
 * commit (`onError`) fail the test unless `options.onError` is given.
 */
export function useSqliteStore(prefix: string, options: Partial<SqliteStoreOptions> = {}): TestStore {
  const current = {} as TestStore;
  let dir: ReturnType<typeof tempDir>;
  beforeEach(() => {
    dir = tempDir(prefix);
    current.dir = dir.path;
    current.clock = new TestClock();
    current.store = new SqliteCommandStore({
      path: join(dir.path, 'store.db'),
      now: current.clock.now,
      random: () => 0.5,
      onError: (error) => {
        throw error;
      },
      ...options,
    });
  });
  afterEach(async ({ task }) => {
    await current.store.close();
    dir.cleanup(task.result?.state !== 'fail');
  });
  return current;
}

export const delay = (extra: Partial<SubmitBody> = {}): SubmitBody => ({ type: 'DELAY', payload: { ms: 1 }, ...extra }) as SubmitBody;
export const keyed = (key: string, limit: number, extra: Partial<SubmitBody> = {}): SubmitBody =>
  delay({ concurrencyKey: key, concurrencyLimit: limit, ...extra });
