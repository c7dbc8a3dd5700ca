/**
 * RETENTION (SPEC §7): finished commands older than the setting are deleted, in batches that
 * let the event loop run in between, on a timer armed for when the oldest comes due, never
 * PENDING or RUNNING ones; the routes then answer 404 and the idempotency key is free again.
 */
import type Database from 'better-sqlite3';
import { afterEach, describe, expect, test, vi } from 'vitest';
import { loadConfig } from '../src/config.js';
import { Retention, RETENTION_BATCH } from '../src/retention.js';
import type { CommandStore } from '../src/store/store.js';
import { delay, submit, useApp } from './helpers.js';

const { build } = useApp();
/** The SQLite connection of a test app's store (useApp() builds SQLite stores in this file). */
const dbOf = (store: CommandStore) => (store as unknown as { db: Database.Database }).db;

describe('RETENTION setting', () => {
  test('a duration in s, m, h or d; 0 keeps forever; 7d by default', () => {
    const ms = (value?: string) => loadConfig(value === undefined ? {} : { RETENTION: value }).retentionMs;
    expect(ms()).toBe(7 * 86_400_000);
    expect(ms('')).toBe(7 * 86_400_000);
    expect(ms('0')).toBe(0);
    expect(ms('90m')).toBe(90 * 60_000);
    expect(ms('12h')).toBe(12 * 3_600_000);
    expect(ms('30d')).toBe(30 * 86_400_000);
    expect(ms('45s')).toBe(45_000);
  });

  test.each(['7', '1y', '-1d', '7 d', 'd', '1.5h', 'forever'])('%s stops the server naming RETENTION', (value) => {
    expect(() => loadConfig({ RETENTION: value })).toThrow(/RETENTION: a duration/);
  });
});

