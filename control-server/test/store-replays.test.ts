/**
 * The SQLite store's edges that mutation testing showed untested: a second report is a replay
 * only when it is the same report in every field; a page of exactly `limit` has no next page and
 * one of `limit + 1` does; the event log is pruned by count and by age as writes go on.
 *
 * Mutants `npm run mutate store` leaves alive, and why they are equivalent:
 * - report(): the two guards before the UPDATE (final status; lease/agent) and the `changes !== 1`
 *   after it are deliberately double: the guarded statement (`WHERE status = 'RUNNING' AND
 *   lease_id = ? AND agent_id = ?`) refuses exactly what the checks refuse, with the same
 *   Conflict, so removing either side alone changes nothing (15 mutants).
 * - `cancel_requested: status === 'PENDING' ? current.cancel_requested : 0`: a report only goes
 *   back to PENDING when no cancel was requested, so both sides are 0.
 * - `idempotencyKey === undefined ? null : hashJson(body)` / `if (idempotencyKey !== undefined)`:
 *   without a key the hash is stored unused and the lookup by a NULL key finds nothing.
 * - pruneEvents(): `?.seq` on the log's head, last and first-young-enough event, and the
 *   `head == null || last == null` return: the prune runs right after 1 000 events were written
 *   at `now()`, so the log is never empty and its newest event is always young enough.
 * - the tie-break `a.seq - b.seq` → `a.seq + b.seq`: the claim's rows already come back in seq
 *   order and V8's sort leaves them so for an always-positive comparator (the test of equal
 *   availability below passes either way; it pins the order, not the comparator).
 * - `if (end <= head) return` → `<` or removed: with `end === head` the DELETE of `seq < end`
 *   deletes nothing.
 * - `(error)?.code` in spaceError: what SQLite throws is always an Error.
 * - `claimEach(...)[0] ?? []`: claimEach answers the first request always.
 * - `if (events.length > 0) this.full = false` → `true`/`>= 0`: NOT equivalent, not covered here (a write that stores
 *   nothing while the disk is full); store-conditions covers the flag through /health.
 */
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import type { ClaimedCommand, ResultBody } from '@agent-executor/common';
import { SqliteCommandStore } from '../src/store/sqlite.js';
import { tempDir } from '../../test-support/processes.js';

let dir: ReturnType<typeof tempDir>;
let store: SqliteCommandStore;
let clock: number;

function open(eventRetention?: { count: number; ms: number }): SqliteCommandStore {
  return new SqliteCommandStore({
    path: join(dir.path, 's.db'),
    now: () => clock,
    random: () => 0.5,
    onError: (error) => {
      throw error;
    },
    ...(eventRetention ? { eventRetention } : {}),
  });
}

beforeEach(() => {
  dir = tempDir('store-replays');
  clock = Date.parse('2030-01-01T00:00:00Z');
  store = open();
});

afterEach(async ({ task }) => {
  await store.close();
  dir.cleanup(task.result?.state !== 'fail');
});

async function leased(maxAttempts = 3): Promise<ClaimedCommand> {
  await store.submit({ type: 'DELAY', payload: { ms: 1 }, maxAttempts });
  const c = await store.claim('agent-1', 60_000);
  if (!c) throw new Error('nothing claimed');
  return c;
}

/** The error a promise rejects with (fails if it resolves). */
async function refusal(promise: Promise<unknown>): Promise<{ statusCode?: number; message: string }> {
  return promise.then(
    (value) => expect.fail(`resolved with ${JSON.stringify(value)}`),
    (error: { statusCode?: number; message: string }) => error,
  );
}

