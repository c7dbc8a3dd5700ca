import { Worker } from 'node:worker_threads';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { SqliteCommandStore } from '../src/store/sqlite.js';
import { REPO_ROOT, tempDir } from '../../test-support/processes.js';
import { describeStoreContract } from './store-contract.js';

let dir: ReturnType<typeof tempDir>;
let failures = 0;
let files = 0;
const open: SqliteCommandStore[] = [];

beforeAll(() => {
  dir = tempDir('store-sqlite');
});
afterEach(({ task }) => {
  if (task.result?.state === 'fail') failures++;
});
afterAll(async () => {
  for (const store of open) await store.close();
  dir.cleanup(failures === 0);
});

const newPath = () => join(dir.path, `store-${++files}.db`);

describeStoreContract('SQLite', async ({ now, random }) => new SqliteCommandStore({ path: newPath(), now, random }));

describe('SQLite store', () => {
  test('a claim against an empty queue takes no write lock: idle polls do not wait behind a writer', async () => {
    const path = newPath();
    const store = new SqliteCommandStore({ path });
    open.push(store);
    const other = new Database(path);
    try {
      // Another connection holds the write lock: a write transaction would wait busy_timeout (5 s), then fail.
      other.exec('BEGIN IMMEDIATE');
      const started = performance.now();
      expect(await store.claimBatch('agent-1', 30_000, 4)).toEqual([]);
      expect(await store.claimEach([{ agentId: 'agent-1', max: 1 }, { agentId: 'agent-2', max: 1 }], 30_000)).toEqual([[], []]);
      expect(performance.now() - started).toBeLessThan(1000);
      other.exec('ROLLBACK');
    } finally {
      other.close();
    }
  });

  test('the claim without a write transaction still sees work: one queued in the same turn, and one whose backoff ended', async () => {
    let now = Date.parse('2026-01-01T00:00:00Z');
    const store = new SqliteCommandStore({ path: newPath(), now: () => now });
    open.push(store);
    // Not awaited: the submit is queued for the next commit, and the claim queued after it must see it.
    const submitted = store.submit({ type: 'DELAY', payload: { ms: 1 } });
    const claimed = await store.claim('agent-1', 30_000);
    expect(claimed?.id).toBe((await submitted).command.id);
    // A command waiting out a retry backoff is PENDING but not claimable until its time comes.
    const { command } = await store.submit({ type: 'DELAY', payload: { ms: 1 }, maxAttempts: 2 });
    const lease = await store.claim('agent-1', 30_000);
    expect(lease?.id).toBe(command.id);
    await store.report(command.id, { agentId: 'agent-1', leaseId: lease!.leaseId, status: 'FAILED', error: 'try again', retryable: true });
    const backoff = await store.get(command.id);
    expect(backoff).toMatchObject({ status: 'PENDING' });
    expect(await store.claim('agent-2', 30_000)).toBeUndefined();
    now = Date.parse(backoff!.availableAt);
    expect((await store.claim('agent-2', 30_000))?.id).toBe(command.id);
  });

  test('a change and its event are one transaction: when the event cannot be written, the change is undone', async () => {
    const path = newPath();
    const store = new SqliteCommandStore({ path });
    open.push(store);
    const other = new Database(path);
    try {
      other.exec(`CREATE TRIGGER no_events BEFORE INSERT ON events BEGIN SELECT RAISE(ABORT, 'event log refused'); END`);
      await expect(store.submit({ type: 'DELAY', payload: { ms: 1 } })).rejects.toMatchObject({ name: 'SqliteError', message: 'event log refused' });
      expect(await store.countByStatus()).toEqual({ PENDING: 0, RUNNING: 0, COMPLETED: 0, FAILED: 0 });
      other.exec('DROP TRIGGER no_events');
      const { command } = await store.submit({ type: 'DELAY', payload: { ms: 1 } });
      other.exec(`CREATE TRIGGER no_events BEFORE INSERT ON events BEGIN SELECT RAISE(ABORT, 'event log refused'); END`);
      await expect(store.claim('agent-1', 30_000)).rejects.toMatchObject({ name: 'SqliteError', message: 'event log refused' });
      expect(await store.get(command.id)).toMatchObject({ status: 'PENDING', attempts: 0 });
    } finally {
      other.close();
    }
  });

  test('synchronous is FULL by default and NORMAL when asked (SQLITE_SYNCHRONOUS); temp tables in memory', async () => {
    const level = (store: SqliteCommandStore) =>
      (store as unknown as { db: { pragma: (p: string, o: { simple: true }) => number } }).db.pragma('synchronous', { simple: true });
    const full = new SqliteCommandStore({ path: newPath() });
    const normal = new SqliteCommandStore({ path: newPath(), synchronous: 'NORMAL' });
    try {
      expect([level(full), level(normal)]).toEqual([2, 1]); // SQLite's codes: FULL = 2, NORMAL = 1
      // Temporary tables (RETURNING, subqueries) in memory: in files they cost 80 µs per UPDATE.
      const tempStore = (full as unknown as { db: { pragma: (p: string, o: { simple: true }) => number } }).db.pragma('temp_store', { simple: true });
      expect(tempStore).toBe(2); // MEMORY
    } finally {
      await full.close();
      await normal.close();
    }
  });

  test('a store reopened on the same file holds every command with its lease unchanged', async () => {
    const path = newPath();
    const first = new SqliteCommandStore({ path });
    for (let i = 0; i < 5; i++) await first.submit({ type: 'DELAY', payload: { ms: i } });
    const leased = [await first.claim('agent-1', 60_000), await first.claim('agent-2', 60_000)];
    const before = (await first.list({ limit: 100 })).commands;
    await first.close();
    const second = new SqliteCommandStore({ path });
    open.push(second);
    expect((await second.list({ limit: 100 })).commands).toEqual(before);
    for (const claimed of leased) {
      if (!claimed) throw new Error('nothing claimed');
      // The lease id survived too: its holder can still renew it.
      const renewed = await second.heartbeat(claimed.id, { agentId: claimed.agentId ?? '', leaseId: claimed.leaseId }, 60_000);
      expect(renewed.cancelRequested).toBe(false);
    }
  });

  test('claims from 4 threads, each with its own connection to one file, never lease a command twice', async () => {
    const path = newPath();
    const store = new SqliteCommandStore({ path });
    open.push(store);
    const submitted = new Set<string>();
    for (let i = 0; i < 400; i++) submitted.add((await store.submit({ type: 'DELAY', payload: { ms: i } })).command.id);

    // The threads run the built store (dist/), as a second server process would.
    const module = new URL(`file://${join(REPO_ROOT, 'control-server/dist/store/sqlite.js')}`).href;
    const source = `
      const { workerData, parentPort } = require('node:worker_threads');
      (async () => {
        const { SqliteCommandStore } = await import(workerData.module);
        const store = new SqliteCommandStore({ path: workerData.path });
        parentPort.postMessage('ready');
        Atomics.wait(new Int32Array(workerData.go), 0, 0); // all threads start claiming together
        const ids = [];
        for (let c; (c = await store.claim(workerData.agentId, 60000)); ) ids.push(c.id);
        await store.close();
        parentPort.postMessage(ids);
      })().catch((err) => { throw err; });`;
    const go = new SharedArrayBuffer(4);
    const workers = Array.from(
      { length: 4 },
      (_, i) => new Worker(source, { eval: true, workerData: { module, path, agentId: `agent-${i}`, go } }),
    );
    const ready: Promise<void>[] = [];
    const results = workers.map(
      (worker) =>
        new Promise<string[]>((resolve, reject) => {
          ready.push(new Promise((r) => worker.once('message', () => r())));
          worker.once('error', reject);
          worker.once('exit', (code) => code !== 0 && reject(new Error(`worker exited ${code}`)));
          worker.on('message', (message: unknown) => Array.isArray(message) && resolve(message as string[]));
        }),
    );
    try {
      // Once every thread has its connection open, release them all at once.
      await Promise.all(ready);
      Atomics.store(new Int32Array(go), 0, 1);
      Atomics.notify(new Int32Array(go), 0);
      const perThread = await Promise.all(results);
      const all = perThread.flat();
      console.log(`claims per thread: ${perThread.map((ids) => ids.length).join(', ')}`);
      expect(all).toHaveLength(400);
      expect(new Set(all)).toEqual(submitted);
      expect(await store.countByStatus()).toEqual({ PENDING: 0, RUNNING: 400, COMPLETED: 0, FAILED: 0 });
    } finally {
      await Promise.all(workers.map((w) => w.terminate()));
    }
  });
});
