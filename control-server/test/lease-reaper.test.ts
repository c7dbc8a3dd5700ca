/**
 * The lease reaper alone, on a real SQLite store and real timers: when it expires a lease (not
 * before the lease ends, not during the start-up grace), when it wakes polls for a backoff that
 * ended, that a later deadline never postpones an earlier one, that a failing pass is retried,
 * that a far deadline does not spin, that passes never overlap, that a wall-clock step over
 * LEASE_MS / 4 gives agents a LEASE_MS to renew, that a pass on a full database leaves it
 * reported full, and that stop() stops it (no timer, no store listener left).
 *
 * The `lease expired`, clock-step and failure log lines are asserted with their fields: what an
 * operator looks up (which command, whose, what it became; how far the clock stepped).
 *
 * Mutants `npm run mutate lease-reaper` leaves alive, and why they are equivalent:
 * - onEvent's due time: `status === 'RUNNING'` → true, `&&` → `||`, `leaseExpiresAt !== null` →
 *   true: the store sets leaseExpiresAt exactly while a command is RUNNING, so each asks the same.
 *   `status === 'PENDING'` → true: a finished command's availableAt is past (or, for one canceled
 *   while scheduled, arms one extra pass that finds nothing to do).
 * - `due !== undefined &&` → true: `undefined > now` is false anyway. `due > now` → `>=`,
 *   `due < armedAt` → `<=`, `wall >= graceUntil` → `>`: the same millisecond either way.
 * - `Math.max(0, at - now) + 1` → `- 1`: the timer fires 2 ms sooner; a pass before the deadline
 *   expires nothing and re-arms for it.
 * - `if (candidates.length)` → true: Math.min() of nothing is Infinity, which arms the 24.8-day
 *   maximum: one empty pass, cleared by stop().
 */
import type { EventEmitter } from 'node:events';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type Database from 'better-sqlite3';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import type { ClaimedCommand } from '@agent-executor/common';
import type { Clock } from '../src/clock.js';
import { LeaseReaper } from '../src/lease-reaper.js';
import { SqliteCommandStore } from '../src/store/sqlite.js';
import type { StoredEvent } from '../src/store/store.js';
import { tempDir, waitFor } from '../../test-support/processes.js';
import { expectNoTimersLeft, serverTimers, SteppedClock } from './helpers.js';

let dir: ReturnType<typeof tempDir>;
let store: SqliteCommandStore;
let reaper: LeaseReaper | undefined;
const logs: string[] = [];
const log = pino({ level: 'warn' }, { write: (line: string) => void logs.push(line) });

/** The store's `expire` events, with when they happened (performance.now()). */
let expired: Array<{ id: string; status: string; at: number }>;

/** Listeners of the store's 'event' (the SQLite store's events are a Node EventEmitter). */
const eventListeners = () => (store.events as unknown as EventEmitter).listenerCount('event');


class FlakyStore extends SqliteCommandStore {
  /** The next this-many passes fail, as a briefly unusable database would. */
  failures = 0;
  passes = 0;
  override async requeueExpired() {
    this.passes++;
    if (this.failures > 0) {
      this.failures--;
      throw new Error('database is locked');
    }
    return super.requeueExpired();
  }
}

/**
 * Holds every pass of the reaper at its end (the store's nextWakeAt) until `release()`; `held`
 * counts the passes that reached it. `next` is the store's own nextWakeAt.
 */
function holdPasses() {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const next = store.nextWakeAt.bind(store);
  const hold = { held: 0, release, next };
  store.nextWakeAt = async () => {
    hold.held++;
    await gate;
    return next();
  };
  return hold;
}

function startReaper(leaseMs: number, onAvailable: () => void = () => {}, clock?: Clock): LeaseReaper {
  reaper = new LeaseReaper(store, { leaseMs, onAvailable, log: log as never, clock });
  reaper.start();
  return reaper;
}