describe('report replays', () => {
  test.each<[string, (first: ResultBody) => ResultBody]>([
    ['another leaseId', (b) => ({ ...b, leaseId: 'L-other' })],
    ['another status', (b) => ({ ...b, status: 'COMPLETED', error: undefined, retryable: undefined, result: { r: 1 } })],
    ['another result', (b) => ({ ...b, result: { r: 2 } })],
    ['another error', (b) => ({ ...b, error: 'different' })],
    ['retryable: true instead of false', (b) => ({ ...b, retryable: true })],
    ['another agent', (b) => ({ ...b, agentId: 'agent-2' })],
  ])('a second FAILED report with %s is a 409, not a replay, and changes nothing', async (_what, change) => {
    const c = await leased();
    const first: ResultBody = { agentId: 'agent-1', leaseId: c.leaseId, status: 'FAILED', result: { r: 1 }, error: 'boom', retryable: false };
    const taken = await store.report(c.id, first);
    expect(taken.replayed).toBe(false);
    expect(taken.command).toMatchObject({ status: 'FAILED', error: 'boom', result: { r: 1 } });
    const again = await store.report(c.id, first);
    expect(again.replayed).toBe(true);
    const before = await store.get(c.id);
    const seq = await store.lastEventSeq();
    const err = await refusal(store.report(c.id, change(first)));
    expect(err.statusCode).toBe(409);
    expect(await store.get(c.id)).toEqual(before);
    expect(await store.lastEventSeq()).toBe(seq);
  });

  test('a report that differs only in its status, or only in `retryable`, is a 409, not a replay', async () => {
    const a = await leased();
    await store.report(a.id, { agentId: 'agent-1', leaseId: a.leaseId, status: 'FAILED', result: { r: 1 } });
    const sameButCompleted = store.report(a.id, { agentId: 'agent-1', leaseId: a.leaseId, status: 'COMPLETED', result: { r: 1 } });
    expect((await refusal(sameButCompleted)).statusCode).toBe(409);
    const withoutStatus = store.report(a.id, { agentId: 'agent-1', leaseId: a.leaseId, result: { r: 1 } });
    expect((await refusal(withoutStatus)).statusCode).toBe(409);

    const b = await leased(1);
    await store.report(b.id, { agentId: 'agent-1', leaseId: b.leaseId, status: 'FAILED', error: 'e', retryable: true });
    const withoutRetryable = store.report(b.id, { agentId: 'agent-1', leaseId: b.leaseId, status: 'FAILED', error: 'e' });
    expect((await refusal(withoutRetryable)).statusCode).toBe(409);
    expect((await store.report(b.id, { agentId: 'agent-1', leaseId: b.leaseId, status: 'FAILED', error: 'e', retryable: true })).replayed).toBe(true);
  });

  test('the same report with its keys in another order is still a replay', async () => {
    const c = await leased();
    await store.report(c.id, { agentId: 'agent-1', leaseId: c.leaseId, result: { a: 1, b: { c: 2, d: 3 } } });
    const again = await store.report(c.id, { result: { b: { d: 3, c: 2 }, a: 1 }, leaseId: c.leaseId, agentId: 'agent-1' });
    expect(again.replayed).toBe(true);
  });

  test('a retryable failure goes back to PENDING after a backoff; the same report again is a replay, not a second failure', async () => {
    const c = await leased();
    const body: ResultBody = { agentId: 'agent-1', leaseId: c.leaseId, status: 'FAILED', error: 'later', retryable: true };
    const first = await store.report(c.id, body);
    expect(first.command).toMatchObject({ status: 'PENDING', error: 'later', attempts: 1, finishedAt: null, leaseExpiresAt: null });
    // Backoff: 1 s scaled by the jitter (random() = 0.5 here), from now.
    const availableIn = Date.parse(first.command.availableAt) - clock;
    expect(availableIn).toBeGreaterThan(0);
    expect(availableIn).toBeLessThanOrEqual(2000);
    expect(await store.claim('agent-2', 60_000)).toBeUndefined();
    const replay = await store.report(c.id, body);
    expect(replay.replayed).toBe(true);
    expect(replay.command.status).toBe('PENDING');
    clock += availableIn;
    expect((await store.claim('agent-2', 60_000))?.id).toBe(c.id);
  });

  test('a retryable failure with no attempts left is final; one without `retryable` is final too', async () => {
    const spent = await leased(1);
    const r1 = await store.report(spent.id, { agentId: 'agent-1', leaseId: spent.leaseId, status: 'FAILED', error: 'x', retryable: true });
    expect(r1.command).toMatchObject({ status: 'FAILED', error: 'x' });
    expect(r1.command.finishedAt).not.toBeNull();
    const plain = await leased();
    const r2 = await store.report(plain.id, { agentId: 'agent-1', leaseId: plain.leaseId, status: 'FAILED' });
    expect(r2.command).toMatchObject({ status: 'FAILED', error: 'failed' });
  });

  test('a retryable failure of a command whose cancel was requested is final', async () => {
    const c = await leased();
    await store.cancel(c.id);
    const r = await store.report(c.id, { agentId: 'agent-1', leaseId: c.leaseId, status: 'FAILED', error: 'x', retryable: true });
    expect(r.command.status).toBe('FAILED');
    expect(r.command.cancelRequested).toBe(false);
  });

  test('a report without a leaseId is taken for the current lease of that agent', async () => {
    const c = await leased();
    const r = await store.report(c.id, { agentId: 'agent-1', result: { ok: true } });
    expect(r.command).toMatchObject({ status: 'COMPLETED', result: { ok: true }, error: null, leaseExpiresAt: null });
    expect(r.command.finishedAt).toBe(new Date(clock).toISOString());
  });

  test('a report on a PENDING command (never leased) is a 409; on an unknown one a 404', async () => {
    const pending = (await store.submit({ type: 'DELAY', payload: { ms: 1 } })).command;
    expect((await refusal(store.report(pending.id, { agentId: 'agent-1', result: {} }))).statusCode).toBe(409);
    expect((await refusal(store.report('nope', { agentId: 'agent-1', result: {} }))).statusCode).toBe(404);
  });
});

