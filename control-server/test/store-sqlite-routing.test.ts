/**
 * The routing claim's cost stays flat (SPEC §9): checked on its query plan, with and without
 * statistics, and on a backlog where one key at its limit holds thousands of commands. No SCAN
 * of commands, no temporary B-tree over the backlog: one range of commands_ready per (queue,
 * type) the agent serves, cut at `max`, and the per-key statements search their own indexes.
 */
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import type Database from 'better-sqlite3';
import { afterAll, afterEach, beforeAll, expect, test } from 'vitest';
import { SqliteCommandStore } from '../src/store/sqlite.js';
import { pickStatement, rangeStatement } from '../src/store/sqlite-routing.js';
import { REPO_ROOT, tempDir } from '../../test-support/processes.js';

let dir: ReturnType<typeof tempDir>;
let failed = false;
let files = 0;
const open: SqliteCommandStore[] = [];
beforeAll(() => {
  dir = tempDir('store-sqlite-routing');
});
afterEach(async ({ task }) => {
  if (task.result?.state === 'fail') failed = true;
  for (const store of open.splice(0)) await store.close();
});
afterAll(() => dir.cleanup(!failed));

const openStore = () => {
  const store = new SqliteCommandStore({ path: join(dir.path, `routing-${++files}.db`), synchronous: 'NORMAL' });
  open.push(store);
  return store;
};
const dbOf = (store: SqliteCommandStore) => (store as unknown as { db: Database.Database }).db;

function plan(db: Database.Database, sql: string, params: Record<string, unknown>): string[] {
  return db
    .prepare<[Record<string, unknown>], { detail: string }>(`EXPLAIN QUERY PLAN ${sql}`)
    .all(params)
    .map((row) => row.detail);
}

const route = { queues: ['default', 'gpu'], types: ['DELAY', 'HTTP_GET_JSON'] };
const claimParams = { max: 10, q0: 'default', q1: 'gpu', t0: 'DELAY', t1: 'HTTP_GET_JSON' };

for (const statistics of [false, true]) {
  test(`the claim reads one range of commands_ready per (queue, type), no scan, no sort of the backlog (${statistics ? 'after ANALYZE' : 'no statistics'})`, async () => {
    const store = openStore();
    const db = dbOf(store);
    if (statistics) {
      // A backlog: 3 000 held behind one key at its limit, 2 000 ready, 1 000 scheduled.
      await store.submitBatch(Array.from({ length: 3_000 }, () => ({ type: 'DELAY' as const, payload: { ms: 1 }, concurrencyKey: 'flood', concurrencyLimit: 4 })));
      await store.submitBatch(Array.from({ length: 2_000 }, (_, i) => ({ type: 'DELAY' as const, payload: { ms: 1 }, priority: i % 3 })));
      db.exec('ANALYZE');
    }
    const lines = plan(db, pickStatement(db, route).source, claimParams);
    const text = lines.join(' | ');
    expect(lines.filter((l) => /SEARCH commands USING (COVERING )?INDEX commands_ready \(queue=\? AND type=\?\)/.test(l)), text).toHaveLength(4);
    expect(text, 'no scan of commands').not.toMatch(/SCAN commands/);
    // The only sort is of the merged ranges (at most pairs × max rows), never of the backlog.
    expect(lines.filter((l) => /TEMP B-TREE/.test(l)).length, text).toBeLessThanOrEqual(1);
    expect(text).not.toMatch(/USE TEMP B-TREE FOR ORDER BY.*commands_ready/);
    // A route of few pairs reads each range with its own statement: one index range, no sort.
    const range = plan(db, rangeStatement(db).source, { q0: 'default', t0: 'DELAY', max: 10 }).join(' | ');
    expect(range).toMatch(/^SEARCH commands USING (COVERING )?INDEX commands_ready \(queue=\? AND type=\?\)$/);
  });
}

test('the per-key statements search their partial indexes', () => {
  const store = openStore();
  const db = dbOf(store);
  const keys = (store as unknown as { keys: Record<string, Database.Statement> }).keys;
  const expected: Record<string, RegExp> = {
    promoteHeld: /SEARCH commands USING (COVERING )?INDEX commands_held \(concurrency_key=\?\)/,
    dueUnkeyed: /SEARCH commands USING (COVERING )?INDEX commands_scheduled \(available_at<\?\)/,
    dueKeyed: /SEARCH commands USING (COVERING )?INDEX commands_scheduled \(available_at<\?\)/,
    runningOf: /SEARCH commands USING (COVERING )?INDEX commands_key_running \(concurrency_key=\?\)/,
  };
  for (const [name, pattern] of Object.entries(expected)) {
    const statement = keys[name]!;
    const named = [...new Set([...statement.source.matchAll(/@(\w+)/g)].map((m) => m[1] as string))];
    const positional = (statement.source.match(/\?/g) ?? []).length;
    const lines = db
      .prepare<unknown[], { detail: string }>(`EXPLAIN QUERY PLAN ${statement.source}`)
      .all(...(named.length ? [Object.fromEntries(named.map((n) => [n, 'k']))] : Array<number>(positional).fill(0)))
      .map((row) => row.detail);
    expect(lines.some((line) => pattern.test(line)), `${name}: ${lines.join(' | ')}`).toBe(true);
    expect(lines.join(' | '), name).not.toMatch(/SCAN commands/);
  }
});

