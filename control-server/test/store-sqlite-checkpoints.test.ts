/**
 * WAL checkpoints run in a worker thread (store/sqlite-checkpointer.ts), not in the connection that
 * commits: seen from the database file alone, which holds only what a checkpoint copied into it.
 */
import { copyFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, afterEach, beforeAll, expect, test } from 'vitest';
import { SqliteCommandStore } from '../src/store/sqlite.js';
import { tempDir } from '../../test-support/processes.js';

let dir: ReturnType<typeof tempDir>;
let failed = false;
beforeAll(() => {
  dir = tempDir('store-sqlite-checkpoints');
});
afterEach(({ task }) => {
  if (task.result?.state === 'fail') failed = true;
});
afterAll(() => dir.cleanup(!failed));

/** Commands in a copy of the database file without its WAL: what checkpoints have copied so far. */
function checkpointedCommands(path: string, copy: string): number {
  copyFileSync(path, copy);
  const db = new Database(copy, { readonly: true });
  try {
    return db.prepare<[], { n: number }>('SELECT count(*) AS n FROM commands').get()?.n ?? 0;
  } catch {
    return 0; // not even the schema yet
  } finally {
    db.close();
  }
}

test('commits are copied into the database file by the worker, long before the WAL reaches the writer’s own mark', async () => {
  const path = join(dir.path, 'c.db');
  const store = new SqliteCommandStore({ path, synchronous: 'NORMAL' });
  try {
    // 16 commits of one command: ~250 WAL pages, far below SQLite's default autocheckpoint (1 000)
    // and the writer's backstop, so only the worker checkpoints them.
    for (let i = 0; i < 16; i++) await store.submit({ type: 'DELAY', payload: { ms: 0 } });
    const deadline = Date.now() + 10_000;
    let seen = 0;
    while ((seen = checkpointedCommands(path, join(dir.path, 'copy.db'))) < 16 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(seen).toBe(16);
  } finally {
    await store.close();
  }
  // Closed: the worker's connection went first, so the writer's close removed the WAL.
  expect(existsSync(`${path}-wal`)).toBe(false);
});

test('the store closes its checkpoint worker: close twice, nothing left running', async () => {
  const store = new SqliteCommandStore({ path: join(dir.path, 'twice.db') });
  await store.submit({ type: 'DELAY', payload: { ms: 0 } });
  await Promise.all([store.close(), store.close()]);
  const workers = (process as unknown as { getActiveResourcesInfo(): string[] }).getActiveResourcesInfo().filter((r) => /Worker|MessagePort/.test(r));
  expect(workers).toEqual([]);
});