describe('claims', () => {
  test('a batch claim hands out by priority, then submission order: a retried command gets its place back', async () => {
    // A: submitted first, failed once, available again after its backoff. B: submitted later,
    // available at once. Once both are due, A comes first (contract §9: first in, first out within
    // one priority); before routing the order was by availability (B first).
    const a = await leased();
    await store.report(a.id, { agentId: 'agent-1', leaseId: a.leaseId, status: 'FAILED', error: 'retry me', retryable: true });
    const backoff = Date.parse((await store.get(a.id))!.availableAt) - clock;
    clock += 10;
    const b = (await store.submit({ type: 'DELAY', payload: { ms: 2 } })).command;
    clock += backoff + 1000;
    const claimed = await store.claimBatch('agent-2', 60_000, 2);
    expect(claimed.map((c) => c.id)).toEqual([a.id, b.id]);
    expect(claimed[0]!.leaseId).not.toBe(claimed[1]!.leaseId);
  });
});

describe('claims, continued', () => {
  test('commands available at the same moment are handed out in submission order', async () => {
    await store.submitBatch([0, 1, 2, 3, 4].map((ms) => ({ type: 'DELAY' as const, payload: { ms } })));
    const claimed = await store.claimBatch('agent-1', 60_000, 5);
    expect(claimed.map((c) => c.payload)).toEqual([{ ms: 0 }, { ms: 1 }, { ms: 2 }, { ms: 3 }, { ms: 4 }]);
  });
});

describe('after a commit', () => {
  test('a throwing event listener is reported to onError, naming the transition and the command', async () => {
    await store.close();
    const reported: Array<[unknown, string]> = [];
    store = new SqliteCommandStore({ path: join(dir.path, 's.db'), now: () => clock, onError: (error, what) => reported.push([error, what]) });
    store.events.on('event', () => {
      throw new Error('listener broke');
    });
    const heard: string[] = [];
    store.events.on('event', (e) => heard.push(e.transition));
    const { command } = await store.submit({ type: 'DELAY', payload: { ms: 1 } });
    expect(reported).toHaveLength(1);
    expect((reported[0]![0] as Error).message).toBe('listener broke');
    expect(reported[0]![1]).toBe(`an 'event' listener failed on submit of command ${command.id}`);
    // The other listener heard it anyway.
    expect(heard).toEqual(['submit']);
  });

  test('a failing prune is reported to onError and the write still answers', async () => {
    await store.close();
    const reported: string[] = [];
    store = new SqliteCommandStore({ path: join(dir.path, 's.db'), now: () => clock, eventRetention: { count: 10, ms: 86_400_000 }, onError: (_e, what) => reported.push(what) });
    await store.submitBatch(Array.from({ length: 999 }, () => ({ type: 'DELAY' as const, payload: { ms: 1 } })));
    // Make the prune's DELETE fail, through a second connection.
    const Database = (await import('better-sqlite3')).default;
    const other = new Database(join(dir.path, 's.db'));
    other.exec(`CREATE TRIGGER no_prune BEFORE DELETE ON events BEGIN SELECT RAISE(ABORT, 'prune refused'); END`);
    other.close();
    const { command } = await store.submit({ type: 'DELAY', payload: { ms: 1 } });
    expect(command.status).toBe('PENDING');
    expect(reported).toEqual(['pruning the event log failed; trying again after the next writes']);
  });
});

