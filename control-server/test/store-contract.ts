/**
 * The contract every CommandStore keeps, written against the interface only, so the PostgreSQL
 * store can run the same suite: `describeStoreContract('postgres', makePostgresStore)`.
 * Time is the injected clock, so leases and backoffs are exact and nothing sleeps.
 */
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import type { ClaimedCommand, Command, SubmitBody } from '@agent-executor/common';
import type { HttpError } from '../src/errors.js';
import type { CommandStore, StoredEvent } from '../src/store/store.js';
import { TestClock } from './helpers.js';
import { describeRoutingContract } from './store-contract-routing.js';

export interface StoreOptions {
  now: () => number;
  random: () => number;
}

/** Opens a fresh, empty store; the suite closes it after each test. */
export type MakeStore = (options: StoreOptions) => Promise<CommandStore>;

const LEASE_MS = 30_000;
const delay = (ms = 10, extra: Partial<SubmitBody> = {}): SubmitBody =>
  ({ type: 'DELAY', payload: { ms }, ...extra }) as SubmitBody;
const httpGet: SubmitBody = { type: 'HTTP_GET_JSON', payload: { url: 'https://example.com/a.json' } };

/** Asserts that `promise` rejects with an HttpError of `statusCode` and returns its message. */
async function rejectsWith(promise: Promise<unknown>, statusCode: number): Promise<string> {
  const error = await promise.then(
    () => undefined,
    (err: unknown) => err as HttpError,
  );
  expect(error, `expected an error with status ${statusCode}`).toBeDefined();
  expect(error?.statusCode, error?.message).toBe(statusCode);
  return error?.message ?? '';
}

