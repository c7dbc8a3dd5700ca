/**
 * Long-poll on a real listening server: hand-off, exactly-one, expiry, Prefer, shutdown, hang-ups.
 *
 * `npm run mutate long-poll` (2026-12-01): 88.3 % (67 killed, 24 timed out, 12 survived). The
 * survivors, and why they stay:
 * - `dispatchAgain = true` at construction, `signals--` for `signals++`, `answers[i].length` without
 *   `?.`: equivalent (the loop clears the flag before it is read; `mark` is only compared for
 *   equality, so any change of it signals; `answers` always has one entry per waiter).
 * - `response.off('', onClose)`: the listener stays on a settled poll's response and settles it
 *   again, which changes nothing (settle is idempotent); the response closes right after.
 * - The route key (7 mutants, before it was `routeKey` of claim-route.ts): it only decides which
 *   routes a pass stops claiming for after one came back short, which matters with more than
 *   WAITERS_PER_CLAIM (64) polls of mixed routes waiting at once; the routing suites run fewer.
 * - `since === undefined || since !== this.signals` → `false`: a poll whose own claim raced a
 *   submit would wait for the next signal instead of claiming again; the interleavings test forces
 *   the common order, not that one.
 */
import { connect } from 'node:net';
import Database from 'better-sqlite3';
import { performance } from 'node:perf_hooks';
import { describe, expect, test } from 'vitest';
import type { ClaimedCommand, Command } from '@agent-executor/common';
import type { App } from '../src/app.js';
import type { CommandStore, StoredEvent } from '../src/store/store.js';
import { waitFor } from '../../test-support/processes.js';
import { delay, listen, testStoreKind, useApp } from './helpers.js';

const { build } = useApp();
/**
 * What only the SQLite store does: it leases a just-submitted command to a waiting poll inside the
 * submit's own commit (the PostgreSQL store hands it over in the next one, as StoreEvents allows),
 * and its tests reach into the SQLite file. Not defined at all on other stores.
 */
const sqliteOnly = testStoreKind() === 'sqlite' ? test : () => undefined;

interface PollAnswer {
  status: number;
  preferenceApplied: string | null;
  command: ClaimedCommand | undefined;
  /** performance.now() when the answer arrived. */
  at: number;
}

async function poll(base: string, query: string, init: RequestInit = {}): Promise<PollAnswer> {
  const res = await fetch(`${base}/commands/next?${query}`, init);
  const text = await res.text();
  return {
    status: res.status,
    preferenceApplied: res.headers.get('preference-applied'),
    command: text ? (JSON.parse(text) as ClaimedCommand) : undefined,
    at: performance.now(),
  };
}

async function submitOverHttp(base: string): Promise<Command> {
  const res = await fetch(`${base}/commands`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(delay(1)),
  });
  expect(res.status).toBe(201);
  return (await res.json()) as Command;
}

/** Resolves once `n` polls wait on the server (the server's own count, not a guess). */
const waiting = (app: App, n: number) => waitFor(() => app.longPoll.size === n, { what: `${n} waiting polls`, intervalMs: 5 });