describe('list pages', () => {
  test('a page of exactly `limit` commands has no next page; `limit + 1` has one, starting after the last shown', async () => {
    for (let i = 0; i < 3; i++) await store.submit({ type: 'DELAY', payload: { ms: i } });
    const all = await store.list({ limit: 3 });
    expect(all.commands.map((c) => c.payload)).toEqual([{ ms: 2 }, { ms: 1 }, { ms: 0 }]);
    expect(all.nextBeforeSeq).toBeUndefined();
    const first = await store.list({ limit: 2 });
    expect(first.commands.map((c) => c.payload)).toEqual([{ ms: 2 }, { ms: 1 }]);
    expect(first.nextBeforeSeq).toBeDefined();
    const second = await store.list({ limit: 2, beforeSeq: first.nextBeforeSeq });
    expect(second.commands.map((c) => c.payload)).toEqual([{ ms: 0 }]);
    expect(second.nextBeforeSeq).toBeUndefined();
  });

  test('filters combine, and each filter has its own page', async () => {
    await store.submit({ type: 'DELAY', payload: { ms: 1 } });
    await store.submit({ type: 'HTTP_GET_JSON', payload: { url: 'https://example.com/' } });
    await store.submit({ type: 'DELAY', payload: { ms: 2 } });
    await store.claim('agent-1', 60_000);
    const delays = await store.list({ limit: 10, type: 'DELAY' });
    expect(delays.commands.map((c) => c.payload)).toEqual([{ ms: 2 }, { ms: 1 }]);
    const running = await store.list({ limit: 10, status: 'RUNNING', agentId: 'agent-1' });
    expect(running.commands.map((c) => c.payload)).toEqual([{ ms: 1 }]);
    expect((await store.list({ limit: 10, agentId: 'agent-2' })).commands).toEqual([]);
    expect((await store.list({ limit: 10, status: 'PENDING', type: 'HTTP_GET_JSON' })).commands).toHaveLength(1);
  });
});

describe('event log pruning', () => {
  test('after every 1 000 events the log keeps only the newest `count` events', async () => {
    await store.close();
    store = open({ count: 100, ms: 24 * 3_600_000 });
    // 1 000 submits: 1 000 events, the prune runs after the last.
    for (let i = 0; i < 10; i++) await store.submitBatch(Array.from({ length: 100 }, () => ({ type: 'DELAY' as const, payload: { ms: 1 } })));
    const last = await store.lastEventSeq();
    const kept = await store.eventsSince(0, 10_000);
    expect(kept).toHaveLength(100);
    expect(kept[0]!.seq).toBe(last - 99);
    expect(kept.at(-1)!.seq).toBe(last);
  });

  test('a prune that deleted less than a batch waits for the next 1 000 events', async () => {
    await store.close();
    store = open({ count: 100, ms: 24 * 3_600_000 });
    await store.submitBatch(Array.from({ length: 1000 }, () => ({ type: 'DELAY' as const, payload: { ms: 1 } })));
    expect(await store.eventsSince(0, 10_000)).toHaveLength(100);
    await store.submit({ type: 'DELAY', payload: { ms: 1 } });
    expect(await store.eventsSince(0, 10_000)).toHaveLength(101);
  });

  test('before 1 000 events nothing is pruned', async () => {
    await store.close();
    store = open({ count: 10, ms: 24 * 3_600_000 });
    await store.submitBatch(Array.from({ length: 999 }, () => ({ type: 'DELAY' as const, payload: { ms: 1 } })));
    expect(await store.eventsSince(0, 10_000)).toHaveLength(999);
  });

  test('events older than `ms` go even when there are fewer than `count`', async () => {
    await store.close();
    store = open({ count: 100_000, ms: 60_000 });
    await store.submitBatch(Array.from({ length: 500 }, () => ({ type: 'DELAY' as const, payload: { ms: 1 } })));
    clock += 61_000;
    await store.submitBatch(Array.from({ length: 500 }, () => ({ type: 'DELAY' as const, payload: { ms: 1 } })));
    const kept = await store.eventsSince(0, 10_000);
    expect(kept).toHaveLength(500);
    expect(kept.every((e) => e.createdAt >= clock)).toBe(true);
  });

  test('a prune deletes at most 2 000 events; the rest go at the next writes', async () => {
    await store.close();
    store = open({ count: 100_000, ms: 60_000 });
    for (let i = 0; i < 3; i++) await store.submitBatch(Array.from({ length: 1000 }, () => ({ type: 'DELAY' as const, payload: { ms: 1 } })));
    clock += 61_000;
    // 3 000 old events: the prune after these 1 000 new ones deletes 2 000 of them…
    await store.submitBatch(Array.from({ length: 1000 }, () => ({ type: 'DELAY' as const, payload: { ms: 1 } })));
    expect(await store.eventsSince(0, 10_000)).toHaveLength(2000);
    // …and, having hit its batch limit, prunes again at the very next write.
    await store.submit({ type: 'DELAY', payload: { ms: 1 } });
    expect(await store.eventsSince(0, 10_000)).toHaveLength(1001);
  });
});
