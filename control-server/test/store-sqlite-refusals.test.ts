/**
 * What the SQLite store says when it refuses a change: the status (404, 409, 422) and the
 * message a client reads in the response body, which must name the command and what stood in
 * the way. Also the rows a submit builds at the edges: a runAt already past, a report without
 * an error text, a queue filter on list.
 */
import { describe, expect, test } from 'vitest';
import type { ClaimedCommand } from '@agent-executor/common';
import type { HttpError } from '../src/errors.js';
import { delay, useSqliteStore } from './sqlite-test-store.js';

const t = useSqliteStore('store-refusals');
const LEASE_MS = 30_000;

/** The status and message `promise` is refused with. */
async function refusal(promise: Promise<unknown>): Promise<{ statusCode: number; message: string }> {
  const error = await promise.then(
    () => undefined,
    (err: unknown) => err as HttpError,
  );
  if (!error) throw new Error('expected a refusal');
  return { statusCode: error.statusCode, message: error.message };
}

const claim = async (agentId = 'a1'): Promise<ClaimedCommand> => {
  const claimed = await t.store.claim(agentId, LEASE_MS);
  if (!claimed) throw new Error('nothing to claim');
  return claimed;
};

describe('refusals name the command and the reason', () => {
  test('unknown command: 404 from report, heartbeat, cancel and retry', async () => {
    const notFound = { statusCode: 404, message: 'command nope not found' };
    expect(await refusal(t.store.report('nope', { agentId: 'a1', result: {} }))).toEqual(notFound);
    expect(await refusal(t.store.heartbeat('nope', { agentId: 'a1', leaseId: 'l' }, LEASE_MS))).toEqual(notFound);
    expect(await refusal(t.store.cancel('nope'))).toEqual(notFound);
    expect(await refusal(t.store.retry('nope'))).toEqual(notFound);
  });

  test('report: finished, leased to another agent, lease ended', async () => {
    const { command } = await t.store.submit(delay({ maxAttempts: 2 }));
    const first = await claim('a1');
    expect(await refusal(t.store.report(command.id, { agentId: 'a2', leaseId: first.leaseId, result: {} }))).toEqual({
      statusCode: 409,
      message: `command ${command.id} is leased to another agent`,
    });
    // a1's lease expires and a2 claims the command: a1's report names its ended lease.
    t.clock.advance(LEASE_MS);
    await t.store.requeueExpired();
    t.clock.advance(60_000);
    const second = await claim('a1');
    expect(await refusal(t.store.report(command.id, { agentId: 'a1', leaseId: first.leaseId, result: {} }))).toEqual({
      statusCode: 409,
      message: `the lease of a1 on command ${command.id} has ended`,
    });
    await t.store.report(command.id, { agentId: 'a1', leaseId: second.leaseId, result: {} });
    expect(await refusal(t.store.report(command.id, { agentId: 'a1', leaseId: second.leaseId, result: { other: 1 } }))).toEqual({
      statusCode: 409,
      message: `command ${command.id} is already COMPLETED`,
    });
    const { command: never } = await t.store.submit(delay());
    expect(await refusal(t.store.report(never.id, { agentId: 'a1', result: {} }))).toEqual({
      statusCode: 409,
      message: `command ${never.id} is leased to another agent`,
    });
  });

  test('heartbeat on a lost lease: 409 naming the command and the agent', async () => {
    const { command } = await t.store.submit(delay());
    const c = await claim('a1');
    expect(await refusal(t.store.heartbeat(command.id, { agentId: 'a2', leaseId: c.leaseId }, LEASE_MS))).toEqual({
      statusCode: 409,
      message: `lease lost: command ${command.id} is no longer leased to a2 under this lease`,
    });
  });

  test('cancel of a finished command and retry of one not FAILED: 409 naming its status', async () => {
    const { command } = await t.store.submit(delay());
    expect(await refusal(t.store.retry(command.id))).toEqual({
      statusCode: 409,
      message: `only a FAILED command can be retried; command ${command.id} is PENDING`,
    });
    const c = await claim();
    await t.store.report(c.id, { agentId: 'a1', leaseId: c.leaseId, result: {} });
    expect(await refusal(t.store.cancel(command.id))).toEqual({ statusCode: 409, message: `command ${command.id} is already COMPLETED` });
  });

  test('an Idempotency-Key reused with another body: 422', async () => {
    await t.store.submit(delay(), 'key-1');
    expect(await refusal(t.store.submit(delay({ priority: 1 }), 'key-1'))).toEqual({
      statusCode: 422,
      message: 'Idempotency-Key was already used with a different body',
    });
  });
});

describe('rows at the edges', () => {
  test('a runAt already past: available now, the runAt kept as given', async () => {
    const past = t.clock.now() - 60_000;
    const { command } = await t.store.submit(delay({ runAt: new Date(past).toISOString() }));
    expect(command).toMatchObject({ availableAt: new Date(t.clock.now()).toISOString(), runAt: new Date(past).toISOString() });
    expect(await t.store.pendingState(command.id)).toMatchObject({ state: 'ready' });
  });

  test("a FAILED report without an error text stores 'failed'; a COMPLETED one stores no error", async () => {
    await t.store.submit(delay());
    await t.store.submit(delay());
    const a = await claim();
    const b = await claim();
    expect((await t.store.report(a.id, { agentId: 'a1', leaseId: a.leaseId, status: 'FAILED' })).command).toMatchObject({
      status: 'FAILED',
      error: 'failed',
      result: null,
    });
    expect((await t.store.report(b.id, { agentId: 'a1', leaseId: b.leaseId, status: 'COMPLETED', error: 'ignored', result: 7 })).command).toMatchObject({
      status: 'COMPLETED',
      error: null,
      result: 7,
    });
  });

  test('list by queue', async () => {
    const gpu = (await t.store.submit(delay({ queue: 'gpu' }))).command;
    await t.store.submit(delay());
    expect((await t.store.list({ limit: 10, queue: 'gpu' })).commands.map((c) => c.id)).toEqual([gpu.id]);
    expect((await t.store.list({ limit: 10, queue: 'none' })).commands).toEqual([]);
  });
});

describe('transitions at their edges', () => {
  test('a heartbeat logs a progress event only when it carries progress', async () => {
    const { command } = await t.store.submit(delay());
    const c = await claim();
    const before = await t.store.lastEventSeq();
    await t.store.heartbeat(c.id, { agentId: 'a1', leaseId: c.leaseId }, LEASE_MS);
    expect(await t.store.eventsSince(before, 10)).toEqual([]);
    await t.store.heartbeat(c.id, { agentId: 'a1', leaseId: c.leaseId, progress: { percent: 40, message: 'half' } }, LEASE_MS);
    const events = await t.store.eventsSince(before, 10);
    expect(events.map((e) => [e.kind, e.transition, e.command.id, e.command.progress])).toEqual([
      ['progress', 'progress', command.id, { percent: 40, message: 'half' }],
    ]);
  });

  test('after the clock steps back, a command in the claim index still reads ready', async () => {
    const { command } = await t.store.submit(delay());
    t.clock.advance(-5_000);
    expect(await t.store.pendingState(command.id)).toMatchObject({ state: 'ready' });
    expect((await claim()).id).toBe(command.id);
  });
});