describe('long-poll', () => {
  test('a waiting poll receives a command submitted 200 ms later at once', async () => {
    const { app, store } = await build();
    const base = await listen(app);
    // Warm up (first fetch, first route calls), so the figures below are the steady state.
    await submitOverHttp(base);
    expect((await poll(base, 'agentId=warm-up')).status).toBe(200);
    let committedAt = 0;
    const onEvent = (event: StoredEvent) => {
      if (event.transition === 'submit') committedAt = performance.now();
    };
    store.events.on('event', onEvent);

    const handOffs: number[] = [];
    for (let round = 0; round < 3; round++) {
      const started = performance.now();
      const answer = poll(base, `agentId=agent-${round}&wait=5`);
      await waiting(app, 1);
      // The scenario: the command arrives 200 ms into the wait.
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, 200 - (performance.now() - started))));
      const submitAt = performance.now();
      const created = await submitOverHttp(base);
      const got = await answer;
      const handOff = got.at - submitAt;
      handOffs.push(handOff);
      console.log(
        `long-poll hand-off: ${handOff.toFixed(1)} ms from sending the submit to the waiting poll's answer; ` +
          `${(got.at - committedAt).toFixed(1)} ms from the submit's commit to that answer`,
      );
      expect(got.status).toBe(200);
      expect(got.command).toMatchObject({ id: created.id, status: 'RUNNING', agentId: `agent-${round}`, attempts: 1 });
      expect(got.command?.leaseId).toEqual(expect.any(String));
      expect(got.preferenceApplied).toBe('wait=5');
      expect(got.at - started).toBeGreaterThanOrEqual(200);
    }
    store.events.off('event', onEvent);
    expect(Math.max(...handOffs)).toBeLessThan(1000);
  });

  sqliteOnly('a submit while a poll waits leases the command in the submit\'s own commit (one fsync, not two)', async () => {
    const { app, store } = await build();
    const base = await listen(app);
    const answer = poll(base, 'agentId=agent-1&wait=10');
    await waiting(app, 1);
    // Let the poll's own first claim (which found nothing) finish, as it has for any agent that
    // has been waiting a while.
    await new Promise((resolve) => setTimeout(resolve, 50));
    const { command } = await store.submit({ type: 'DELAY', payload: { ms: 1 } });
    // No turn of the event loop has passed since the submit's commit: had the claim been a commit
    // of its own, the command would still be PENDING here.
    expect((await store.get(command.id))?.status).toBe('RUNNING');
    const { status, command: handed } = await answer;
    expect(status).toBe(200);
    expect(handed).toMatchObject({ id: command.id, agentId: 'agent-1', status: 'RUNNING' });
    const transitions = (await store.eventsSince(0, 10)).map((e) => `${e.transition} ${e.command.status}`);
    expect(transitions).toEqual(['submit PENDING', 'claim RUNNING']);
  });

  test('a poll that found nothing waits without claiming again, unless work was signalled meanwhile', async () => {
    const { app, store } = await build();
    const base = await listen(app);
    let claims = 0;
    const claimEach = store.claimEach.bind(store);
    store.claimEach = (requests, leaseMs) => {
      claims++;
      return claimEach(requests, leaseMs);
    };
    const first = poll(base, 'agentId=agent-1&wait=5');
    await waiting(app, 1);
    await new Promise((resolve) => setTimeout(resolve, 50));
    // The route's own claim only: an idle fleet re-polling costs one transaction per poll, not two.
    expect(claims).toBe(1);
    const { command } = await store.submit({ type: 'DELAY', payload: { ms: 1 } });
    expect((await first).command?.id).toBe(command.id);
    expect(claims).toBe(2);
  });

  sqliteOnly('a claim the database refuses leaves the poll waiting; the next work reaches it', async () => {
    const { app, store, dbPath } = await build();
    const base = await listen(app);
    const answer = poll(base, 'agentId=agent-1&wait=10');
    await waiting(app, 1);
    const other = new Database(dbPath);
    let first: Command;
    try {
      other.exec(`CREATE TRIGGER no_claims BEFORE INSERT ON events WHEN NEW.transition = 'claim'
        BEGIN SELECT RAISE(ABORT, 'claims refused'); END`);
      first = (await store.submit({ type: 'DELAY', payload: { ms: 1 } })).command;
      await new Promise((resolve) => setTimeout(resolve, 100));
      // The submit stands; the claim for the poll was undone alone, and the poll still waits.
      expect(await store.get(first.id)).toMatchObject({ status: 'PENDING', attempts: 0 });
      expect(app.longPoll.size).toBe(1);
      other.exec('DROP TRIGGER no_claims');
    } finally {
      other.close();
    }
    await store.submit({ type: 'DELAY', payload: { ms: 2 } });
    const { status, command } = await answer;
    expect(status).toBe(200);
    expect(command).toMatchObject({ id: first.id, agentId: 'agent-1', status: 'RUNNING' });
  });

  test('5 waiting polls and 1 submit: exactly one gets it, the others 204 when their wait ends', async () => {
    const { app, store } = await build();
    const base = await listen(app);
    const started = performance.now();
    const answers = Array.from({ length: 5 }, (_, i) => poll(base, `agentId=agent-${i}&wait=1`));
    await waiting(app, 5);
    const created = await submitOverHttp(base);
    const results = await Promise.all(answers);
    const winners = results.filter((r) => r.status === 200);
    const losers = results.filter((r) => r.status === 204);
    expect(winners).toHaveLength(1);
    expect(losers).toHaveLength(4);
    expect(winners[0]?.command?.id).toBe(created.id);
    for (const loser of losers) {
      expect(loser.command).toBeUndefined();
      expect(loser.at - started).toBeGreaterThanOrEqual(950);
    }
    expect(await store.get(created.id)).toMatchObject({ status: 'RUNNING', agentId: winners[0]?.command?.agentId, attempts: 1 });
  });

  sqliteOnly('a batch of 3 with 5 waiting polls: the 3 oldest polls get one each, in one claim transaction', async () => {
    const { app, store } = await build();
    const base = await listen(app);
    const answers: Array<Promise<PollAnswer>> = [];
    for (let i = 0; i < 5; i++) {
      answers.push(poll(base, `agentId=agent-${i}&wait=1`));
      await waiting(app, i + 1); // registered in this order: agent-0 is the oldest
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
    const commands = await store.submitBatch([1, 2, 3].map((ms) => ({ type: 'DELAY' as const, payload: { ms } })));
    // Leased in the batch's own commit, all three: nothing is left PENDING once it resolves.
    expect((await store.countByStatus()).RUNNING).toBe(3);
    const results = await Promise.all(answers);
    expect(results.map((r) => r.status)).toEqual([200, 200, 200, 204, 204]);
    expect(results.slice(0, 3).map((r) => r.command?.id)).toEqual(commands.map((c) => c.id));
    expect(results.slice(0, 3).map((r) => r.command?.agentId)).toEqual(['agent-0', 'agent-1', 'agent-2']);
  });

  test('a wait that ends with no work answers 204, echoing Preference-Applied', async () => {
    const { app } = await build();
    const base = await listen(app);
    const started = performance.now();
    const answer = await poll(base, 'agentId=agent-1&wait=1');
    const elapsed = answer.at - started;
    expect(answer.status).toBe(204);
    expect(answer.preferenceApplied).toBe('wait=1');
    expect(elapsed).toBeGreaterThanOrEqual(950);
    expect(elapsed).toBeLessThan(3000);
    expect(app.longPoll.size).toBe(0);
  });

  test('without a wait the poll answers 204 at once', async () => {
    const { app } = await build();
    const base = await listen(app);
    const started = performance.now();
    const answer = await poll(base, 'agentId=agent-1');
    expect(answer.status).toBe(204);
    expect(answer.preferenceApplied).toBeNull();
    expect(answer.at - started, 'answered without waiting').toBeLessThan(1000);
  });

  test('Prefer: wait=2 waits, and is echoed in Preference-Applied', async () => {
    const { app } = await build();
    const base = await listen(app);
    const started = performance.now();
    const answer = await poll(base, 'agentId=agent-1', { headers: { prefer: 'wait=2' } });
    expect(answer.status).toBe(204);
    expect(answer.preferenceApplied).toBe('wait=2');
    expect(answer.at - started).toBeGreaterThanOrEqual(1950);
  });

  test('Prefer: wait=120 is capped at 60 and the poll still takes work as it arrives', async () => {
    const { app } = await build();
    const base = await listen(app);
    const answer = poll(base, 'agentId=agent-1', { headers: { prefer: 'respond-async, wait=120' } });
    await waiting(app, 1);
    const created = await submitOverHttp(base);
    const got = await answer;
    expect(got.status).toBe(200);
    expect(got.command?.id).toBe(created.id);
    expect(got.preferenceApplied).toBe('wait=60');
  });

  test('a waiting poll is woken when a retry backoff ends, by the timer armed for it', async () => {
    const { app } = await build();
    const base = await listen(app);
    await submitOverHttp(base);
    const first = await poll(base, 'agentId=agent-1');
    const res = await fetch(`${base}/commands/${first.command?.id}/result`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ agentId: 'agent-1', leaseId: first.command?.leaseId, status: 'FAILED', error: 'HTTP 503', retryable: true }),
    });
    const { command } = (await res.json()) as { command: Command };
    expect(command.status).toBe('PENDING');
    const availableAt = Date.parse(command.availableAt);
    const got = await poll(base, 'agentId=agent-2&wait=5');
    const answeredAt = Date.now();
    expect(got.status).toBe(200);
    expect(got.command).toMatchObject({ id: command.id, agentId: 'agent-2', attempts: 2 });
    expect(answeredAt).toBeGreaterThanOrEqual(availableAt);
    expect(answeredAt - availableAt).toBeLessThan(1000);
  });

  test("a drain answers the drained agent's waiting polls 204 at once, and only its own", async () => {
    const { app } = await build();
    const base = await listen(app);
    const drained = [poll(base, 'agentId=drained&wait=30'), poll(base, 'agentId=drained&wait=30')];
    const other = poll(base, 'agentId=other&wait=30');
    await waiting(app, 3);
    const draining = performance.now();
    const res = await fetch(`${base}/agents/drained/drain`, { method: 'POST' });
    expect(res.status).toBe(200);
    for (const answer of await Promise.all(drained)) {
      expect(answer.status).toBe(204);
      expect(answer.at - draining, 'answered at the drain, not at the end of its wait').toBeLessThan(5_000);
    }
    // The other agent's poll still waits, and still gets work.
    expect(app.longPoll.size).toBe(1);
    const command = await submitOverHttp(base);
    expect((await other).command?.id).toBe(command.id);
  });

  test('app.close() answers waiting polls 204 at once', async () => {
    const { app } = await build();
    const base = await listen(app);
    const answers = Array.from({ length: 3 }, (_, i) => poll(base, `agentId=agent-${i}&wait=30`));
    await waiting(app, 3);
    const closing = performance.now();
    await app.close();
    expect(performance.now() - closing, 'app.close() took').toBeLessThan(1000);
    const results = await Promise.all(answers);
    for (const result of results) {
      expect(result.status).toBe(204);
      expect(result.at - closing).toBeLessThan(1000);
    }
    console.log(`polls answered ${Math.max(...results.map((r) => r.at - closing)).toFixed(1)} ms after app.close()`);
  });

  test('app.close() does not wait for a connection that never sent a request', async () => {
    const { app } = await build();
    const base = await listen(app);
    const accepted = new Promise((resolve) => app.server.once('connection', resolve));
    const idle = connect(Number(new URL(base).port), '127.0.0.1');
    const ended = new Promise((resolve) => idle.once('close', resolve));
    try {
      await accepted;
      const closing = performance.now();
      const closed = await Promise.race([
        app.close().then(() => true),
        new Promise<boolean>((resolve) => setTimeout(resolve, 2000, false)),
      ]);
      expect(closed, 'app.close() finished within 2 s').toBe(true);
      console.log(`app.close() with a silent connection open took ${(performance.now() - closing).toFixed(1)} ms`);
      await ended;
    } finally {
      idle.destroy();
    }
  });

  test('a poll whose client hung up is never handed a command: the next poll gets it at once', async () => {
    const { app, store } = await build();
    const base = await listen(app);
    const controller = new AbortController();
    const gone = poll(base, 'agentId=agent-dead&wait=30', { signal: controller.signal });
    await waiting(app, 1);
    controller.abort();
    await expect(gone).rejects.toMatchObject({ name: 'AbortError' });
    await waiting(app, 0); // the server noticed the hang-up
    const created = await submitOverHttp(base);
    expect(await store.get(created.id)).toMatchObject({ status: 'PENDING', attempts: 0, agentId: null });
    const next = await poll(base, 'agentId=agent-alive');
    expect(next.status).toBe(200);
    expect(next.command).toMatchObject({ id: created.id, agentId: 'agent-alive', attempts: 1 });
  });

  test('a command claimed for a waiting poll whose client hangs up meanwhile is given back, not lost', async () => {
    const { app, store } = await build();
    const base = await listen(app);
    const claimEach = store.claimEach.bind(store);
    for (let round = 0; round < 5; round++) {
      const controller = new AbortController();
      const gone = poll(base, `agentId=agent-dead-${round}&wait=30`, { signal: controller.signal }).catch(
        (err: unknown) => err,
      );
      await waiting(app, 1);
      // The hand-off's claim commits; before the poll is answered its client leaves and the server
      // hears of it (the poll leaves the queue). A real agent killed at that moment does this; the
      // claim's leases must not be left to run out.
      store.claimEach = async (requests, leaseMs) => {
        store.claimEach = claimEach;
        const answers = await claimEach(requests, leaseMs);
        controller.abort();
        await waiting(app, 0);
        return answers;
      };
      const { command: created } = await store.submit({ type: 'DELAY', payload: { ms: round } });
      expect(await gone).toBeInstanceOf(Error);
      await waitFor(async () => (await store.get(created.id))?.status === 'PENDING', {
        what: `command ${created.id} back to PENDING`,
        timeoutMs: 5000,
      });
      const next = await poll(base, 'agentId=agent-alive&wait=5');
      expect(next.status).toBe(200);
      expect(next.command).toMatchObject({ id: created.id, agentId: 'agent-alive', attempts: 1 });
    }
    const events = await store.eventsSince(0, 1000);
    expect(events.filter((e) => e.transition === 'claim' && e.command.agentId?.startsWith('agent-dead'))).toHaveLength(5);
    expect(events.filter((e) => e.transition === 'release'), 'each claim for a gone poll was given back').toHaveLength(5);
  });
});

