/**
 * Per-key concurrency (SPEC §9) in the SQLite store: a key's slot is taken by a command that is
 * ready or RUNNING and given back exactly once, when it leaves both (finished, failed, canceled
 * while PENDING, expired); never by a command that only waits held, nor by a cancel request on a
 * RUNNING one. A slot given back twice lets a key run over its limit; one never given back
 * holds the key's later commands forever. And `pendingState` says where a PENDING command stands.
 *
 * Equivalent mutants (sqlite.ts):
 * - retry(): `if (current.status !== 'FAILED') throw …` → never throwing: the guarded UPDATE
 *   (`WHERE status = 'FAILED'`) then finds no row and throws the same Conflict; the slot the
 *   readiness took in between is rolled back with the write.
 * - requeueExpired(): `if (!row) continue` and report(): `if (changes !== 1) throw`: the row was
 *   read in the same transaction, so the guarded statement always matches it.
 *
 * Equivalent mutants (sqlite-routing.ts, `npm run mutate store-routing`):
 * - KeySlots.limit(): `changes > 0 ? promote : 0` → `>= 0`: with the limit unchanged no held
 *   command can have a free slot (a command is held only while the key has none), so the extra
 *   promote finds nothing.
 * - promote(): `if (promoted > 0) addActive…` → always: adding 0 changes nothing.
 * - state(): `runningOf.get(key)?.n` → without `?.`: count(*) always answers one row.
 * - claimStatement(): `if (!cache)` → always, `if (statement) return statement` → never: the
 *   statement is prepared again from the same SQL (a cache only).
 */
import { describe, expect, test } from 'vitest';
import type { ClaimedCommand } from '@agent-executor/common';
import { delay, keyed, useSqliteStore } from './sqlite-test-store.js';

const t = useSqliteStore('store-key-slots');
const LEASE_MS = 30_000;

const claimAll = async (agentId = 'a1', max = 10): Promise<ClaimedCommand[]> => t.store.claimBatch(agentId, LEASE_MS, max);
const complete = (c: ClaimedCommand) => t.store.report(c.id, { agentId: c.agentId ?? '', leaseId: c.leaseId, result: {} });
const fail = (c: ClaimedCommand, retryable = false) =>
  t.store.report(c.id, { agentId: c.agentId ?? '', leaseId: c.leaseId, status: 'FAILED', error: 'x', retryable });