test('a key at its limit with 3 000 held commands: they stay out of the claim index; the next command passes them', async () => {
  const store = openStore();
  const db = dbOf(store);
  await store.submitBatch(Array.from({ length: 3_000 }, () => ({ type: 'DELAY' as const, payload: { ms: 1 }, concurrencyKey: 'flood', concurrencyLimit: 2 })));
  const flood = await store.claimBatch('a', 30_000, 10);
  expect(flood).toHaveLength(2);
  const trickle = (await store.submit({ type: 'DELAY', payload: { ms: 1 } })).command;
  const inClaimIndex = () =>
    db.prepare<[], { n: number }>("SELECT count(*) AS n FROM commands INDEXED BY commands_ready WHERE status = 'PENDING' AND ready = 1").get()?.n;
  expect(inClaimIndex(), 'only the trickle command is in the claim index').toBe(1);
  const [claimed] = await store.claimBatch('b', 30_000, 5, { queues: ['default'], types: ['DELAY'] });
  expect(claimed?.id).toBe(trickle.id);
  const held = db.prepare<[], { n: number }>("SELECT count(*) AS n FROM commands WHERE status = 'PENDING' AND ready = 2").get()?.n;
  expect(held).toBe(2_998);
  // One finishes: exactly one held command of the key enters the claim index.
  await store.report(flood[0]!.id, { agentId: 'a', leaseId: flood[0]!.leaseId, result: {} });
  expect(inClaimIndex()).toBe(1);
});

test('4 threads, each its own connection, claim and report keyed commands at once: no key ever over its limit', async () => {
  const store = openStore();
  const path = (store as unknown as { db: Database.Database }).db.name;
  const limits: Record<string, number> = { k1: 1, k2: 2, k3: 3 };
  const keys = Object.keys(limits);
  await store.submitBatch(
    Array.from({ length: 240 }, (_, i) => {
      const key = keys[i % keys.length]!;
      return { type: 'DELAY' as const, payload: { ms: 1 }, priority: i % 3, concurrencyKey: key, concurrencyLimit: limits[key]! };
    }),
  );
  // The threads run the built store (dist/), as a second server process would: claim up to 3,
  // hold them 5 ms, report them, until nothing is PENDING or RUNNING.
  const module = new URL(`file://${join(REPO_ROOT, 'control-server/dist/store/sqlite.js')}`).href;
  const source = `
    const { workerData, parentPort } = require('node:worker_threads');
    (async () => {
      const { SqliteCommandStore } = await import(workerData.module);
      const store = new SqliteCommandStore({ path: workerData.path, synchronous: 'NORMAL' });
      parentPort.postMessage('ready');
      Atomics.wait(new Int32Array(workerData.go), 0, 0);
      let claimed = 0;
      for (;;) {
        const batch = await store.claimBatch(workerData.agentId, 60000, 3);
        claimed += batch.length;
        // Hold them a moment, as an agent runs them: the other threads claim meanwhile.
        await new Promise((r) => setTimeout(r, 5));
        for (const c of batch) await store.report(c.id, { agentId: workerData.agentId, leaseId: c.leaseId, result: {} });
        const counts = await store.countByStatus();
        if (counts.PENDING === 0 && counts.RUNNING === 0) break;
      }
      await store.close();
      parentPort.postMessage(claimed);
    })().catch((err) => { throw err; });`;
  const go = new SharedArrayBuffer(4);
  const workers = Array.from({ length: 4 }, (_, i) => new Worker(source, { eval: true, workerData: { module, path, agentId: `agent-${i}`, go } }));
  const ready: Promise<void>[] = [];
  const done = workers.map(
    (worker) =>
      new Promise<number>((resolve, reject) => {
        ready.push(new Promise((r) => worker.once('message', () => r())));
        worker.once('error', reject);
        worker.on('message', (message: unknown) => typeof message === 'number' && resolve(message));
      }),
  );
  try {
    await Promise.all(ready);
    Atomics.store(new Int32Array(go), 0, 1);
    Atomics.notify(new Int32Array(go), 0);
    const perThread = await Promise.all(done);
    expect(perThread.reduce((a, b) => a + b, 0)).toBe(240);
    expect(perThread.filter((n) => n > 0).length, 'several threads took part').toBeGreaterThan(1);
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
  // Replay the event log in order: the RUNNING commands of each key, at every step.
  const db = dbOf(store);
  const running = new Map<string, Set<string>>();
  let peak = 0;
  for (const row of db.prepare<[], { command_id: string; data: string }>('SELECT command_id, data FROM events ORDER BY seq').iterate()) {
    const command = JSON.parse(row.data) as { status: string; concurrencyKey: string };
    const set = running.get(command.concurrencyKey) ?? new Set<string>();
    running.set(command.concurrencyKey, set);
    if (command.status === 'RUNNING') set.add(row.command_id);
    else set.delete(row.command_id);
    expect(set.size, `key ${command.concurrencyKey}`).toBeLessThanOrEqual(limits[command.concurrencyKey]!);
    peak = Math.max(peak, set.size);
  }
  expect(peak, 'the keys were used up to their limits').toBe(3);
});
