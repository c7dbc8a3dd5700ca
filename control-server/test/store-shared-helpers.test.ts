/**
 * The pure helpers both stores share (transitions.ts, event-log.ts, claim-route.ts,
 * backoff.ts), at their edges: a store test reaches them only through one store's SQL, and the
 * PostgreSQL store uses some the SQLite store does not (isAvailable, the `ready` of a new row).
 * holdsLease is the only guard of a report in the PostgreSQL store; in the SQLite store the
 * guarded UPDATE refuses the same reports again, so only a test of the function itself can tell
 * a broken one.
 *
 * Equivalent mutants (`npm run mutate store-transitions`):
 * - newCommandRow(): `runAt === null ? now : Math.max(now, runAt)` → always Math.max: Math.max(now,
 *   null) is `now`.
 * - reportedRow(): `cancel_requested: status === 'PENDING' ? current.cancel_requested : 0`: a report
 *   goes back to PENDING only when no cancel was requested, so both sides are 0.
 * - sortKeys(): the comparator `a < b ? -1 : a > b ? 1 : 0` with `<=` for `<`, `>=`/`<=` for `>`,
 *   or `a > b` → true/false: two keys of one object are never equal, and V8's sort only asks
 *   whether the comparator is negative (checked on 200 keys in random order), so 0 for "after"
 *   sorts alike; `a < b` → `a >= b` sorts the keys in reverse, which hashes any key order alike
 *   too (a hash is only ever compared with one made by the same code).
 * - StatusCounts.move(): `if (from === to) return` → never: the decrement and increment cancel.
 * Not equivalent, but left alive by the mutation run itself: DEFAULT_EVENT_RETENTION's four
 * mutants are static (evaluated when event-log.ts is imported), and mutation/vitest.config.ts
 * keeps modules loaded between mutants (`isolate: false`), so the mutated value is never imported.
 * The test below fails on each of them in a plain vitest run.
 * - command-rows.ts iso(): `if (ms !== lastMs)` → always, and the first `lastIso`: a cache; the
 *   first call always converts (lastMs starts as NaN).
 * - rowToCommand(): `row.result === null ? null : JSON.parse(row.result)` → always JSON.parse, and
 *   the same for progress: JSON.parse(null) is null.
 */
import { describe, expect, test } from 'vitest';
import { retryBackoffMs } from '../src/store/backoff.js';
import { routeKey, routeOf } from '../src/store/claim-route.js';
import { withLease, type CommandRow } from '../src/store/command-rows.js';
import type { Command } from '@agent-executor/common';
import { DEFAULT_EVENT_RETENTION, isAvailable, PRUNE_BATCH, pruneEnd } from '../src/store/event-log.js';
import { StatusCounts } from '../src/store/status-counts.js';
import { hashJson, holdsLease, newCommandRow } from '../src/store/transitions.js';

const NOW = Date.parse('2030-01-01T00:00:00Z');

describe('newCommandRow', () => {
  test('ready now, or scheduled (0) while its runAt is ahead; a runAt in the past is available now', () => {
    const at = (runAt: number) => newCommandRow({ type: 'DELAY', payload: { ms: 1 }, runAt: new Date(runAt).toISOString() }, NOW, null, null);
    expect(newCommandRow({ type: 'DELAY', payload: { ms: 1 } }, NOW, null, null)).toMatchObject({ ready: 1, available_at: NOW, run_at: null });
    expect(at(NOW + 1)).toMatchObject({ ready: 0, available_at: NOW + 1, run_at: NOW + 1 });
    expect(at(NOW)).toMatchObject({ ready: 1, available_at: NOW, run_at: NOW });
    expect(at(NOW - 5)).toMatchObject({ ready: 1, available_at: NOW, run_at: NOW - 5 });
  });

  test('defaults: 3 attempts, the default queue, priority 0; a DELAY may run its ms plus 30 s, an HTTP GET 30 s', () => {
    expect(newCommandRow({ type: 'DELAY', payload: { ms: 2_000 } }, NOW, 'k', 'h')).toMatchObject({
      max_attempts: 3,
      timeout_ms: 32_000,
      queue: 'default',
      priority: 0,
      idempotency_key: 'k',
      request_hash: 'h',
      concurrency_key: null,
      concurrency_limit: null,
      status: 'PENDING',
      attempts: 0,
      created_at: NOW,
      updated_at: NOW,
    });
    expect(newCommandRow({ type: 'HTTP_GET_JSON', payload: { url: 'https://example.com/' } }, NOW, null, null).timeout_ms).toBe(30_000);
  });
});