describe('the retention timer', () => {
  let retention: Retention | undefined;
  afterEach(async () => {
    await retention?.stop();
    retention = undefined;
  });

  /** What the table holds, counted from its rows (the seed below bypasses the store's counts). */
  const stored = (store: CommandStore) =>
    dbOf(store).prepare<[], { status: string; n: number }>('SELECT status, count(*) AS n FROM commands GROUP BY status ORDER BY status').all();

  /** Stores `n` finished commands, the oldest finished `ageMs` ago, one ms apart, and two live ones. */
  const seedFinished = (store: CommandStore, n: number, ageMs: number) => {
    const now = Date.now();
    dbOf(store)
      .prepare(`WITH RECURSIVE i(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM i WHERE k < ?)
        INSERT INTO commands (id, type, payload, status, max_attempts, timeout_ms, available_at, created_at, updated_at, finished_at, attempts)
        SELECT 'old-' || k, 'DELAY', '{"ms":1}', CASE WHEN k % 2 THEN 'COMPLETED' ELSE 'FAILED' END, 3, 1000, ?, ?, ?, ? + k, 1 FROM i`)
      .run(n, now, now, now, now - ageMs);
  };

  test('deletes a backlog in batches of at most RETENTION_BATCH, letting the event loop run between them; keeps live commands', async () => {
    const { app, store } = await build();
    seedFinished(store, 2 * RETENTION_BATCH + 200, 3_600_000);
    const running = await submit(app, delay(1));
    expect((await store.claim('agent-1', 60_000))?.id).toBe(running.id);
    const pending = await submit(app, delay(1));
    const deletions: number[] = [];
    const original = store.deleteFinishedBefore.bind(store);
    store.deleteFinishedBefore = async (before, max) => {
      const n = await original(before, max);
      deletions.push(n);
      return n;
    };
    let turns = 0;
    const ticker = setInterval(() => turns++, 0);
    retention = new Retention(store, { retentionMs: 60_000, log: app.log });
    retention.start();
    await vi.waitFor(() => expect(deletions.at(-1)).toBeLessThan(RETENTION_BATCH), { timeout: 10_000 });
    clearInterval(ticker);
    expect(deletions).toEqual([RETENTION_BATCH, RETENTION_BATCH, 200]);
    expect(turns, 'timers ran between the batches').toBeGreaterThanOrEqual(1);
    expect(stored(store)).toEqual([{ status: 'PENDING', n: 1 }, { status: 'RUNNING', n: 1 }]);
    expect(await store.get(pending.id)).toBeDefined();
    expect(await store.get(running.id)).toBeDefined();
  });

  test('sleeps while nothing is due: one timer for the oldest finished command, armed again when a command finishes', async () => {
    const { app, store } = await build();
    let calls = 0;
    const original = store.deleteFinishedBefore.bind(store);
    store.deleteFinishedBefore = async (before, max) => {
      calls++;
      return original(before, max);
    };
    retention = new Retention(store, { retentionMs: 300, log: app.log });
    retention.start();
    await vi.waitFor(() => expect(calls).toBe(1));
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(calls, 'no finished command: nothing armed, no polling').toBe(1);

    const c = await submit(app, delay(1));
    const claimed = await app.inject({ method: 'GET', url: '/commands/next?agentId=agent-1' });
    const { leaseId } = claimed.json<{ leaseId: string }>();
    const reported = await app.inject({ method: 'PUT', url: `/commands/${c.id}/result`, payload: { agentId: 'agent-1', leaseId, result: {} } });
    // The store's own finishedAt, not the time this test heard back: under load the answer can
    // come tens of ms later, which made "not before it is due" fail with the deletion on time.
    const finishedAt = Date.parse(reported.json<{ command: { finishedAt: string } }>().command.finishedAt);
    await vi.waitFor(async () => expect(await store.get(c.id)).toBeUndefined(), { timeout: 3_000, interval: 20 });
    expect(Date.now() - finishedAt, 'not before it is due').toBeGreaterThanOrEqual(300);
    expect(calls, 'one run for it, not a loop').toBe(2);
  });

  test('RETENTION=0 deletes nothing and arms nothing', async () => {
    const { app, store } = await build({ env: { RETENTION: '0' } }); // the app's own retention too
    seedFinished(store, 10, 365 * 86_400_000);
    retention = new Retention(store, { retentionMs: 0, log: app.log });
    retention.start();
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(stored(store)).toEqual([{ status: 'COMPLETED', n: 5 }, { status: 'FAILED', n: 5 }]);
  });
});

test('through the app (RETENTION=1s): a finished command answers 404 once due, a PENDING one stays, its Idempotency-Key creates a new command', async () => {
  const { app } = await build({ env: { RETENTION: '1s' } });
  const key = { 'idempotency-key': 'nightly-report' };
  const done = await submit(app, delay(1), key);
  const claimed = await app.inject({ method: 'GET', url: '/commands/next?agentId=agent-1' });
  expect(claimed.json()).toMatchObject({ id: done.id });
  const reported = await app.inject({
    method: 'PUT',
    url: `/commands/${done.id}/result`,
    payload: { agentId: 'agent-1', leaseId: claimed.json<{ leaseId: string }>().leaseId, result: { ok: true } },
  });
  expect(reported.statusCode).toBe(200);
  const waiting = await submit(app, delay(1));
  const replay = await app.inject({ method: 'POST', url: '/commands', payload: delay(1), headers: key });
  expect(replay.statusCode, 'before retention: a replay').toBe(200);

  await vi.waitFor(
    async () => expect((await app.inject({ method: 'GET', url: `/commands/${done.id}` })).statusCode).toBe(404),
    { timeout: 5_000, interval: 50 },
  );
  expect((await app.inject({ method: 'GET', url: `/commands/${waiting.id}` })).json()).toMatchObject({ status: 'PENDING' });
  const again = await app.inject({ method: 'POST', url: '/commands', payload: delay(1), headers: key });
  expect(again.statusCode, 'after retention: the key is free, a new command').toBe(201);
  expect(again.json<{ id: string }>().id).not.toBe(done.id);
});