/**
 * A poll that will wait skips its own claim when a claim of its route, begun since work last
 * appeared, found nothing (LongPoll.isDrained): an idle fleet's agent that reported and found
 * nothing along polls again at once, and that claim would find nothing too.
 */
describe('long-poll: a drained route waits without a claim', () => {
  /** Counts the claims polls make themselves (the waiting polls' hand-offs go through claimEach). */
  function countClaims(store: CommandStore): () => number {
    const claimBatch = store.claimBatch.bind(store);
    let claims = 0;
    store.claimBatch = (...args) => {
      claims++;
      return claimBatch(...args);
    };
    return () => claims;
  }

  test('after a report whose claim found nothing, the next long poll waits without claiming, then gets the next command', async () => {
    const { app, store } = await build();
    const base = await listen(app);
    const claims = countClaims(store);
    await submitOverHttp(base);
    const first = await poll(base, 'agentId=agent-a');
    expect(first.status).toBe(200);
    const reported = await fetch(`${base}/commands/results`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        reports: [{ id: first.command!.id, leaseId: first.command!.leaseId, agentId: 'agent-a', status: 'COMPLETED', result: null }],
        claim: { agentId: 'agent-a', max: 1 },
      }),
    });
    expect(reported.status).toBe(200);
    expect(((await reported.json()) as { commands: unknown[] }).commands).toEqual([]);
    expect(claims()).toBe(2);
    const next = poll(base, 'agentId=agent-a&wait=10');
    await waiting(app, 1);
    expect(claims(), 'the waiting poll made no claim of its own').toBe(2);
    const created = await submitOverHttp(base);
    expect(await next).toMatchObject({ status: 200, command: { id: created.id, agentId: 'agent-a' } });
  });

  test('work that appeared after the claim that found nothing is claimed by the next poll at once', async () => {
    const { app, store } = await build();
    const base = await listen(app);
    const claims = countClaims(store);
    expect((await poll(base, 'agentId=agent-a')).status).toBe(204);
    const created = await submitOverHttp(base);
    const next = await poll(base, 'agentId=agent-a&wait=10');
    expect(next).toMatchObject({ status: 200, command: { id: created.id } });
    expect(claims()).toBe(2);
    expect(app.longPoll.size).toBe(0);
  });

  test("a route that found nothing does not stop another route's poll from claiming", async () => {
    const { app, store } = await build();
    const base = await listen(app);
    const claims = countClaims(store);
    const { command: created } = await store.submit({ ...delay(1), queue: 'b' });
    expect((await poll(base, 'agentId=agent-a&queues=a')).status).toBe(204);
    const next = await poll(base, 'agentId=agent-b&queues=b&wait=10');
    expect(next).toMatchObject({ status: 200, command: { id: created.id, agentId: 'agent-b' } });
    expect(claims()).toBe(2);
    // Queue a is still drained: its next waiting poll makes no claim.
    const other = poll(base, 'agentId=agent-a&queues=a&wait=10');
    await waiting(app, 1);
    expect(claims()).toBe(2);
    const { command: later } = await store.submit({ ...delay(1), queue: 'a' });
    expect(await other).toMatchObject({ status: 200, command: { id: later.id } });
  });
});