describe('isAvailable (the PostgreSQL store wakes a poll on it)', () => {
  const row = (status: CommandRow['status'], availableAt: number) => ({ status, available_at: availableAt }) as CommandRow;
  test('PENDING and due at `at`, the very moment included', () => {
    expect(isAvailable(row('PENDING', NOW), NOW)).toBe(true);
    expect(isAvailable(row('PENDING', NOW - 1), NOW)).toBe(true);
    expect(isAvailable(row('PENDING', NOW + 1), NOW)).toBe(false);
    expect(isAvailable(row('RUNNING', NOW), NOW)).toBe(false);
    expect(isAvailable(row('FAILED', NOW - 1), NOW)).toBe(false);
  });
});

describe('pruneEnd', () => {
  test('keeps the newest `keepCount` and everything from the first young-enough event; at most PRUNE_BATCH per prune', () => {
    expect(PRUNE_BATCH).toBe(2_000);
    // By count: 100 events (1..100), keep 10 → delete below 91.
    expect(pruneEnd({ head: 1, last: 100, keptByTime: 1, keepCount: 10 })).toBe(91);
    // By time: everything from 50 on is young enough.
    expect(pruneEnd({ head: 1, last: 100, keptByTime: 50, keepCount: 1_000 })).toBe(50);
    // Nothing young enough: all go, up to the batch.
    expect(pruneEnd({ head: 1, last: 100, keptByTime: undefined, keepCount: 1_000 })).toBe(101);
    expect(pruneEnd({ head: 1, last: 10_000, keptByTime: undefined, keepCount: 1_000 })).toBe(2_001);
    expect(pruneEnd({ head: 501, last: 10_000, keptByTime: 9_000, keepCount: 5_000 })).toBe(2_501);
  });
});

describe('event log retention by default (SPEC §4)', () => {
  test('24 h or 100 000 events, whichever is fewer', () => {
    expect(DEFAULT_EVENT_RETENTION).toEqual({ count: 100_000, ms: 86_400_000 });
  });
});

describe('StatusCounts', () => {
  test('the net move per status of one write; statuses that did not change are left out', () => {
    const counts = new StatusCounts();
    expect(counts.changes()).toEqual([]);
    counts.move(null, 'PENDING');
    counts.move(null, 'PENDING');
    expect(counts.changes()).toEqual([['PENDING', 2]]);
    counts.move('PENDING', 'RUNNING');
    counts.move('RUNNING', 'RUNNING');
    expect(counts.changes()).toEqual([['PENDING', 1], ['RUNNING', 1]]);
    // Retention deletes a finished command: it leaves its status and goes nowhere.
    counts.move('RUNNING', 'COMPLETED');
    counts.move('COMPLETED', null);
    expect(counts.changes()).toEqual([['PENDING', 1]]);
    counts.move('FAILED', null);
    expect(counts.changes()).toEqual([['PENDING', 1], ['FAILED', -1]]);
  });
});

describe('retryBackoffMs', () => {
  test('1 s doubling per attempt, capped at 60 s, after a jitter of ×[0.75, 1.25)', () => {
    expect([0, 1, 2, 3, 6, 7, 8, 30].map((attempts) => retryBackoffMs(attempts, () => 0.5))).toEqual([
      1_000, 1_000, 2_000, 4_000, 32_000, 60_000, 60_000, 60_000,
    ]);
    expect(retryBackoffMs(1, () => 0)).toBe(750);
    expect(retryBackoffMs(1, () => 0.999)).toBe(1_250);
    expect(retryBackoffMs(6, () => 0.999)).toBe(39_984);
    expect(retryBackoffMs(7, () => 0.999), 'the cap holds after the jitter').toBe(60_000);
    expect(retryBackoffMs(7, () => 0)).toBe(45_000);
    // The factor stays below 1.25, but the delay is rounded to whole milliseconds: 2 500 itself
    // comes out once in about 2 000 draws (a random() above 0.999 5), as 1 250 does above.
    const sampled = retryBackoffMs(2);
    expect(sampled).toBeGreaterThanOrEqual(1_500);
    expect(sampled).toBeLessThanOrEqual(2_500);
  });
});

