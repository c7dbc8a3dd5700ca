/**
 * The SQLite store says 'available' (which wakes one waiting long-poll) exactly when a write
 * leaves a command claimable that was not: a ready submit, a release, a retry, a due scheduled
 * command, a key slot handed to a held command. Writes that make nothing claimable say nothing:
 * a scheduled or held submit, a claim, a heartbeat, a finish that frees no held command, a
 * cancel of a RUNNING command (its slot stays taken until it ends). A spurious 'available' wakes
 * a poll that finds nothing; a missing one leaves a poll waiting beside a claimable command.
 *
 * Equivalent mutants of these announcements (sqlite.ts):
 * - none known: each `… > 0` / `if (!this.workStaged) return` is pinned by a case below.
 */
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import type { ClaimedCommand } from '@agent-executor/common';
import { SqliteCommandStore } from '../src/store/sqlite.js';
import { delay, keyed, useSqliteStore } from './sqlite-test-store.js';

const t = useSqliteStore('store-wakeups');
const LEASE_MS = 30_000;

/** How many times `write` made the store say 'available' (it says so inside the commit). */
async function announced(write: () => Promise<unknown>): Promise<number> {
  let n = 0;
  const listener = () => n++;
  t.store.events.on('available', listener);
  try {
    await write();
  } finally {
    t.store.events.off('available', listener);
  }
  return n;
}

const claim = async (agentId = 'a1'): Promise<ClaimedCommand> => {
  const claimed = await t.store.claim(agentId, LEASE_MS);
  if (!claimed) throw new Error('nothing to claim');
  return claimed;
};
const complete = (c: ClaimedCommand) => t.store.report(c.id, { agentId: c.agentId ?? '', leaseId: c.leaseId, result: {} });