describe('key slots', () => {
  test('a COMPLETED command gives its slot back once: the next command of the key runs, and only one', async () => {
    await t.store.submit(keyed('k', 1));
    const [first] = await claimAll();
    await complete(first!);
    // No held command took the slot: it is free for the next submit, which must be claimable.
    const next = (await t.store.submit(keyed('k', 1))).command;
    await t.store.submit(keyed('k', 1));
    expect((await claimAll()).map((c) => c.id)).toEqual([next.id]);
  });

  test('a command FAILED by an expired lease gives its slot back once', async () => {
    await t.store.submit(keyed('k', 1, { maxAttempts: 1 }));
    await claimAll();
    t.clock.advance(LEASE_MS);
    const [expired] = await t.store.requeueExpired();
    expect(expired).toMatchObject({ status: 'FAILED', error: 'lease expired' });
    const next = (await t.store.submit(keyed('k', 1))).command;
    await t.store.submit(keyed('k', 1));
    expect((await claimAll()).map((c) => c.id)).toEqual([next.id]);
  });

  test('an expired lease with attempts left: the slot is free during the backoff, and taken again after it', async () => {
    const first = (await t.store.submit(keyed('k', 1, { maxAttempts: 2 }))).command;
    await claimAll();
    t.clock.advance(LEASE_MS);
    await t.store.requeueExpired();
    expect(await t.store.pendingState(first.id)).toMatchObject({ state: 'scheduled' });
    const other = (await t.store.submit(keyed('k', 1))).command;
    const [running] = await claimAll();
    expect(running?.id).toBe(other.id);
    t.clock.advance(60_000);
    // Due again, but the key's slot is taken: held until `other` ends.
    expect(await claimAll()).toEqual([]);
    expect(await t.store.pendingState(first.id)).toMatchObject({ state: 'held', running: 1, limit: 1 });
    await complete(running!);
    expect((await claimAll()).map((c) => c.id)).toEqual([first.id]);
  });

  test('a cancel request on a RUNNING command keeps its slot until the command ends', async () => {
    await t.store.submit(keyed('k', 1));
    const held = (await t.store.submit(keyed('k', 1))).command;
    const [running] = await claimAll();
    await t.store.cancel(running!.id);
    expect(await claimAll('a2')).toEqual([]);
    expect(await t.store.pendingState(held.id)).toMatchObject({ state: 'held', running: 1, limit: 1 });
    // A second cancel of the same command answers it as it is, and frees nothing either.
    expect(await t.store.cancel(running!.id)).toMatchObject({ status: 'RUNNING', cancelRequested: true });
    expect(await claimAll('a2')).toEqual([]);
    await fail(running!);
    expect((await claimAll('a2')).map((c) => c.id)).toEqual([held.id]);
  });

  test('a canceled held command frees no slot; a canceled ready one hands its slot to the next held one', async () => {
    const ready = (await t.store.submit(keyed('k', 1))).command;
    const held1 = (await t.store.submit(keyed('k', 1))).command;
    const held2 = (await t.store.submit(keyed('k', 1))).command;
    await t.store.cancel(held1.id);
    expect(await t.store.pendingState(held2.id)).toMatchObject({ state: 'held' });
    await t.store.cancel(ready.id);
    expect(await t.store.pendingState(held2.id)).toMatchObject({ state: 'ready' });
    expect((await claimAll()).map((c) => c.id)).toEqual([held2.id]);
  });

  test('bulk cancel: a held command frees no slot, a ready one hands it on', async () => {
    await t.store.submit(keyed('k', 1));
    await t.store.submit(keyed('k', 1, { type: 'HTTP_GET_JSON', payload: { url: 'https://example.com/' } }));
    const held2 = (await t.store.submit(keyed('k', 1))).command;
    const upToSeq = await t.store.lastCommandSeq();
    // Cancels only the held HTTP command: the ready DELAY keeps the slot, held2 stays held.
    expect(await t.store.cancelPending({ type: 'HTTP_GET_JSON' }, { afterSeq: 0, upToSeq, max: 10 })).toMatchObject({ changed: 1 });
    expect(await t.store.pendingState(held2.id)).toMatchObject({ state: 'held' });
    const [running] = await claimAll();
    expect(running?.id).not.toBe(held2.id);
    expect(await claimAll()).toEqual([]);
  });

  test('retry and bulk retry take a slot of the key, or wait held', async () => {
    await t.store.submit(keyed('k', 1, { maxAttempts: 1 }));
    await t.store.submit(keyed('k', 1, { maxAttempts: 1 }));
    const [a] = await claimAll();
    await fail(a!);
    const [b] = await claimAll();
    // b runs: a retried waits held.
    await t.store.retry(a!.id);
    expect(await t.store.pendingState(a!.id)).toMatchObject({ state: 'held', running: 1, limit: 1 });
    await t.store.cancel(a!.id);
    await fail(b!);
    const upToSeq = await t.store.lastCommandSeq();
    expect(await t.store.retryFailed({}, { afterSeq: 0, upToSeq, max: 10 })).toEqual({ changed: 2, lastSeq: upToSeq });
    // Two retried, one slot: one ready, one held.
    expect((await claimAll()).map((c) => c.id)).toEqual([a!.id]);
    expect(await t.store.pendingState(b!.id)).toMatchObject({ state: 'held' });
  });

  test('a retryable failure gives the slot back during its backoff', async () => {
    const first = (await t.store.submit(keyed('k', 1, { maxAttempts: 3 }))).command;
    const [running] = await claimAll();
    await fail(running!, true);
    expect(await t.store.pendingState(first.id)).toMatchObject({ state: 'scheduled' });
    const other = (await t.store.submit(keyed('k', 1))).command;
    expect((await claimAll()).map((c) => c.id)).toEqual([other.id]);
  });

  test('unkeyed commands take no slot: any number run at once', async () => {
    for (let i = 0; i < 5; i++) await t.store.submit(delay());
    expect(await claimAll('a1', 10)).toHaveLength(5);
  });
});

