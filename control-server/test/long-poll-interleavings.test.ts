/**
 * LongPoll driven directly, on a real SQLite store, with the claim held at a gate so each race is
 * forced rather than hoped for: a signal during a dispatch, a wait that ends while its claim
 * commits, a client that leaves meanwhile, more than 64 waiting polls, waits after close(), a
 * claim that fails. The responses are real `http.ServerResponse`s on real sockets.
 *
 * Mutants `npm run mutate long-poll` leaves alive, and why they are equivalent:
 * - `private dispatchAgain = false` → `true`: the loop sets it to false before its first pass.
 * - `since === undefined ||` → `false ||`: `undefined !== this.signals` is true anyway.
 * - `this.signals++` → `--`: `mark` only has to change; a wait compares it for equality.
 * - `response.off('close', onClose)` → `off('')`: a later 'close' calls `settle` again, which
 *   finds nothing to remove and resolves an already settled promise: no effect.
 * - `if (index !== -1)` in `remove` → `true`: `settle` runs once per waiter (its timer and its
 *   'close' listener are removed by it), so the waiter is always still in the queue.
 * - `answers.length === waiters.length &&` → `true &&`: claimEach stops answering only after a
 *   request it could not fill, and that short answer already makes `every(...)` false.
 * - `response.destroyed ||` in `isGone` removed: `destroy()` of a response destroys its socket
 *   too, so `socket.destroyed` says the same.
 */
import { routeOf } from '../src/store/claim-route.js';
import { IncomingMessage, ServerResponse } from 'node:http';
import { Socket } from 'node:net';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { LongPoll } from '../src/long-poll.js';
import { SqliteCommandStore } from '../src/store/sqlite.js';
import type { ClaimRequest } from '../src/store/store.js';
import { tempDir, waitFor } from '../../test-support/processes.js';

/** Every poll here serves the default queue and every built-in type. */
const ROUTE = routeOf({});

let dir: ReturnType<typeof tempDir>;
let store: SqliteCommandStore;
const sockets: Socket[] = [];

/** A response on a fresh (unconnected, open) socket: `isGone()` is false until it is destroyed. */
function response(): ServerResponse {
  const socket = new Socket();
  sockets.push(socket);
  const res = new ServerResponse(new IncomingMessage(socket));
  res.assignSocket(socket);
  return res;
}

/** A claim that waits at a gate the test opens, so the test decides what happens meanwhile. */
class GatedClaims {
  calls: ClaimRequest[][] = [];
  private gates: Array<() => void> = [];
  gated = false;
  released: string[] = [];
  failNext = 0;
  errors: unknown[] = [];

  readonly poll = new LongPoll({
    claim: async (requests) => {
      this.calls.push([...requests]);
      if (this.failNext > 0) {
        this.failNext--;
        throw new Error('SQLITE_BUSY: database is locked');
      }
      // The claim commits first, then waits: the race is with its answer, as with a real commit.
      const answers = await store.claimEach(requests, 60_000);
      if (this.gated) await new Promise<void>((open) => this.gates.push(open));
      return answers;
    },
    release: async (command) => {
      this.released.push(command.id);
      await store.release(command.id, command.leaseId);
    },
    onError: (err) => this.errors.push(err),
  });

  /** Resolves once a claim waits at the gate. */
  async held(n = 1): Promise<void> {
    await waitFor(() => this.gates.length >= n, { what: `${n} claim(s) at the gate`, intervalMs: 1 });
  }

  open(): void {
    this.gated = false;
    for (const open of this.gates.splice(0)) open();
  }
}

const submit = (n = 1) => store.submitBatch(Array.from({ length: n }, () => ({ type: 'DELAY' as const, payload: { ms: 1 } })));

beforeEach(() => {
  dir = tempDir('long-poll-interleavings');
  store = new SqliteCommandStore({ path: join(dir.path, 'lp.db'), onError: () => {} });
});

afterEach(async ({ task }) => {
  for (const s of sockets.splice(0)) s.destroy();
  await store.close();
  dir.cleanup(task.result?.state !== 'fail');
});