/** The test's store, recording its `expire` events; `now` is the wall clock it reads. */
function openStore(now?: () => number): FlakyStore {
  const opened = new FlakyStore({ path: join(dir.path, 'r.db'), onError: () => {}, now });
  opened.events.on('event', (event: StoredEvent) => {
    if (event.transition === 'expire') expired.push({ id: event.command.id, status: event.command.status, at: performance.now() });
  });
  return opened;
}

beforeEach(() => {
  dir = tempDir('lease-reaper');
  logs.length = 0;
  expired = [];
  store = openStore();
});

afterEach(async ({ task }) => {
  await reaper?.stop();
  reaper = undefined;
  await store.close();
  dir.cleanup(task.result?.state !== 'fail');
});

async function claimOne(leaseMs: number, maxAttempts = 3): Promise<ClaimedCommand> {
  await store.submit({ type: 'DELAY', payload: { ms: 1 }, maxAttempts });
  const c = await store.claim('agent-1', leaseMs);
  if (!c) throw new Error('nothing claimed');
  return c;
}

describe('LeaseReaper', () => {
  test('a lease is requeued once it ends, not before; with no attempts left it FAILS "lease expired"', async () => {
    startReaper(100);
    // Past the start-up grace (one LEASE_MS) first.
    await new Promise((r) => setTimeout(r, 150));
    const started = performance.now();
    const again = await claimOne(300);
    const last = await claimOne(300, 1);
    await waitFor(() => expired.length === 2, { what: 'both leases expired', timeoutMs: 5000, intervalMs: 5 });
    for (const e of expired) expect(e.at - started).toBeGreaterThanOrEqual(290);
    // Armed for the deadline, not polled: the expiry comes soon after it.
    for (const e of expired) expect(e.at - started).toBeLessThan(1500);
    expect((await store.get(again.id))?.status).toBe('PENDING');
    expect(await store.get(last.id)).toMatchObject({ status: 'FAILED', error: 'lease expired' });
    // One warning per expired lease, with what an operator looks up: which command, whose, now what.
    const warned = logs.map((l) => JSON.parse(l) as { level: number; msg: string }).filter((l) => l.msg === 'lease expired');
    expect(warned).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ level: 40, commandId: again.id, agentId: 'agent-1', status: 'PENDING' }),
        expect.objectContaining({ level: 40, commandId: last.id, agentId: 'agent-1', status: 'FAILED' }),
      ]),
    );
    expect(warned).toHaveLength(2);
  });

  test('for one LEASE_MS after start nothing expires (agents reconnect and renew), then it does', async () => {
    const c = await claimOne(50);
    const started = performance.now();
    startReaper(600);
    await waitFor(() => expired.length === 1, { what: 'the lease expired after the grace', timeoutMs: 5000, intervalMs: 5 });
    expect(expired[0]!.at - started).toBeGreaterThanOrEqual(550);
    expect(expired[0]!.at - started).toBeLessThan(2500);
    expect(expired[0]!.id).toBe(c.id);
  });

  test('a lease claimed later with a longer deadline does not postpone an earlier one', async () => {
    startReaper(100);
    await new Promise((r) => setTimeout(r, 150));
    const started = performance.now();
    const soon = await claimOne(300);
    await claimOne(60_000);
    await waitFor(() => expired.length === 1, { what: 'the short lease expired', timeoutMs: 5000, intervalMs: 5 });
    expect(expired[0]!.id).toBe(soon.id);
    expect(expired[0]!.at - started).toBeLessThan(1500);
  });

  test('a later, shorter lease brings the timer forward', async () => {
    startReaper(100);
    await new Promise((r) => setTimeout(r, 150));
    await claimOne(60_000);
    await new Promise((r) => setTimeout(r, 50));
    const started = performance.now();
    const soon = await claimOne(300);
    await waitFor(() => expired.length === 1, { what: 'the short lease expired', timeoutMs: 5000, intervalMs: 5 });
    expect(expired[0]!.id).toBe(soon.id);
    expect(expired[0]!.at - started).toBeLessThan(1500);
  });

  test('when a retry backoff ends, waiting polls are woken (onAvailable), at that moment', async () => {
    let woken: number[] = [];
    startReaper(100, () => woken.push(performance.now()));
    await new Promise((r) => setTimeout(r, 150));
    const c = await claimOne(60_000);
    woken = [];
    const failedAt = performance.now();
    await store.report(c.id, { agentId: 'agent-1', leaseId: c.leaseId, status: 'FAILED', error: 'try again', retryable: true });
    const pending = await store.get(c.id);
    expect(pending?.status).toBe('PENDING');
    const availableIn = Date.parse(pending!.availableAt) - Date.now();
    expect(availableIn).toBeGreaterThan(200);
    await waitFor(() => woken.some((t) => t - failedAt >= availableIn - 20), { what: 'a wake-up at the end of the backoff', timeoutMs: 10_000, intervalMs: 10 });
    // Woken for it, not before it on a timer of its own.
    expect(woken.filter((t) => t - failedAt < availableIn - 50)).toEqual([]);
  });

  test('a pass arms the timer for the earlier of the next lease end and the next backoff end', async () => {
    // Both exist before the reaper starts, so only its first pass can arm for them.
    const c = await claimOne(60_000);
    await store.report(c.id, { agentId: 'agent-1', leaseId: c.leaseId, status: 'FAILED', error: 'later', retryable: true });
    // The backoff of a first retry is at least 750 ms (1 s, jitter ±25 %); this lease ends at 200.
    const soon = await claimOne(200);
    const started = performance.now();
    startReaper(100);
    await waitFor(() => expired.length === 1, { what: 'the short lease expired', timeoutMs: 5000, intervalMs: 5 });
    expect(expired[0]!.id).toBe(soon.id);
    expect(expired[0]!.at - started).toBeLessThan(700);
  });

  test('a pass that fails is logged and retried about a second later', async () => {
    const flaky = store as FlakyStore;
    startReaper(100);
    await new Promise((r) => setTimeout(r, 150));
    // The pass for this lease's end fails. One attempt only: the expiry then FAILS the command
    // rather than scheduling a retry, whose backoff would arm a pass of its own about a second on.
    flaky.failures = 1;
    await claimOne(100, 1);
    await waitFor(() => logs.some((l) => l.includes('lease reaper failed; retrying in 1 s')), { what: 'the failure logged' });
    const failure = JSON.parse(logs.find((l) => l.includes('lease reaper failed'))!) as { level: number; msg: string; err?: { message: string } };
    expect(failure).toMatchObject({ level: 50, msg: 'lease reaper failed; retrying in 1 s', err: { message: 'database is locked' } });
    const failedAt = performance.now();
    const passes = flaky.passes;
    await waitFor(() => flaky.passes > passes, { what: 'the retry', timeoutMs: 5000, intervalMs: 10 });
    const retriedAfter = performance.now() - failedAt;
    expect(retriedAfter).toBeGreaterThan(800);
    expect(retriedAfter).toBeLessThan(3000);
    // The retried pass did the failed one's work.
    await waitFor(() => expired.length === 1, { what: 'expiry after the retry', timeoutMs: 5000 });
  });

  test('a deadline weeks away arms one timer, not a spin of passes', async () => {
    const flaky = store as FlakyStore;
    await claimOne(40 * 24 * 3_600_000); // 40 days: past the 24.8-day limit of one setTimeout
    startReaper(100);
    await new Promise((r) => setTimeout(r, 400));
    expect(flaky.passes).toBeLessThanOrEqual(2);
  });

  test('after stop() no lease expires, and events no longer arm it', async () => {
    const listeners = eventListeners();
    startReaper(100);
    expect(eventListeners()).toBe(listeners + 1);
    await new Promise((r) => setTimeout(r, 150));
    await claimOne(200);
    await reaper!.stop();
    // Its store listener is gone too: a stopped reaper is not called for every event.
    expect(eventListeners()).toBe(listeners);
    const passes = (store as FlakyStore).passes;
    await claimOne(100);
    await new Promise((r) => setTimeout(r, 500));
    expect(expired).toEqual([]);
    expect((store as FlakyStore).passes).toBe(passes);
  });

  test('stop() waits for a pass under way', async () => {
    const flaky = store as FlakyStore;
    const hold = holdPasses();
    startReaper(100);
    await waitFor(() => hold.held > 0, { what: 'a pass under way' });
    let stopped = false;
    const stopping = reaper!.stop().then(() => (stopped = true));
    await new Promise((r) => setTimeout(r, 50));
    expect(stopped).toBe(false);
    hold.release();
    await stopping;
    expect(stopped).toBe(true);
    // Within the start-up grace: the pass expired nothing.
    expect(flaky.passes).toBe(0);
    // And the pass that was under way did not arm another one.
    let laterPasses = 0;
    store.nextWakeAt = async () => {
      laterPasses++;
      return hold.next();
    };
    await claimOne(50);
    await new Promise((r) => setTimeout(r, 300));
    expect(laterPasses).toBe(0);
  });
  test('a wall-clock step over LEASE_MS / 4 is noticed even under 1 s: logged, and no lease expires for one LEASE_MS', async () => {
    // LEASE_MS 400: a step over 100 ms counts. 500 ms would pass unseen under a 1 s threshold,
    // and the lease below, 100 ms long on the stepped clock, would expire at the first pass.
    const clock = new SteppedClock();
    await store.close();
    store = openStore(clock.wall);
    let passes = 0;
    startReaper(400, () => passes++, clock);
    await waitFor(() => passes === 1, { what: 'the first pass' });
    clock.step(500);
    const c = await claimOne(100);
    const notice = () => logs.find((l) => l.includes('the wall clock stepped forward'));
    await waitFor(() => notice() !== undefined, { what: 'the step noticed', timeoutMs: 5000, intervalMs: 2 });
    const noticedAt = performance.now();
    const line = JSON.parse(notice()!) as { jumpMs: number; graceUntil: string; msg: string };
    expect(line.msg).toBe('the wall clock stepped forward; no lease expires for one LEASE_MS so agents can renew');
    expect(line.jumpMs).toBeGreaterThanOrEqual(490);
    expect(line.jumpMs).toBeLessThan(600);
    // The grace runs one LEASE_MS from the moment the step was noticed, on the stepped clock.
    expect(Date.parse(line.graceUntil) - clock.wall()).toBeGreaterThan(300);
    expect(Date.parse(line.graceUntil) - clock.wall()).toBeLessThanOrEqual(400);
    expect(expired, 'expired by the pass that noticed the step').toEqual([]);
    await waitFor(() => expired.length === 1, { what: 'the lease expired after the grace', timeoutMs: 5000, intervalMs: 5 });
    expect(expired[0]!.id).toBe(c.id);
    expect(expired[0]!.at - noticedAt).toBeGreaterThanOrEqual(380);
  });

  test('a step under the threshold is let pass: nothing logged, and the lease expires at its end', async () => {
    const clock = new SteppedClock();
    await store.close();
    store = openStore(clock.wall);
    startReaper(400, () => {}, clock);
    await new Promise((r) => setTimeout(r, 450)); // past the start-up grace
    await claimOne(1000);
    clock.step(60); // under LEASE_MS / 4
    const started = performance.now();
    await waitFor(() => expired.length === 1, { what: 'the lease expired', timeoutMs: 5000, intervalMs: 5 });
    // 1000 ms lease, 60 of them skipped by the step; a grace would have added 400.
    expect(expired[0]!.at - started).toBeLessThan(1300);
    expect(logs.filter((l) => l.includes('stepped forward'))).toEqual([]);
  });

  test('a pass that ends after stop() leaves no timer behind', async () => {
    // A lease to wait for, so the pass would arm a timer for it.
    await claimOne(60_000);
    const before = serverTimers();
    const hold = holdPasses();
    startReaper(100);
    await waitFor(() => hold.held > 0, { what: 'a pass under way' });
    const stopping = reaper!.stop();
    hold.release();
    await stopping;
    await expectNoTimersLeft(before);
  });

  test('a pass that fails after stop() arms no retry', async () => {
    const flaky = store as FlakyStore;
    await new Promise((r) => setTimeout(r, 1));
    const before = serverTimers();
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let inPass = false;
    store.promoteDue = async () => {
      inPass = true;
      await gate;
      throw new Error('database is locked');
    };
    startReaper(100);
    await waitFor(() => inPass, { what: 'a pass under way' });
    const stopping = reaper!.stop();
    release();
    await stopping;
    expect(logs.some((l) => l.includes('lease reaper failed'))).toBe(true);
    expect(flaky.passes).toBe(0);
    await expectNoTimersLeft(before);
  });
  test('on a full database, a pass (which stores nothing) leaves the full condition set', async () => {
    await claimOne(60_000);
    // The file may not grow: the next write that needs a page fails with SQLITE_FULL.
    const db = (store as unknown as { db: Database.Database }).db;
    db.pragma(`max_page_count = ${db.pragma('page_count', { simple: true }) as number}`);
    const big = { type: 'HTTP_GET_JSON' as const, payload: { url: `https://example.com/${'a'.repeat(1900)}` } };
    for (let i = 0; i < 50 && !store.isFull(); i++) await store.submit(big).catch(() => {});
    expect(store.isFull()).toBe(true);
    let passes = 0;
    // LEASE_MS 1: the first pass promotes (nothing) and requeues (nothing): writes without events.
    startReaper(1, () => passes++);
    await waitFor(() => passes >= 1, { what: 'a pass' });
    expect(logs.filter((l) => l.includes('lease reaper failed'))).toEqual([]);
    expect(store.isFull(), 'cleared by a write that stored nothing').toBe(true);
  });
  test('passes never overlap: a deadline that comes while a pass is under way waits for it to end', async () => {
    const flaky = store as FlakyStore;
    startReaper(100);
    await new Promise((r) => setTimeout(r, 150));
    // The next pass stops before its end (nextWakeAt) until released.
    const hold = holdPasses();
    let second: ClaimedCommand;
    try {
      const first = await claimOne(50);
      await waitFor(() => hold.held === 1, { what: 'the pass for the first lease, held' });
      expect(expired.map((e) => e.id)).toEqual([first.id]);
      const passes = flaky.passes;
      // A second lease ends while that pass is held: its timer comes, and must not start a second pass.
      second = await claimOne(50);
      await new Promise((r) => setTimeout(r, 300));
      expect(flaky.passes, 'a pass started beside the held one').toBe(passes);
      expect((await store.get(second.id))?.status).toBe('RUNNING');
    } finally {
      store.nextWakeAt = hold.next;
      hold.release();
    }
    // The held pass ends by arming for the second lease, which then expires.
    await waitFor(() => expired.length === 2, { what: 'the second lease expired after the pass', timeoutMs: 5000, intervalMs: 5 });
    expect(expired[1]!.id).toBe(second.id);
  });
  test('events that set no deadline to come start no pass', async () => {
    const flaky = store as FlakyStore;
    startReaper(100);
    await new Promise((r) => setTimeout(r, 150));
    const passes = flaky.passes;
    // Ready at once (their availableAt is now, not ahead), then run and finished: nothing to wait for.
    for (let i = 0; i < 3; i++) {
      await store.submit({ type: 'DELAY', payload: { ms: 1 } });
      const c = await store.claim('agent-1', 60_000);
      await store.report(c!.id, { agentId: 'agent-1', leaseId: c!.leaseId, status: 'COMPLETED', result: {} });
    }
    await new Promise((r) => setTimeout(r, 200));
    // The claims armed the timer for their leases (a minute away); nothing else came due.
    expect(flaky.passes).toBe(passes);
  });
});