describe('scheduled commands come due', () => {
  test('promoteDue promotes at most 1 000 per pass and says when more are due; keyed ones take their slots', async () => {
    const runAt = new Date(t.clock.now() + 1_000).toISOString();
    await t.store.submitBatch(Array.from({ length: 1_001 }, () => delay({ runAt })));
    await t.store.submitBatch(Array.from({ length: 3 }, () => keyed('k', 2, { runAt })));
    expect(await t.store.promoteDue(), 'nothing is due yet').toBe(false);
    t.clock.advance(1_000);
    expect(await t.store.promoteDue(), '1 000 unkeyed of 1 001: more are due').toBe(true);
    expect(await t.store.promoteDue(), 'the last one').toBe(false);
    expect(await t.store.claimBatch('a1', LEASE_MS, 2_000)).toHaveLength(1_001 + 2);
  });

  test('1 000 keyed commands due at once: more are due after the pass', async () => {
    const runAt = new Date(t.clock.now() + 1_000).toISOString();
    await t.store.submitBatch(Array.from({ length: 1_000 }, () => keyed('k', 1_000, { runAt })));
    t.clock.advance(1_000);
    expect(await t.store.promoteDue()).toBe(true);
    expect(await t.store.promoteDue()).toBe(false);
    expect(await t.store.claimBatch('a1', LEASE_MS, 2_000)).toHaveLength(1_000);
  });

  test('999 due: one pass, nothing more', async () => {
    const runAt = new Date(t.clock.now() + 1_000).toISOString();
    await t.store.submitBatch(Array.from({ length: 999 }, () => delay({ runAt })));
    t.clock.advance(1_000);
    expect(await t.store.promoteDue()).toBe(false);
  });
});

describe('pendingState', () => {
  test('undefined for an unknown, RUNNING or finished command', async () => {
    expect(await t.store.pendingState('no-such-id')).toBeUndefined();
    const c = (await t.store.submit(delay())).command;
    const [running] = await claimAll();
    expect(await t.store.pendingState(c.id)).toBeUndefined();
    await complete(running!);
    expect(await t.store.pendingState(c.id)).toBeUndefined();
  });

  test('scheduled until its runAt, ready from that very moment even before any promotion', async () => {
    const at = t.clock.now() + 5_000;
    const c = (await t.store.submit(delay({ queue: 'gpu', runAt: new Date(at).toISOString() }))).command;
    expect(await t.store.pendingState(c.id)).toEqual({ queue: 'gpu', type: 'DELAY', state: 'scheduled', until: at });
    t.clock.advance(4_999);
    expect(await t.store.pendingState(c.id)).toMatchObject({ state: 'scheduled' });
    t.clock.advance(1);
    expect(await t.store.pendingState(c.id)).toEqual({ queue: 'gpu', type: 'DELAY', state: 'ready' });
  });

  test("held: the key's RUNNING count and its current limit (the latest submit's), not the command's own", async () => {
    await t.store.submit(keyed('k', 2));
    await t.store.submit(keyed('k', 2));
    const held = (await t.store.submit(keyed('k', 2, { type: 'HTTP_GET_JSON', payload: { url: 'https://example.com/' } }))).command;
    await claimAll();
    expect(await t.store.pendingState(held.id)).toEqual({ queue: 'default', type: 'HTTP_GET_JSON', state: 'held', running: 2, limit: 2 });
    // A later submit lowers the key's limit to 1.
    await t.store.submit(keyed('k', 1));
    expect(await t.store.pendingState(held.id)).toEqual({ queue: 'default', type: 'HTTP_GET_JSON', state: 'held', running: 2, limit: 1 });
  });

  test('ready: an unkeyed command, and a keyed one holding a slot', async () => {
    const plain = (await t.store.submit(delay())).command;
    const k = (await t.store.submit(keyed('k', 1))).command;
    expect(await t.store.pendingState(plain.id)).toEqual({ queue: 'default', type: 'DELAY', state: 'ready' });
    expect(await t.store.pendingState(k.id)).toEqual({ queue: 'default', type: 'DELAY', state: 'ready' });
  });
});