describe("'available'", () => {
  test("a fresh store's first write says nothing when it makes nothing claimable; listeners get no arguments", async () => {
    const runAt = new Date(t.clock.now() + 60_000).toISOString();
    expect(await announced(() => t.store.submit(delay({ runAt })))).toBe(0);
    const calls: unknown[][] = [];
    const listener = (...args: unknown[]) => calls.push(args);
    t.store.events.on('available', listener);
    await t.store.submit(delay());
    t.store.events.off('available', listener);
    expect(calls).toEqual([[]]);
  });

  test('a throwing listener is reported; the others still hear it, and the write stands', async () => {
    const errors: Array<[unknown, string]> = [];
    const store = new SqliteCommandStore({ path: join(t.dir, 'throwing.db'), onError: (error, what) => errors.push([error, what]) });
    try {
      const bug = new Error('listener bug');
      let heard = 0;
      store.events.on('available', () => {
        throw bug;
      });
      store.events.on('available', () => heard++);
      const { command } = await store.submit(delay());
      expect(errors).toEqual([[bug, "an 'available' listener failed"]]);
      expect(heard).toBe(1);
      expect(await store.get(command.id)).toMatchObject({ status: 'PENDING' });
    } finally {
      await store.close();
    }
  });

  test('a ready submit says it once; a scheduled one, and one held behind its key, say nothing', async () => {
    expect(await announced(() => t.store.submit(delay()))).toBe(1);
    const runAt = new Date(t.clock.now() + 60_000).toISOString();
    expect(await announced(() => t.store.submit(delay({ runAt })))).toBe(0);
    expect(await announced(() => t.store.submit(keyed('k', 1)))).toBe(1);
    // The key's one slot is taken: the next is held, and giving the same limit again frees nothing.
    expect(await announced(() => t.store.submit(keyed('k', 1)))).toBe(0);
    // A raised limit frees a slot: the held command is claimable now, and so is the new one.
    expect(await announced(() => t.store.submit(keyed('k', 3)))).toBe(1);
    expect(await t.store.countByStatus()).toMatchObject({ PENDING: 5 });
  });

  test('a raised limit says it even when the submit itself is scheduled', async () => {
    await t.store.submit(keyed('k', 1));
    const held = (await t.store.submit(keyed('k', 1))).command;
    expect(await t.store.pendingState(held.id)).toMatchObject({ state: 'held' });
    const runAt = new Date(t.clock.now() + 60_000).toISOString();
    expect(await announced(() => t.store.submit(keyed('k', 2, { runAt })))).toBe(1);
    expect(await t.store.pendingState(held.id)).toMatchObject({ state: 'ready' });
  });

  test('claims, heartbeats and a finish that frees nothing say nothing; a release says it', async () => {
    await t.store.submit(delay());
    await t.store.submit(delay());
    let first!: ClaimedCommand;
    expect(await announced(async () => (first = await claim()))).toBe(0);
    expect(await announced(() => t.store.heartbeat(first.id, { agentId: 'a1', leaseId: first.leaseId, progress: { percent: 10 } }, LEASE_MS))).toBe(0);
    expect(await announced(() => complete(first))).toBe(0);
    const second = await claim();
    expect(await announced(() => t.store.release(second.id, second.leaseId))).toBe(1);
    // A release under another lease id changes nothing, and says nothing.
    const again = await claim();
    expect(await announced(() => t.store.release(again.id, 'not-the-lease'))).toBe(0);
  });

  test('a finish hands its key slot to a held command and says so; without a held one it says nothing', async () => {
    await t.store.submit(keyed('k', 1));
    await t.store.submit(keyed('k', 1));
    const running = await claim();
    expect(await announced(() => complete(running))).toBe(1);
    const next = await claim();
    expect(await announced(() => complete(next))).toBe(0);
  });

  test('a retryable failure waits out its backoff silently; the claim or promotion that finds it due says it', async () => {
    await t.store.submit(delay({ maxAttempts: 3 }));
    const c = await claim();
    expect(
      await announced(() => t.store.report(c.id, { agentId: 'a1', leaseId: c.leaseId, status: 'FAILED', error: 'x', retryable: true })),
    ).toBe(0);
    t.clock.advance(1_000); // the first backoff, jitter 1
    expect(await announced(() => t.store.promoteDue())).toBe(1);
    // Nothing else is due: a second promotion says nothing.
    expect(await announced(() => t.store.promoteDue())).toBe(0);
    const again = await claim();
    await t.store.report(again.id, { agentId: 'a1', leaseId: again.leaseId, status: 'FAILED', error: 'x', retryable: true });
    t.clock.advance(2_000);
    // No reaper ran: the claim promotes it in its own write, and says so in that commit.
    let claimed: ClaimedCommand | undefined;
    expect(await announced(async () => (claimed = await t.store.claim('a2', LEASE_MS)))).toBe(1);
    expect(claimed?.id).toBe(c.id);
  });

  test('a keyed scheduled command that comes due with a free slot says it; one whose key is full, nothing', async () => {
    const runAt = new Date(t.clock.now() + 1_000).toISOString();
    const due = (await t.store.submit(keyed('k', 1, { runAt }))).command;
    const waits = (await t.store.submit(keyed('k', 1, { runAt }))).command;
    t.clock.advance(1_000);
    expect(await announced(() => t.store.promoteDue())).toBe(1);
    expect(await t.store.pendingState(due.id)).toMatchObject({ state: 'ready' });
    expect(await t.store.pendingState(waits.id)).toMatchObject({ state: 'held' });
    const later = (await t.store.submit(keyed('k', 1, { runAt: new Date(t.clock.now() + 1_000).toISOString() }))).command;
    t.clock.advance(1_000);
    expect(await announced(() => t.store.promoteDue())).toBe(0);
    expect(await t.store.pendingState(later.id)).toMatchObject({ state: 'held' });
  });

  test('a retryable failure of a keyed command: the slot goes to the held one, which says so', async () => {
    await t.store.submit(keyed('k', 1, { maxAttempts: 3 }));
    const held = (await t.store.submit(keyed('k', 1))).command;
    const c = await claim();
    expect(
      await announced(() => t.store.report(c.id, { agentId: 'a1', leaseId: c.leaseId, status: 'FAILED', error: 'x', retryable: true })),
    ).toBe(1);
    expect((await claim('a2')).id).toBe(held.id);
  });

  test('cancel: of a PENDING command says nothing, unless it hands its slot on; of a RUNNING one, nothing', async () => {
    const plain = (await t.store.submit(delay())).command;
    expect(await announced(() => t.store.cancel(plain.id))).toBe(0);
    const ready = (await t.store.submit(keyed('k', 1))).command;
    const held = (await t.store.submit(keyed('k', 1))).command;
    expect(await announced(() => t.store.cancel(ready.id))).toBe(1);
    const running = await claim();
    expect(running.id).toBe(held.id);
    await t.store.submit(keyed('k', 1));
    expect(await announced(() => t.store.cancel(running.id))).toBe(0);
  });

  test('retry says it when the command is claimable again, not when it is held behind its key', async () => {
    await t.store.submit(keyed('k', 1, { maxAttempts: 1 }));
    const failed = await claim();
    await t.store.report(failed.id, { agentId: 'a1', leaseId: failed.leaseId, status: 'FAILED', error: 'x' });
    const blocker = (await t.store.submit(keyed('k', 1))).command;
    expect(await announced(() => t.store.retry(failed.id))).toBe(0);
    expect(await t.store.pendingState(failed.id)).toMatchObject({ state: 'held' });
    await t.store.cancel(blocker.id);
    const c = await claim();
    expect(c.id).toBe(failed.id);
    await t.store.report(c.id, { agentId: 'a1', leaseId: c.leaseId, status: 'FAILED', error: 'x' });
    expect(await announced(() => t.store.retry(c.id))).toBe(1);
  });

  test('bulk retry says it once per write; bulk cancel says it only when a slot goes to a held command', async () => {
    for (let i = 0; i < 3; i++) await t.store.submit(delay({ maxAttempts: 1 }));
    for (let i = 0; i < 3; i++) {
      const c = await claim();
      await t.store.report(c.id, { agentId: 'a1', leaseId: c.leaseId, status: 'FAILED', error: 'x' });
    }
    const upToSeq = await t.store.lastCommandSeq();
    expect(await announced(() => t.store.retryFailed({}, { afterSeq: 0, upToSeq, max: 10 }))).toBe(1);
    expect(await announced(() => t.store.cancelPending({}, { afterSeq: 0, upToSeq, max: 10 }))).toBe(0);
    await t.store.submit(keyed('k', 1));
    const held = (await t.store.submit({ type: 'HTTP_GET_JSON', payload: { url: 'https://example.com/' }, concurrencyKey: 'k', concurrencyLimit: 1 })).command;
    const last = await t.store.lastCommandSeq();
    expect(await announced(() => t.store.cancelPending({ type: 'DELAY' }, { afterSeq: 0, upToSeq: last, max: 10 }))).toBe(1);
    expect(await t.store.pendingState(held.id)).toMatchObject({ state: 'ready' });
  });

  test('an expired lease of a keyed command hands the slot on and says so; of an unkeyed one, nothing', async () => {
    await t.store.submit(delay());
    await claim();
    t.clock.advance(LEASE_MS);
    expect(await announced(() => t.store.requeueExpired())).toBe(0);
    t.clock.advance(60_000); // its backoff over
    await claim();
    await t.store.submit(keyed('k', 1));
    const held = (await t.store.submit(keyed('k', 1))).command;
    const c = await claim();
    expect(c.id).not.toBe(held.id);
    t.clock.advance(LEASE_MS);
    // Both leases end: the unkeyed command waits out a backoff (silent), the keyed one's slot
    // goes to the held command (one announcement for the write).
    expect(await announced(() => t.store.requeueExpired())).toBe(1);
    expect(await t.store.pendingState(held.id)).toMatchObject({ state: 'ready' });
  });

  test('retention, agents and reads say nothing', async () => {
    const c = (await t.store.submit(delay())).command;
    await complete(await claim());
    t.clock.advance(1_000);
    expect(await announced(() => t.store.deleteFinishedBefore(t.clock.now(), 10))).toBe(0);
    expect(await t.store.get(c.id)).toBeUndefined();
    expect(
      await announced(() =>
        t.store.saveAgents([{ id: 'a1', hostname: null, version: null, queues: ['default'], types: ['DELAY'], concurrency: 1, lastSeenAt: 1, draining: false }]),
      ),
    ).toBe(0);
  });
});