export function describeStoreContract(name: string, makeStore: MakeStore): void {
  describeRoutingContract(name, makeStore);
  describe(`CommandStore contract: ${name}`, () => {
    let clock: TestClock;
    /** The store's `random`: 0.5 makes the backoff jitter factor exactly 1. */
    let jitter: number;
    let store: CommandStore;

    beforeEach(async () => {
      clock = new TestClock();
      jitter = 0.5;
      store = await makeStore({ now: clock.now, random: () => jitter });
    });
    afterEach(async () => {
      await store.close();
    });

    const submit = async (body: SubmitBody = delay()) => (await store.submit(body)).command;
    const claim = async (agentId = 'agent-1', leaseMs = LEASE_MS): Promise<ClaimedCommand> => {
      const claimed = await store.claim(agentId, leaseMs);
      if (!claimed) throw new Error(`${agentId} found no command to claim`);
      return claimed;
    };
    const get = async (id: string): Promise<Command> => {
      const command = await store.get(id);
      if (!command) throw new Error(`command ${id} is gone`);
      return command;
    };
    const at = (ms: number) => new Date(ms).toISOString();
    const failRetryable = (c: ClaimedCommand, agentId = 'agent-1') =>
      store.report(c.id, { agentId, leaseId: c.leaseId, status: 'FAILED', error: 'HTTP 503', retryable: true });
    const eventsAfter = (seq: number) => store.eventsSince(seq, 1000);

    describe('submit and get', () => {
      test('a new command is PENDING with the defaults of SPEC §2', async () => {
        const t0 = clock.now();
        const d = await submit(delay(3000));
        expect(d).toMatchObject({
          type: 'DELAY',
          payload: { ms: 3000 },
          status: 'PENDING',
          result: null,
          error: null,
          agentId: null,
          attempts: 0,
          maxAttempts: 3,
          timeoutMs: 33_000,
          leaseExpiresAt: null,
          availableAt: at(t0),
          cancelRequested: false,
          progress: null,
          createdAt: at(t0),
          updatedAt: at(t0),
          startedAt: null,
          finishedAt: null,
        });
        expect((await submit(httpGet)).timeoutMs).toBe(30_000);
        expect(await store.get(d.id)).toEqual(d);
      });

      test('maxAttempts and timeoutMs given on submit are kept', async () => {
        const c = await submit(delay(10, { maxAttempts: 20, timeoutMs: 500 }));
        expect(c).toMatchObject({ maxAttempts: 20, timeoutMs: 500 });
      });

      test('every command gets its own id; get of an unknown id answers undefined', async () => {
        const ids = new Set<string>();
        for (let i = 0; i < 20; i++) ids.add((await submit()).id);
        expect(ids.size).toBe(20);
        expect(await store.get('no-such-command')).toBeUndefined();
      });
    });

    describe('idempotency keys', () => {
      test('the same key with the same body answers the first command, replayed, and stores nothing new', async () => {
        const first = await store.submit(delay(5), 'key-1');
        expect(first.replayed).toBe(false);
        clock.advance(1000);
        const again = await store.submit(delay(5), 'key-1');
        expect(again).toEqual({ command: first.command, replayed: true });
        // Key order in the body does not make it another body.
        const reordered = await store.submit({ payload: { ms: 5 }, type: 'DELAY' } as SubmitBody, 'key-1');
        expect(reordered.command.id).toBe(first.command.id);
        expect((await store.countByStatus()).PENDING).toBe(1);
      });

      test('the same key with another body is a 422 and stores nothing', async () => {
        await store.submit(delay(5), 'key-1');
        const seq = await store.lastEventSeq();
        const message = await rejectsWith(store.submit(delay(6), 'key-1'), 422);
        expect(message).toMatch(/Idempotency-Key/);
        expect((await store.countByStatus()).PENDING).toBe(1);
        expect(await store.lastEventSeq()).toBe(seq);
      });

      test('concurrent submits with one key make one command', async () => {
        const outcomes = await Promise.all(Array.from({ length: 10 }, () => store.submit(delay(5), 'key-race')));
        expect(new Set(outcomes.map((o) => o.command.id)).size).toBe(1);
        expect(outcomes.filter((o) => !o.replayed)).toHaveLength(1);
        expect((await store.countByStatus()).PENDING).toBe(1);
      });

      test('other keys and no key make new commands', async () => {
        const a = await store.submit(delay(5), 'key-a');
        const b = await store.submit(delay(5), 'key-b');
        const c = await store.submit(delay(5));
        const d = await store.submit(delay(5));
        expect(new Set([a, b, c, d].map((o) => o.command.id)).size).toBe(4);
        expect([a, b, c, d].every((o) => !o.replayed)).toBe(true);
      });
    });

    describe('claim', () => {
      test('no available command: undefined', async () => {
        expect(await store.claim('agent-1', LEASE_MS)).toBeUndefined();
      });

      test('a claim leases the command: RUNNING, the agent, one attempt, a lease of leaseMs', async () => {
        const c = await submit();
        clock.advance(5);
        const claimed = await claim('agent-1', 12_345);
        expect(claimed).toMatchObject({
          id: c.id,
          status: 'RUNNING',
          agentId: 'agent-1',
          attempts: 1,
          leaseExpiresAt: at(clock.now() + 12_345),
          startedAt: at(clock.now()),
        });
        expect(claimed.leaseId).toEqual(expect.any(String));
        expect(await store.claim('agent-2', LEASE_MS)).toBeUndefined();
      });

      test('the lease id is shown only to the claimer: never in get, list or events', async () => {
        const c = await submit();
        const claimed = await claim();
        const seen: unknown[] = [await get(c.id), ...(await store.list({ limit: 10 })).commands];
        seen.push(...(await eventsAfter(0)).map((e) => e.command));
        for (const command of seen) expect(JSON.stringify(command)).not.toContain(claimed.leaseId);
      });

      test('order: by age (insertion order); a retried command keeps its place once its backoff ends', async () => {
        const a = await submit();
        const b = await submit();
        const c = await submit();
        // a fails and waits out a 1 s backoff: b comes first meanwhile; then a is the oldest again.
        await failRetryable(await claim());
        expect((await claim()).id).toBe(b.id);
        clock.advance(2000);
        const d = await submit();
        const order: string[] = [];
        for (let i = 0; i < 3; i++) order.push((await claim()).id);
        expect(order).toEqual([a.id, c.id, d.id]);
      });

      test('many concurrent claims: every command is leased exactly once', async () => {
        const ids = new Set<string>();
        for (let i = 0; i < 25; i++) ids.add((await submit()).id);
        const answers = await Promise.all(
          Array.from({ length: 100 }, (_, i) => store.claim(`agent-${i % 10}`, LEASE_MS)),
        );
        const claimed = answers.filter((c): c is ClaimedCommand => c !== undefined);
        expect(claimed).toHaveLength(25);
        expect(new Set(claimed.map((c) => c.id))).toEqual(ids);
        expect(new Set(claimed.map((c) => c.leaseId)).size).toBe(25);
        expect(await store.countByStatus()).toEqual({ PENDING: 0, RUNNING: 25, COMPLETED: 0, FAILED: 0 });
      });

      test('claimBatch leases up to max commands in claim order, each under its own lease', async () => {
        const ids: string[] = [];
        for (let i = 0; i < 5; i++) ids.push((await submit()).id);
        const batch = await store.claimBatch('agent-1', LEASE_MS, 3);
        expect(batch.map((c) => c.id)).toEqual(ids.slice(0, 3));
        expect(new Set(batch.map((c) => c.leaseId)).size).toBe(3);
        expect(batch.every((c) => c.status === 'RUNNING' && c.agentId === 'agent-1')).toBe(true);
        expect((await store.claimBatch('agent-2', LEASE_MS, 10)).map((c) => c.id)).toEqual(ids.slice(3));
        expect(await store.claimBatch('agent-3', LEASE_MS, 10)).toEqual([]);
      });

      test('claimEach serves requests in order in one transaction; after a route runs dry its later requests get nothing', async () => {
        const ids: string[] = [];
        for (let i = 0; i < 5; i++) ids.push((await submit()).id);
        const answers = await store.claimEach(
          [
            { agentId: 'agent-1', max: 2 },
            { agentId: 'agent-2', max: 1 },
            { agentId: 'agent-3', max: 5 },
            { agentId: 'agent-4', max: 1 },
          ],
          LEASE_MS,
        );
        // agent-3 asked for 5 and got the last 2: the queue is empty, agent-4 gets nothing.
        expect(answers.map((commands) => commands.map((c) => c.id))).toEqual([ids.slice(0, 2), ids.slice(2, 3), ids.slice(3), []]);
        expect(answers.flat().map((c) => c.agentId)).toEqual(['agent-1', 'agent-1', 'agent-2', 'agent-3', 'agent-3']);
        expect(await store.claimEach([{ agentId: 'agent-5', max: 1 }], LEASE_MS)).toEqual([[]]);
      });

      test('release gives a claim back untouched: same place in the queue, attempt not counted', async () => {
        const a = await submit();
        clock.advance(10);
        const b = await submit();
        clock.advance(10);
        const claimed = await claim();
        expect(claimed.id).toBe(a.id);
        clock.advance(10);
        await store.release(claimed.id, claimed.leaseId);
        expect(await get(a.id)).toMatchObject({ status: 'PENDING', attempts: 0, leaseExpiresAt: null });
        expect((await claim()).id).toBe(a.id);
        expect((await claim()).id).toBe(b.id);
      });

      test('a claim given back after its cancel was asked for ends FAILED canceled, never to be claimed again', async () => {
        const c = await submit(delay(10, { concurrencyKey: 'k', concurrencyLimit: 1 }));
        const next = await submit(delay(10, { concurrencyKey: 'k', concurrencyLimit: 1 }));
        const claimed = await claim();
        expect(claimed.id).toBe(c.id);
        expect(await store.cancel(c.id)).toMatchObject({ status: 'RUNNING', cancelRequested: true });
        const before = await store.lastEventSeq();
        clock.advance(5);
        await store.release(claimed.id, claimed.leaseId);
        expect(await get(c.id)).toMatchObject({ status: 'FAILED', error: 'canceled', finishedAt: at(clock.now()), leaseExpiresAt: null });
        const events = await store.eventsSince(before, 10);
        expect(events.map((e) => [e.transition, e.command.id, e.command.status])).toEqual([['cancel', c.id, 'FAILED']]);
        // Its key's slot went on: the next command of the key is claimable, and only it.
        expect((await claim()).id).toBe(next.id);
        expect((await store.countByStatus()).FAILED).toBe(1);
      });

      test('release with another lease id changes nothing', async () => {
        const c = await submit();
        await claim();
        const before = await get(c.id);
        await store.release(c.id, 'not-the-lease');
        expect(await get(c.id)).toEqual(before);
      });
    });

    describe('report', () => {
      test('the lease holder completes the command', async () => {
        await submit();
        const c = await claim();
        clock.advance(100);
        const { command, replayed } = await store.report(c.id, {
          agentId: 'agent-1',
          leaseId: c.leaseId,
          status: 'COMPLETED',
          result: { ok: true, tookMs: 10 },
        });
        expect(replayed).toBe(false);
        expect(command).toMatchObject({
          status: 'COMPLETED',
          result: { ok: true, tookMs: 10 },
          error: null,
          leaseExpiresAt: null,
          finishedAt: at(clock.now()),
        });
        expect(await get(c.id)).toEqual(command);
      });

      test('the original body { result, agentId }: COMPLETED, checked by agent id alone', async () => {
        await submit();
        const c = await claim();
        const { command } = await store.report(c.id, { agentId: 'agent-1', result: { ok: true } });
        expect(command).toMatchObject({ status: 'COMPLETED', result: { ok: true } });
      });

      test('a report by an agent that does not hold the lease is a 409 and changes nothing', async () => {
        await submit();
        const c = await claim('agent-1');
        const before = await get(c.id);
        const seq = await store.lastEventSeq();
        await rejectsWith(store.report(c.id, { agentId: 'agent-2', result: { ok: true } }), 409);
        await rejectsWith(store.report(c.id, { agentId: 'agent-2', leaseId: c.leaseId, result: {} }), 409);
        await rejectsWith(store.report(c.id, { agentId: 'agent-1', leaseId: 'other-lease', result: {} }), 409);
        expect(await get(c.id)).toEqual(before);
        expect(await store.lastEventSeq()).toBe(seq);
      });

      test('a report for a command nobody claimed is a 409; for an unknown id a 404', async () => {
        const c = await submit();
        await rejectsWith(store.report(c.id, { agentId: 'agent-1', result: {} }), 409);
        await rejectsWith(store.report('no-such-command', { agentId: 'agent-1', result: {} }), 404);
      });

      test('the same report twice: replayed the second time, nothing changes', async () => {
        await submit();
        const c = await claim();
        const body = { agentId: 'agent-1', leaseId: c.leaseId, status: 'COMPLETED' as const, result: { n: 1 } };
        const first = await store.report(c.id, body);
        const seq = await store.lastEventSeq();
        clock.advance(1000);
        const second = await store.report(c.id, { ...body, result: { n: 1 } });
        expect(second).toEqual({ command: first.command, replayed: true });
        expect(await get(c.id)).toEqual(first.command);
        expect(await store.lastEventSeq()).toBe(seq);
      });

      test('a different report after COMPLETED is a 409 and the first outcome stays', async () => {
        await submit();
        const c = await claim();
        const first = await store.report(c.id, { agentId: 'agent-1', leaseId: c.leaseId, result: { n: 1 } });
        const message = await rejectsWith(
          store.report(c.id, { agentId: 'agent-1', leaseId: c.leaseId, status: 'FAILED', error: 'boom' }),
          409,
        );
        expect(message).toMatch(/COMPLETED/);
        expect(await get(c.id)).toEqual(first.command);
      });

      test('a non-retryable failure is FAILED at once, with its error and result', async () => {
        await submit(delay(10, { maxAttempts: 5 }));
        const c = await claim();
        const { command } = await store.report(c.id, {
          agentId: 'agent-1',
          leaseId: c.leaseId,
          status: 'FAILED',
          error: 'HTTP 404',
          result: { status: 404 },
          retryable: false,
        });
        expect(command).toMatchObject({ status: 'FAILED', error: 'HTTP 404', result: { status: 404 }, attempts: 1 });
        expect(command.finishedAt).not.toBeNull();
        expect(await get(c.id), 'the answer is what was stored').toEqual(command);
      });

      test('a retryable failure with attempts left goes back to PENDING, error set and attempts kept', async () => {
        await submit(delay(10, { maxAttempts: 2 }));
        const c1 = await claim();
        const { command } = await failRetryable(c1);
        expect(command).toMatchObject({ status: 'PENDING', error: 'HTTP 503', attempts: 1, finishedAt: null, leaseExpiresAt: null });
        expect(await get(c1.id), 'the answer is what was stored').toEqual(command);
        clock.advance(1000);
        const c2 = await claim('agent-2');
        expect(c2.attempts).toBe(2);
        const last = await failRetryable(c2, 'agent-2');
        expect(last.command).toMatchObject({ status: 'FAILED', error: 'HTTP 503', attempts: 2 });
      });

      test('a late report from the lease holder after its lease ran out is taken while nobody else claimed', async () => {
        await submit();
        const c = await claim('agent-1');
        clock.advance(LEASE_MS);
        expect((await store.requeueExpired()).map((x) => x.id)).toEqual([c.id]);
        expect((await get(c.id)).status).toBe('PENDING');
        const { command } = await store.report(c.id, { agentId: 'agent-1', leaseId: c.leaseId, result: { late: true } });
        expect(command).toMatchObject({ status: 'COMPLETED', result: { late: true } });
        expect(await get(c.id), 'the answer is what was stored').toEqual(command);
        expect(await store.claim('agent-2', LEASE_MS)).toBeUndefined();
      });

      test('FAILED is final: a late report after the expiry spent the attempts is a 409 and changes nothing', async () => {
        await submit(delay(10, { maxAttempts: 1 }));
        const c = await claim('agent-1');
        clock.advance(LEASE_MS);
        await store.requeueExpired();
        const failed = await get(c.id);
        expect(failed).toMatchObject({ status: 'FAILED', error: 'lease expired' });
        const last = await store.lastEventSeq();
        const message = await rejectsWith(
          store.report(c.id, { agentId: 'agent-1', leaseId: c.leaseId, result: { late: true } }),
          409,
        );
        expect(message).toMatch(/already FAILED/);
        await rejectsWith(store.report(c.id, { agentId: 'agent-1', status: 'FAILED', error: 'late' }), 409);
        expect(await get(c.id), 'nothing changed').toEqual(failed);
        expect(await store.lastEventSeq(), 'nothing logged').toBe(last);
      });

      test('COMPLETED is final: another outcome is a 409, the same report replayed is a 200', async () => {
        await submit();
        const c = await claim('agent-1');
        const first = { agentId: 'agent-1', leaseId: c.leaseId, result: { n: 1 } };
        const { command } = await store.report(c.id, first);
        expect(command.status).toBe('COMPLETED');
        expect(await store.report(c.id, first)).toEqual({ command, replayed: true });
        await rejectsWith(store.report(c.id, { ...first, result: { n: 2 } }), 409);
        await rejectsWith(store.report(c.id, { agentId: 'agent-1', leaseId: c.leaseId, status: 'FAILED', error: 'x' }), 409);
        expect(await get(c.id)).toEqual(command);
      });

      test('a FAILED report replayed answers 200 and stays FAILED; another outcome is a 409', async () => {
        await submit();
        const c = await claim('agent-1');
        const failure = { agentId: 'agent-1', leaseId: c.leaseId, status: 'FAILED' as const, error: 'HTTP 404' };
        const { command } = await store.report(c.id, failure);
        expect(command).toMatchObject({ status: 'FAILED', error: 'HTTP 404' });
        expect(await store.report(c.id, failure)).toEqual({ command, replayed: true });
        await rejectsWith(store.report(c.id, { agentId: 'agent-1', leaseId: c.leaseId, result: { ok: true } }), 409);
        expect(await get(c.id)).toEqual(command);
      });

      test('a late report is a 409 once another agent claimed the command', async () => {
        await submit();
        const c = await claim('agent-1');
        clock.advance(LEASE_MS);
        await store.requeueExpired();
        clock.advance(60_000);
        const c2 = await claim('agent-2');
        expect(c2.id).toBe(c.id);
        await rejectsWith(store.report(c.id, { agentId: 'agent-1', leaseId: c.leaseId, result: { late: true } }), 409);
        await rejectsWith(store.report(c.id, { agentId: 'agent-1', result: { late: true } }), 409);
        expect(await get(c.id)).toMatchObject({ status: 'RUNNING', agentId: 'agent-2' });
        const { command } = await store.report(c.id, { agentId: 'agent-2', leaseId: c2.leaseId, result: { n: 2 } });
        expect(command).toMatchObject({ status: 'COMPLETED', result: { n: 2 }, attempts: 2 });
      });
    });

    describe('heartbeat', () => {
      test('extends the lease to leaseMs from now and stores progress', async () => {
        await submit();
        const c = await claim('agent-1');
        clock.advance(20_000);
        const answer = await store.heartbeat(
          c.id,
          { agentId: 'agent-1', leaseId: c.leaseId, progress: { percent: 40, message: 'halfway-ish' } },
          LEASE_MS,
        );
        expect(answer).toEqual({ leaseExpiresAt: at(clock.now() + LEASE_MS), cancelRequested: false });
        expect(await get(c.id)).toMatchObject({
          leaseExpiresAt: at(clock.now() + LEASE_MS),
          progress: { percent: 40, message: 'halfway-ish' },
        });
        // A heartbeat without progress keeps the last one.
        await store.heartbeat(c.id, { agentId: 'agent-1', leaseId: c.leaseId }, LEASE_MS);
        expect((await get(c.id)).progress).toEqual({ percent: 40, message: 'halfway-ish' });
      });

      test('a renewed lease does not expire at its first deadline', async () => {
        await submit();
        const c = await claim();
        clock.advance(LEASE_MS - 1);
        await store.heartbeat(c.id, { agentId: 'agent-1', leaseId: c.leaseId }, LEASE_MS);
        clock.advance(LEASE_MS - 1);
        expect(await store.requeueExpired()).toEqual([]);
        expect((await get(c.id)).status).toBe('RUNNING');
        clock.advance(1);
        expect(await store.requeueExpired()).toHaveLength(1);
      });

      test('409 once the lease is lost, for another agent or lease; 404 for an unknown id', async () => {
        await submit();
        const c = await claim('agent-1');
        await rejectsWith(store.heartbeat(c.id, { agentId: 'agent-2', leaseId: c.leaseId }, LEASE_MS), 409);
        await rejectsWith(store.heartbeat(c.id, { agentId: 'agent-1', leaseId: 'other' }, LEASE_MS), 409);
        clock.advance(LEASE_MS);
        await store.requeueExpired();
        const message = await rejectsWith(
          store.heartbeat(c.id, { agentId: 'agent-1', leaseId: c.leaseId }, LEASE_MS),
          409,
        );
        expect(message).toMatch(/lease/);
        clock.advance(60_000);
        await claim('agent-2');
        await rejectsWith(store.heartbeat(c.id, { agentId: 'agent-1', leaseId: c.leaseId }, LEASE_MS), 409);
        await rejectsWith(store.heartbeat('no-such-command', { agentId: 'agent-1', leaseId: 'x' }, LEASE_MS), 404);
      });

      test('409 after the command finished', async () => {
        await submit();
        const c = await claim();
        await store.report(c.id, { agentId: 'agent-1', leaseId: c.leaseId, result: {} });
        await rejectsWith(store.heartbeat(c.id, { agentId: 'agent-1', leaseId: c.leaseId }, LEASE_MS), 409);
      });
    });

    describe('lease expiry', () => {
      test('nothing expires before leaseExpiresAt; then the command is PENDING again, attempts kept', async () => {
        const c = await submit(delay(10, { maxAttempts: 3 }));
        await claim('agent-1', 1000);
        clock.advance(999);
        expect(await store.requeueExpired()).toEqual([]);
        clock.advance(1);
        const [expired] = await store.requeueExpired();
        expect(expired).toMatchObject({
          id: c.id,
          status: 'PENDING',
          error: 'lease expired',
          attempts: 1,
          leaseExpiresAt: null,
          finishedAt: null,
        });
        expect(await store.requeueExpired()).toEqual([]);
        const available = Date.parse(expired?.availableAt ?? '');
        clock.advance(available - clock.now());
        expect((await claim('agent-2')).attempts).toBe(2);
      });

      test('with its attempts spent an expired command is FAILED "lease expired"', async () => {
        await submit(delay(10, { maxAttempts: 1 }));
        const c = await claim('agent-1', 1000);
        clock.advance(1000);
        const [expired] = await store.requeueExpired();
        expect(expired).toMatchObject({ id: c.id, status: 'FAILED', error: 'lease expired', attempts: 1 });
        expect(expired?.finishedAt).toBe(at(clock.now()));
        clock.advance(120_000);
        expect(await store.claim('agent-2', LEASE_MS)).toBeUndefined();
      });

      test('an expired command whose cancel was requested is FAILED "canceled"', async () => {
        await submit();
        const c = await claim('agent-1', 1000);
        await store.cancel(c.id);
        clock.advance(1000);
        const [expired] = await store.requeueExpired();
        expect(expired).toMatchObject({ status: 'FAILED', error: 'canceled' });
      });

      test('nextWakeAt names the earliest lease expiry and the earliest end of a backoff', async () => {
        expect(await store.nextWakeAt()).toEqual({});
        await submit();
        await submit();
        const t0 = clock.now();
        const a = await claim('agent-1', 5000);
        await claim('agent-2', 3000);
        expect(await store.nextWakeAt()).toEqual({ leaseExpiresAt: t0 + 3000 });
        await failRetryable(a);
        expect(await store.nextWakeAt()).toEqual({ leaseExpiresAt: t0 + 3000, availableAt: t0 + 1000 });
      });
    });

    describe('retry backoff', () => {
      /** Fails a command retryably until its attempts are spent; answers each backoff in ms. */
      async function backoffs(attempts: number): Promise<number[]> {
        await submit(delay(10, { maxAttempts: attempts + 1 }));
        const delays: number[] = [];
        for (let i = 0; i < attempts; i++) {
          const { command } = await failRetryable(await claim());
          const wait = Date.parse(command.availableAt) - clock.now();
          delays.push(wait);
          clock.advance(wait - 1);
          expect(await store.claim('agent-1', LEASE_MS), 'claimable before its backoff ended').toBeUndefined();
          clock.advance(1);
        }
        // Finish it, so the next command submitted is the next one claimed.
        const last = await claim();
        await store.report(last.id, { agentId: 'agent-1', leaseId: last.leaseId, result: {} });
        return delays;
      }

      test('1 s, 2 s, 4 s … doubling, capped at 60 s', async () => {
        expect(await backoffs(9)).toEqual([1000, 2000, 4000, 8000, 16_000, 32_000, 60_000, 60_000, 60_000]);
      });

      test('jitter keeps each delay within ±25 % and never above the 60 s cap', async () => {
        jitter = 0;
        expect((await backoffs(1))[0]).toBe(750);
        jitter = 0.999_999;
        const [second] = await backoffs(1);
        expect(second).toBeGreaterThan(1240);
        expect(second).toBeLessThanOrEqual(1250);
        const capped = await backoffs(8);
        expect(Math.max(...capped)).toBeLessThanOrEqual(60_000);
      });

      test('a lease expiry with attempts left also waits out a backoff', async () => {
        await submit();
        await claim('agent-1', 1000);
        clock.advance(1000);
        const [expired] = await store.requeueExpired();
        expect(Date.parse(expired?.availableAt ?? '') - clock.now()).toBe(1000);
      });
    });

    describe('cancel', () => {
      test('a PENDING command is FAILED "canceled" at once and never claimed', async () => {
        const c = await submit();
        const canceled = await store.cancel(c.id);
        expect(canceled).toMatchObject({ status: 'FAILED', error: 'canceled' });
        expect(canceled.finishedAt).not.toBeNull();
        expect(await store.claim('agent-1', LEASE_MS)).toBeUndefined();
      });

      test('a RUNNING command stays RUNNING, its agent hears it at the next heartbeat and it is not retried', async () => {
        await submit(delay(10, { maxAttempts: 5 }));
        const c = await claim();
        const canceled = await store.cancel(c.id);
        expect(canceled).toMatchObject({ status: 'RUNNING', cancelRequested: true });
        // Asking twice is fine and changes nothing more.
        const seq = await store.lastEventSeq();
        expect(await store.cancel(c.id)).toEqual(canceled);
        expect(await store.lastEventSeq()).toBe(seq);
        const hb = await store.heartbeat(c.id, { agentId: 'agent-1', leaseId: c.leaseId }, LEASE_MS);
        expect(hb.cancelRequested).toBe(true);
        const { command } = await store.report(c.id, {
          agentId: 'agent-1',
          leaseId: c.leaseId,
          status: 'FAILED',
          error: 'canceled',
          retryable: true,
        });
        expect(command).toMatchObject({ status: 'FAILED', error: 'canceled' });
      });

      test('a finished command cannot be canceled (409); an unknown one is a 404', async () => {
        await submit();
        const c = await claim();
        await store.report(c.id, { agentId: 'agent-1', leaseId: c.leaseId, result: {} });
        expect(await rejectsWith(store.cancel(c.id), 409)).toMatch(/COMPLETED/);
        const f = await submit();
        await store.cancel(f.id);
        expect(await rejectsWith(store.cancel(f.id), 409)).toMatch(/FAILED/);
        await rejectsWith(store.cancel('no-such-command'), 404);
      });
    });

    describe('retry', () => {
      test('a FAILED command goes back to PENDING with a fresh attempt budget', async () => {
        await submit(delay(10, { maxAttempts: 1 }));
        const c = await claim();
        await store.report(c.id, { agentId: 'agent-1', leaseId: c.leaseId, status: 'FAILED', error: 'x', result: { a: 1 } });
        clock.advance(10);
        const retried = await store.retry(c.id);
        expect(retried).toMatchObject({
          status: 'PENDING',
          attempts: 0,
          maxAttempts: 1,
          error: null,
          result: null,
          finishedAt: null,
          availableAt: at(clock.now()),
        });
        const again = await claim('agent-2');
        expect(again).toMatchObject({ id: c.id, attempts: 1 });
        // The old lease holder can no longer report.
        await rejectsWith(store.report(c.id, { agentId: 'agent-1', leaseId: c.leaseId, result: {} }), 409);
      });

      test('only a FAILED command can be retried (409); an unknown one is a 404', async () => {
        const pending = await submit();
        expect(await rejectsWith(store.retry(pending.id), 409)).toMatch(/PENDING/);
        const c = await claim();
        await rejectsWith(store.retry(c.id), 409);
        await store.report(c.id, { agentId: 'agent-1', leaseId: c.leaseId, result: {} });
        await rejectsWith(store.retry(c.id), 409);
        await rejectsWith(store.retry('no-such-command'), 404);
      });
    });

    describe('bulk retry and cancel', () => {
      const all = (max = 100) => ({ afterSeq: 0, upToSeq: Number.MAX_SAFE_INTEGER, max });
      const fail = async (agentId: string) => {
        const c = await claim(agentId);
        await store.report(c.id, { agentId, leaseId: c.leaseId, status: 'FAILED', error: 'x' });
        return c;
      };

      test('retryFailed retries only FAILED commands of the filter, each as retry does, one event each', async () => {
        await submit(delay(10, { maxAttempts: 1 }));
        await submit(delay(10, { maxAttempts: 1 }));
        await submit(httpGet);
        await submit(delay(10, { maxAttempts: 1 }));
        const a = await fail('agent-1');
        const b = await fail('agent-2');
        const h = await fail('agent-1'); // the HTTP_GET_JSON: another type
        const pending = await submit();
        const before = await store.lastEventSeq();
        clock.advance(5);
        const step = await store.retryFailed({ type: 'DELAY', agentId: 'agent-1' }, all());
        expect(step.changed).toBe(1);
        expect(await get(a.id)).toMatchObject({ status: 'PENDING', attempts: 0, error: null, availableAt: at(clock.now()) });
        expect((await get(b.id)).status).toBe('FAILED');
        expect((await get(h.id)).status).toBe('FAILED');
        expect((await get(pending.id)).status).toBe('PENDING');
        const events = await store.eventsSince(before, 10);
        expect(events.map((e) => [e.transition, e.command.id])).toEqual([['retry', a.id]]);
        expect((await store.countByStatus()).FAILED).toBe(2);
      });

      test('the queue filter touches only that queue, with the other filters and without them', async () => {
        const reports = [await submit(delay(10, { queue: 'reports' })), await submit({ ...httpGet, queue: 'reports' })];
        const other = await submit(delay(10, { queue: 'mail' }));
        const byDefault = await submit();
        expect((await store.cancelPending({ queue: 'reports', type: 'DELAY' }, all())).changed).toBe(1);
        expect((await get(reports[0]!.id)).status).toBe('FAILED');
        expect((await get(reports[1]!.id)).status).toBe('PENDING');
        expect((await store.cancelPending({ queue: 'reports' }, all())).changed).toBe(1);
        expect((await get(reports[1]!.id)).status).toBe('FAILED');
        expect((await store.retryFailed({ queue: 'mail' }, all())).changed).toBe(0);
        expect((await store.retryFailed({ queue: 'reports' }, all())).changed).toBe(2);
        expect([await get(other.id), await get(byDefault.id)].map((c) => c.status)).toEqual(['PENDING', 'PENDING']);
        expect((await store.cancelPending({ queue: 'default' }, all())).changed).toBe(1);
        expect((await get(byDefault.id)).status).toBe('FAILED');
        expect((await get(other.id)).status).toBe('PENDING');
      });

      test('cancelPending fails PENDING commands as cancel does, and leaves RUNNING ones alone', async () => {
        const running = await submit();
        await claim();
        const p1 = await submit(httpGet);
        const p2 = await submit();
        const step = await store.cancelPending({}, all());
        expect(step).toEqual({ changed: 2, lastSeq: expect.any(Number) });
        expect(await get(p1.id)).toMatchObject({ status: 'FAILED', error: 'canceled' });
        expect(await get(p2.id)).toMatchObject({ status: 'FAILED', error: 'canceled' });
        expect((await get(running.id)).status).toBe('RUNNING');
        expect((await store.countByStatus()).PENDING).toBe(0);
      });

      test('batches walk forward by seq: at most max per call, none after upToSeq, createdBefore excludes later ones', async () => {
        const early = [await submit(), await submit(), await submit()];
        clock.advance(1000);
        const late = await submit();
        const upToSeq = await store.lastCommandSeq();
        const beyond = await submit();
        const first = await store.cancelPending({}, { afterSeq: 0, upToSeq, max: 2 });
        expect(first.changed).toBe(2);
        expect((await get(early[2]!.id)).status).toBe('PENDING');
        const createdBefore = Date.parse(late.createdAt);
        const second = await store.cancelPending({ createdBefore }, { afterSeq: first.lastSeq!, upToSeq, max: 2 });
        expect(second.changed).toBe(1);
        expect((await get(early[2]!.id)).status).toBe('FAILED');
        expect((await get(late.id)).status).toBe('PENDING');
        const third = await store.cancelPending({}, { afterSeq: second.lastSeq!, upToSeq, max: 2 });
        expect(third.changed).toBe(1);
        expect((await get(late.id)).status).toBe('FAILED');
        expect(await store.cancelPending({}, { afterSeq: third.lastSeq!, upToSeq, max: 2 })).toEqual({ changed: 0 });
        expect((await get(beyond.id)).status).toBe('PENDING');
      });
    });

    describe('list', () => {
      test('newest first, with status, type and agentId filters and a limit', async () => {
        const a = await submit();
        const b = await submit(httpGet);
        const c = await submit();
        await claim('agent-9'); // a
        const all = await store.list({ limit: 100 });
        expect(all.commands.map((x) => x.id)).toEqual([c.id, b.id, a.id]);
        expect(all.nextBeforeSeq).toBeUndefined();
        expect((await store.list({ limit: 100, status: 'RUNNING' })).commands.map((x) => x.id)).toEqual([a.id]);
        expect((await store.list({ limit: 100, type: 'HTTP_GET_JSON' })).commands.map((x) => x.id)).toEqual([b.id]);
        expect((await store.list({ limit: 100, agentId: 'agent-9' })).commands.map((x) => x.id)).toEqual([a.id]);
        expect((await store.list({ limit: 100, status: 'PENDING', type: 'DELAY' })).commands.map((x) => x.id)).toEqual([
          c.id,
        ]);
        expect((await store.list({ limit: 100, status: 'COMPLETED' })).commands).toEqual([]);
      });

      test('paging is stable under inserts: every command once, none skipped, new ones not mixed in', async () => {
        const older: string[] = [];
        for (let i = 0; i < 7; i++) older.push((await submit()).id);
        const seen: string[] = [];
        let page = await store.list({ limit: 3 });
        seen.push(...page.commands.map((c) => c.id));
        while (page.nextBeforeSeq !== undefined) {
          for (let i = 0; i < 2; i++) await submit(); // new commands arrive between pages
          page = await store.list({ limit: 3, beforeSeq: page.nextBeforeSeq });
          seen.push(...page.commands.map((c) => c.id));
        }
        expect(seen).toEqual([...older].reverse());
      });

      test('a page that ends exactly at the last command has no next page', async () => {
        await submit();
        await submit();
        const page = await store.list({ limit: 2 });
        expect(page.commands).toHaveLength(2);
        expect(page.nextBeforeSeq).toBeUndefined();
      });
    });

    describe('event log', () => {
      test('each change writes one event, in order, holding the command as it then was', async () => {
        const start = await store.lastEventSeq();
        const heard: StoredEvent[] = [];
        const listener = (event: StoredEvent) => heard.push(event);
        store.events.on('event', listener);
        try {
          const c = await submit();
          const after: Command[] = [await get(c.id)];
          const claimed = await claim();
          after.push(await get(c.id));
          await store.heartbeat(c.id, { agentId: 'agent-1', leaseId: claimed.leaseId, progress: { percent: 50 } }, LEASE_MS);
          after.push(await get(c.id));
          await store.heartbeat(c.id, { agentId: 'agent-1', leaseId: claimed.leaseId }, LEASE_MS); // no progress, no event
          await store.report(c.id, { agentId: 'agent-1', leaseId: claimed.leaseId, result: { ok: true } });
          after.push(await get(c.id));
          await store.retry(c.id).catch(() => undefined); // a 409 writes nothing

          const events = await eventsAfter(start);
          expect(events.map((e) => [e.kind, e.transition])).toEqual([
            ['status', 'submit'],
            ['status', 'claim'],
            ['progress', 'progress'],
            ['status', 'report'],
          ]);
          for (let i = 1; i < events.length; i++) expect(events[i]!.seq).toBeGreaterThan(events[i - 1]!.seq);
          expect(events.map((e) => e.command)).toEqual(after);
          expect(await store.lastEventSeq()).toBe(events.at(-1)?.seq);
          // Listeners hear the same events, after they are stored.
          expect(heard).toEqual(events);
        } finally {
          store.events.off('event', listener);
        }
      });

      test('cancel, retry, expiry and release are logged too', async () => {
        const a = await submit();
        const b = await submit();
        const c = await claim();
        await store.release(c.id, c.leaseId);
        const c2 = await claim();
        clock.advance(LEASE_MS);
        await store.requeueExpired();
        await store.cancel(a.id);
        await store.retry(a.id);
        await store.cancel(b.id);
        const events = await eventsAfter(0);
        expect(events.map((e) => `${e.transition}:${e.command.status}`)).toEqual([
          'submit:PENDING',
          'submit:PENDING',
          'claim:RUNNING',
          'release:PENDING',
          'claim:RUNNING',
          'expire:PENDING',
          'cancel:FAILED',
          'retry:PENDING',
          'cancel:FAILED',
        ]);
        expect(c2.id).toBe(a.id);
      });

      test('eventsSince pages by seq and filters by command and status', async () => {
        const a = await submit();
        const b = await submit();
        await claim();
        const all = await eventsAfter(0);
        expect(all).toHaveLength(3);
        expect(await store.eventsSince(all[0]!.seq, 1)).toEqual([all[1]]);
        expect((await store.eventsSince(0, 100, { commandId: a.id })).map((e) => e.transition)).toEqual(['submit', 'claim']);
        expect((await store.eventsSince(0, 100, { commandId: b.id })).map((e) => e.transition)).toEqual(['submit']);
        expect((await store.eventsSince(0, 100, { status: 'RUNNING' })).map((e) => e.command.id)).toEqual([a.id]);
        expect(await store.eventsSince(all[2]!.seq, 100)).toEqual([]);
        expect((await store.lastEventFor(a.id))?.transition).toBe('claim');
        expect(await store.lastEventFor('no-such-command')).toBeUndefined();
      });
    });

    test('countByStatus counts every status, zeros included', async () => {
      expect(await store.countByStatus()).toEqual({ PENDING: 0, RUNNING: 0, COMPLETED: 0, FAILED: 0 });
      for (let i = 0; i < 5; i++) await submit();
      const done = await claim();
      await store.report(done.id, { agentId: 'agent-1', leaseId: done.leaseId, result: {} });
      await claim();
      await store.cancel((await claim()).id); // RUNNING with cancel requested
      const failed = await claim();
      await store.report(failed.id, { agentId: 'agent-1', leaseId: failed.leaseId, status: 'FAILED', error: 'x' });
      expect(await store.countByStatus()).toEqual({ PENDING: 1, RUNNING: 2, COMPLETED: 1, FAILED: 1 });
    });

    test('countByStatus stays equal to the stored commands across every transition and retention', async () => {
      /** The truth, counted from the commands themselves (list reads the rows, not the counts). */
      const counted = async () => {
        const all = (await store.list({ limit: 1000 })).commands;
        const counts = { PENDING: 0, RUNNING: 0, COMPLETED: 0, FAILED: 0 };
        for (const c of all) counts[c.status]++;
        return counts;
      };
      const check = async (step: string, expected: Record<string, number>) => {
        expect(await counted(), `${step}: the rows`).toEqual(expected);
        expect(await store.countByStatus(), `${step}: the counts`).toEqual(expected);
      };
      await store.submitBatch([delay(), delay(), delay(), delay(), delay(10, { maxAttempts: 1 })]);
      await submit();
      await check('submit', { PENDING: 6, RUNNING: 0, COMPLETED: 0, FAILED: 0 });
      const [a, b, c, d] = await store.claimBatch('agent-1', LEASE_MS, 4);
      if (!a || !b || !c || !d) throw new Error('claimed fewer than 4');
      await check('claim', { PENDING: 2, RUNNING: 4, COMPLETED: 0, FAILED: 0 });
      await store.report(a.id, { agentId: 'agent-1', leaseId: a.leaseId, result: {} });
      await store.report(a.id, { agentId: 'agent-1', leaseId: a.leaseId, result: {} }); // replay: no change
      await rejectsWith(store.report(a.id, { agentId: 'agent-1', leaseId: a.leaseId, result: { other: 1 } }), 409);
      await failRetryable(b);
      await store.report(c.id, { agentId: 'agent-1', leaseId: c.leaseId, status: 'FAILED', error: 'x' });
      await check('report', { PENDING: 3, RUNNING: 1, COMPLETED: 1, FAILED: 1 });
      const pending = (await store.list({ status: 'PENDING', limit: 10 })).commands.at(-1);
      if (!pending) throw new Error('no PENDING command');
      await store.cancel(pending.id);
      await store.cancel(d.id); // RUNNING: only requested
      await check('cancel', { PENDING: 2, RUNNING: 1, COMPLETED: 1, FAILED: 2 });
      await store.retry(c.id);
      await check('retry', { PENDING: 3, RUNNING: 1, COMPLETED: 1, FAILED: 1 });
      await store.release(d.id, d.leaseId); // its cancel was requested: it ends FAILED canceled
      await check('release', { PENDING: 3, RUNNING: 0, COMPLETED: 1, FAILED: 2 });
      clock.advance(120_000); // every backoff over
      const claimed = await store.claimBatch('agent-2', LEASE_MS, 10);
      expect(claimed).toHaveLength(3);
      clock.advance(LEASE_MS);
      // The maxAttempts: 1 command fails; the other two go back to PENDING.
      await store.requeueExpired();
      await check('expire', { PENDING: 2, RUNNING: 0, COMPLETED: 1, FAILED: 3 });
      clock.advance(1);
      expect(await store.deleteFinishedBefore(clock.now(), 100)).toBe(4);
      await check('retention', { PENDING: 2, RUNNING: 0, COMPLETED: 0, FAILED: 0 });
    });

    describe('retention (SPEC §7)', () => {
      /** A command that ends `status` at the current time of the clock. */
      const finish = async (status: 'COMPLETED' | 'FAILED', key?: string) => {
        const { command } = await store.submit(delay(), key);
        const c = await claim();
        expect(c.id).toBe(command.id);
        const body = status === 'COMPLETED' ? { result: { ok: true } } : { status, error: 'x' };
        return (await store.report(c.id, { agentId: 'agent-1', leaseId: c.leaseId, ...body })).command;
      };

      test('deletes only COMPLETED and FAILED commands finished before the limit, oldest first; never PENDING or RUNNING', async () => {
        const old = [await finish('COMPLETED'), await finish('FAILED')];
        const canceled = await submit();
        await store.cancel(canceled.id); // FAILED "canceled", never run
        const running = await submit(delay(10, { maxAttempts: 5 }));
        const r = await claim();
        expect(r.id).toBe(running.id);
        const pendingAgain = await submit(delay(10, { maxAttempts: 5 }));
        await failRetryable(await claim()); // PENDING, with an error and an attempt spent
        clock.advance(500); // less than its 1 s backoff: the next claims do not take it
        const limit = clock.now();
        const young = [await finish('COMPLETED'), await finish('FAILED')];
        const waiting = await submit();
        expect(await store.oldestFinishedAt()).toBe(Date.parse(old[0]?.finishedAt ?? ''));

        expect(await store.deleteFinishedBefore(limit, 2), 'at most max, the oldest first').toBe(2);
        for (const c of old) expect(await store.get(c.id)).toBeUndefined();
        expect(await store.get(canceled.id)).toBeDefined();
        expect(await store.deleteFinishedBefore(limit, 100)).toBe(1);
        expect(await store.get(canceled.id)).toBeUndefined();
        expect(await store.deleteFinishedBefore(limit, 100), 'nothing else is due').toBe(0);
        for (const c of [...young, running, pendingAgain, waiting]) expect(await store.get(c.id), c.id).toBeDefined();

        clock.advance(365 * 86_400_000);
        expect(await store.deleteFinishedBefore(clock.now(), 100), 'the young ones, in their turn').toBe(2);
        expect(await store.oldestFinishedAt()).toBeUndefined();
        const left = (await store.list({ limit: 100 })).commands.map((c) => [c.id, c.status]);
        expect(left.sort()).toEqual(
          [[running.id, 'RUNNING'], [pendingAgain.id, 'PENDING'], [waiting.id, 'PENDING']].sort(),
        );
        // The leased command is still the holder's to report.
        const { command } = await store.report(r.id, { agentId: 'agent-1', leaseId: r.leaseId, result: {} });
        expect(command.status).toBe('COMPLETED');
      });

      test('a retried command is PENDING again and not deleted for its old finish', async () => {
        const failed = await finish('FAILED');
        await store.retry(failed.id);
        clock.advance(60_000);
        expect(await store.deleteFinishedBefore(clock.now(), 100)).toBe(0);
        expect(await get(failed.id)).toMatchObject({ status: 'PENDING', finishedAt: null });
      });

      test('the idempotency key goes with its command: after deletion the same key creates a new command', async () => {
        const first = await finish('COMPLETED', 'key-1');
        expect(await store.submit(delay(), 'key-1')).toEqual({ command: first, replayed: true });
        clock.advance(1);
        expect(await store.deleteFinishedBefore(clock.now(), 100)).toBe(1);
        const again = await store.submit(delay(), 'key-1');
        expect(again.replayed).toBe(false);
        expect(again.command.id).not.toBe(first.id);
        expect(again.command.status).toBe('PENDING');
        // A different body with that key is now simply a new key's replay check against the new command.
        await rejectsWith(store.submit(delay(99), 'key-1'), 422);
      });
    });

    test('ping answers while the store is open', async () => {
      await expect(store.ping()).resolves.toBeUndefined();
    });
  });
}