describe('LongPoll interleavings', () => {
  test('work signalled while a dispatch is under way is claimed by a second pass, not dropped', async () => {
    const claims = new GatedClaims();
    const { poll } = claims;
    const a = poll.wait('a', 1, ROUTE, 10_000, response(), poll.mark);
    const b = poll.wait('b', 1, ROUTE, 10_000, response(), poll.mark);
    expect(poll.size).toBe(2);
    claims.gated = true;
    const first = poll.dispatch(); // nothing stored yet: this pass will find nothing
    await claims.held();
    // Work arrives after the first claim committed (it found nothing), before its answer is back.
    await submit(2);
    const second = poll.dispatch();
    await second; // returns at once: a dispatch is under way, it only asks for another pass
    claims.open();
    await first;
    const got = await Promise.all([a, b]);
    expect(got.map((c) => c.length)).toEqual([1, 1]);
    expect(claims.calls.map((c) => c.length)).toEqual([2, 2]);
  });

  test('a wait that ends while its claim commits gives the command back; the next poll gets it', async () => {
    const claims = new GatedClaims();
    const { poll } = claims;
    const [command] = await submit(1);
    claims.gated = true;
    const short = poll.wait('short', 1, ROUTE, 30, response());
    await claims.held();
    // The 30 ms wait ends (204) while the claim is held at the gate.
    expect(await short).toEqual([]);
    claims.open();
    await waitFor(async () => (await store.get(command!.id))?.status === 'PENDING', { what: 'the command given back', intervalMs: 2 });
    expect(claims.released).toEqual([command!.id]);
    const next = await poll.wait('next', 1, ROUTE, 5_000, response());
    expect(next.map((c) => c.id)).toEqual([command!.id]);
  });

  test('a client that leaves while the claim commits is not handed the command; it goes back', async () => {
    const claims = new GatedClaims();
    const { poll } = claims;
    const [command] = await submit(1);
    claims.gated = true;
    const res = response();
    const leaving = poll.wait('leaving', 1, ROUTE, 10_000, res);
    await claims.held();
    // Gone without its 'close' reaching the poll yet: only the socket says so.
    res.socket!.destroy();
    claims.open();
    await waitFor(async () => (await store.get(command!.id))?.status === 'PENDING', { what: 'the command given back', intervalMs: 2 });
    expect(claims.released).toEqual([command!.id]);
    expect(await leaving).toEqual([]);
  });

  test('a client that leaves after its poll got commands but before the answer was out: they go back; once out, they stay', async () => {
    const claims = new GatedClaims();
    const { poll } = claims;
    const [lost] = await submit(2);
    const res = response();
    const handed = await poll.wait('leaving', 1, ROUTE, 10_000, res);
    expect(handed.map((c) => c.id)).toEqual([lost!.id]);
    // Nothing of the answer written yet when the connection closes (the hang-up was on its way).
    res.emit('close');
    await waitFor(async () => (await store.get(lost!.id))?.status === 'PENDING', { what: 'the command given back', intervalMs: 2 });
    expect(claims.released).toEqual([lost!.id]);
    // An answer that was written whole is the client's: a close after it gives nothing back.
    const kept = response();
    const [got] = await poll.wait('kept', 1, ROUTE, 10_000, kept);
    Object.defineProperty(kept, 'writableFinished', { value: true });
    kept.emit('close');
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(claims.released).toEqual([lost!.id]);
    expect(await store.get(got!.id)).toMatchObject({ status: 'RUNNING', agentId: 'kept' });
  });

  test('a poll whose socket is gone, before its close event arrives, is dropped before the claim and not asked for', async () => {
    const claims = new GatedClaims();
    const { poll } = claims;
    const gone = response();
    const goneWait = poll.wait('gone', 1, ROUTE, 10_000, gone, poll.mark);
    const live = poll.wait('live', 1, ROUTE, 10_000, response(), poll.mark);
    await submit(1);
    // Destroyed and dispatched in the same turn: the socket's 'close' has not been emitted yet.
    gone.socket!.destroy();
    const dispatched = poll.dispatch();
    expect(await goneWait).toEqual([]);
    await dispatched;
    expect(await live).toHaveLength(1);
    expect(claims.calls.map((c) => c.map((r) => r.agentId))).toEqual([['live']]);
    expect(claims.released).toEqual([]);
    expect(claims.errors).toEqual([]);
  });

  test('a response that has let go of its socket counts as gone (no error, not asked for)', async () => {
    const claims = new GatedClaims();
    const { poll } = claims;
    const detached = response();
    const detachedWait = poll.wait('detached', 1, ROUTE, 10_000, detached, poll.mark);
    detached.detachSocket(detached.socket!);
    expect(detached.socket).toBeNull();
    await submit(1);
    const live = poll.wait('live', 1, ROUTE, 10_000, response(), poll.mark);
    await poll.dispatch();
    expect(await detachedWait).toEqual([]);
    expect(await live).toHaveLength(1);
    expect(claims.errors).toEqual([]);
    expect(claims.calls.map((c) => c.map((r) => r.agentId))).toEqual([['live']]);
  });

  test('a hang-up in the middle of the queue takes out that poll only; the others keep their order', async () => {
    const claims = new GatedClaims();
    const { poll } = claims;
    const middle = response();
    const waits = [
      poll.wait('first', 1, ROUTE, 10_000, response(), poll.mark),
      poll.wait('middle', 1, ROUTE, 10_000, middle, poll.mark),
      poll.wait('last', 1, ROUTE, 10_000, response(), poll.mark),
    ];
    middle.emit('close');
    expect(await waits[1]).toEqual([]);
    expect(poll.size).toBe(2);
    await submit(2);
    await poll.dispatch();
    expect((await waits[0]!).length + (await waits[2]!).length).toBe(2);
    expect(claims.calls.map((c) => c.map((r) => r.agentId))).toEqual([['first', 'last']]);
  });

  test('a poll that got less than it asked for ends the dispatch: the polls after it are not asked again', async () => {
    const claims = new GatedClaims();
    const { poll } = claims;
    const big = poll.wait('big', 2, ROUTE, 10_000, response(), poll.mark);
    const small = poll.wait('small', 1, ROUTE, 150, response(), poll.mark);
    await submit(2);
    await poll.dispatch();
    expect(await big).toHaveLength(2);
    // The claim answered 'small' with nothing: no work is left, so no second claim for it.
    expect(claims.calls).toHaveLength(1);
    expect(await small).toEqual([]);
    expect(claims.calls).toHaveLength(1);
  });

  test('a hang-up (close) takes the poll out of the queue at once', async () => {
    const { poll } = new GatedClaims();
    const res = response();
    const waiting = poll.wait('a', 1, ROUTE, 10_000, res, poll.mark);
    expect(poll.size).toBe(1);
    res.emit('close');
    expect(await waiting).toEqual([]);
    expect(poll.size).toBe(0);
  });

  test('70 waiting polls and 70 commands: one claim for the first 64, then one for the other 6', async () => {
    const claims = new GatedClaims();
    const { poll } = claims;
    const waits = Array.from({ length: 70 }, (_, i) => poll.wait(`a${i}`, 1, ROUTE, 10_000, response(), poll.mark));
    await submit(70);
    await poll.dispatch();
    const got = await Promise.all(waits);
    expect(got.every((c) => c.length === 1)).toBe(true);
    expect(claims.calls.map((c) => c.length)).toEqual([64, 6]);
    // Oldest first: the first claim asked for a0…a63.
    expect(claims.calls[0]![0]!.agentId).toBe('a0');
    expect(claims.calls[0]![63]!.agentId).toBe('a63');
  });

  test('fewer commands than polls: the oldest polls get them and no further claim is made', async () => {
    const claims = new GatedClaims();
    const { poll } = claims;
    const waits = Array.from({ length: 3 }, (_, i) => poll.wait(`a${i}`, 2, ROUTE, 200, response(), poll.mark));
    await submit(3);
    await poll.dispatch();
    expect(claims.calls).toHaveLength(1);
    const got = await Promise.all(waits);
    expect(got.map((c) => c.length)).toEqual([2, 1, 0]);
  });

  test('polls that each got all they asked for leave the rest to the next in the queue, in the same dispatch', async () => {
    const claims = new GatedClaims();
    const { poll } = claims;
    const waits = Array.from({ length: 66 }, (_, i) => poll.wait(`a${i}`, 2, ROUTE, 10_000, response(), poll.mark));
    await submit(132);
    await poll.dispatch();
    expect((await Promise.all(waits)).every((c) => c.length === 2)).toBe(true);
    expect(claims.calls.map((c) => c.length)).toEqual([64, 2]);
  });

  test('a wait given a stale mark claims at once; one given the current mark just waits', async () => {
    const claims = new GatedClaims();
    const { poll } = claims;
    const mark = poll.mark;
    await poll.dispatch(); // a signal after the caller's own claim (no poll waits: no claim)
    const before = claims.calls.length;
    expect(before).toBe(0);
    await submit(1);
    const stale = poll.wait('stale', 1, ROUTE, 5_000, response(), mark);
    expect(await stale).toHaveLength(1);
    expect(claims.calls.map((c) => c.map((r) => r.agentId)), JSON.stringify(claims.calls)).toEqual([['stale']]);
    // Let that dispatch finish its last look at the queue (a poll arriving before then is served
    // by it, rightly: every poll it asked was filled, so work may be left).
    await new Promise((r) => setTimeout(r, 20));
    const current = poll.wait('current', 1, ROUTE, 100, response(), poll.mark);
    expect(await current).toEqual([]);
    expect(claims.calls.length, JSON.stringify(claims.calls)).toBe(before + 1);
    // Without a mark it claims at once.
    await submit(1);
    expect(await poll.wait('no-mark', 1, ROUTE, 5_000, response())).toHaveLength(1);
  });

  test('close() answers every waiting poll with nothing; a wait after close() answers at once and claims nothing', async () => {
    const claims = new GatedClaims();
    const { poll } = claims;
    const waits = [poll.wait('a', 1, ROUTE, 60_000, response(), poll.mark), poll.wait('b', 1, ROUTE, 60_000, response(), poll.mark)];
    poll.close();
    expect(await Promise.all(waits)).toEqual([[], []]);
    expect(poll.size).toBe(0);
    await submit(1);
    const started = Date.now();
    expect(await poll.wait('late', 1, ROUTE, 60_000, response())).toEqual([]);
    expect(Date.now() - started).toBeLessThan(1000);
    expect(poll.size).toBe(0);
    expect(claims.calls).toEqual([]);
  });

  test('a claim that fails is reported, the polls keep waiting, and the next signal serves them', async () => {
    const claims = new GatedClaims();
    const { poll } = claims;
    const waiting = poll.wait('a', 1, ROUTE, 10_000, response(), poll.mark);
    await submit(1);
    claims.failNext = 1;
    await poll.dispatch();
    expect(claims.errors).toHaveLength(1);
    expect(poll.size).toBe(1);
    await poll.dispatch();
    expect(await waiting).toHaveLength(1);
  });

  test('when the second pass (for a signal during the first) fails, the error is reported and a later signal still serves the poll', async () => {
    const claims = new GatedClaims();
    const { poll } = claims;
    const waiting = poll.wait('a', 1, ROUTE, 10_000, response(), poll.mark);
    claims.gated = true;
    const first = poll.dispatch();
    await claims.held();
    await submit(1);
    void poll.dispatch(); // asks the running dispatch for another pass…
    claims.failNext = 1; // …whose claim fails
    claims.open();
    await first;
    expect(claims.calls).toHaveLength(2);
    expect(claims.errors).toHaveLength(1);
    expect(poll.size).toBe(1);
    // Not stuck "dispatching": the next signal claims.
    await poll.dispatch();
    expect(await waiting).toHaveLength(1);
  });

  test('a wait that times out answers nothing after its time, and leaves the queue', async () => {
    const { poll } = new GatedClaims();
    const started = Date.now();
    expect(await poll.wait('a', 1, ROUTE, 80, response(), poll.mark)).toEqual([]);
    expect(Date.now() - started).toBeGreaterThanOrEqual(70);
    expect(poll.size).toBe(0);
  });
});