describe('claim routes', () => {
  test('no queues or types named: the default queue and every built-in type', () => {
    expect(routeOf({})).toEqual({ queues: ['default'], types: ['DELAY', 'HTTP_GET_JSON'] });
    expect(routeOf({ queues: [], types: [] })).toEqual({ queues: ['default'], types: ['DELAY', 'HTTP_GET_JSON'] });
    expect(routeOf({ queues: ['gpu'], types: ['X'] })).toEqual({ queues: ['gpu'], types: ['X'] });
  });

  test('the same queues and types in any order are one route; queues and types do not mix', () => {
    expect(routeKey({ queues: ['b', 'a'], types: ['Y', 'X'] })).toBe(routeKey({ queues: ['a', 'b'], types: ['X', 'Y'] }));
    expect(routeKey({ queues: ['a', 'b'], types: ['X'] })).toBe('a,b|X');
    expect(routeKey({ queues: ['b'], types: ['Y', 'X'] })).toBe('b|X,Y');
    expect(routeKey({ queues: ['a'], types: ['b', 'X'] })).not.toBe(routeKey({ queues: ['a', 'b'], types: ['X'] }));
  });
});

describe('holdsLease', () => {
  const row = (status: CommandRow['status'], leaseId: string | null, agentId: string | null) =>
    ({ status, lease_id: leaseId, agent_id: agentId }) as CommandRow;
  test('the holder of the current lease of an unfinished command, by lease id or (without one) by agent', () => {
    expect(holdsLease(row('RUNNING', 'L1', 'a1'), { agentId: 'a1', leaseId: 'L1' })).toBe(true);
    expect(holdsLease(row('RUNNING', 'L1', 'a1'), { agentId: 'a1' })).toBe(true);
    // Expired with attempts left: PENDING, the lease id kept, its holder may still report.
    expect(holdsLease(row('PENDING', 'L1', 'a1'), { agentId: 'a1', leaseId: 'L1' })).toBe(true);
    expect(holdsLease(row('RUNNING', 'L1', 'a1'), { agentId: 'a1', leaseId: 'L2' })).toBe(false);
    expect(holdsLease(row('RUNNING', 'L1', 'a1'), { agentId: 'a2', leaseId: 'L1' })).toBe(false);
    expect(holdsLease(row('RUNNING', 'L1', 'a1'), { agentId: 'a2' })).toBe(false);
  });

  test('never a finished command, nor one never leased', () => {
    expect(holdsLease(row('COMPLETED', 'L1', 'a1'), { agentId: 'a1', leaseId: 'L1' })).toBe(false);
    expect(holdsLease(row('FAILED', 'L1', 'a1'), { agentId: 'a1', leaseId: 'L1' })).toBe(false);
    expect(holdsLease(row('FAILED', 'L1', 'a1'), { agentId: 'a1' })).toBe(false);
    expect(holdsLease(row('PENDING', null, null), { agentId: 'a1' })).toBe(false);
    // A lease id of null on both sides is no lease.
    expect(holdsLease(row('PENDING', null, 'a1'), { agentId: 'a1' })).toBe(false);
  });
});

describe('hashJson', () => {
  test('object keys in any order, at any depth, hash alike; arrays keep their order; values count', () => {
    expect(hashJson({ b: 1, a: { d: [1, 2], c: null } })).toBe(hashJson({ a: { c: null, d: [1, 2] }, b: 1 }));
    expect(hashJson({ a: [1, 2] })).not.toBe(hashJson({ a: [2, 1] }));
    expect(hashJson({ a: 1, b: 2 })).not.toBe(hashJson({ a: 2, b: 1 }));
    expect(hashJson({ z: 1, y: 2, x: 3, w: 4 })).toBe(hashJson({ w: 4, x: 3, y: 2, z: 1 }));
    expect(hashJson(['b', 'a'])).not.toBe(hashJson(['a', 'b']));
    expect(hashJson({ a: 1 })).toMatch(/^[0-9a-f]{64}$/);
    // An array is not an object with index keys.
    expect(hashJson([1])).not.toBe(hashJson({ 0: 1 }));
  });
});

describe('withLease', () => {
  const command = { id: 'c1', leaseExpiresAt: '2030-01-01T00:00:30.000Z' } as Command;
  test('adds the lease id to the claimed command', () => {
    expect(withLease(command, { id: 'c1', lease_id: 'L1' } as CommandRow)).toEqual({ ...command, leaseId: 'L1' });
  });
  test('a claimed row without a lease id or expiry is a bug, never handed out', () => {
    expect(() => withLease(command, { id: 'c1', lease_id: null } as CommandRow)).toThrow('command c1 was claimed without a lease');
    expect(() => withLease({ ...command, leaseExpiresAt: null }, { id: 'c1', lease_id: 'L1' } as CommandRow)).toThrow(
      'command c1 was claimed without a lease',
    );
  });
});
