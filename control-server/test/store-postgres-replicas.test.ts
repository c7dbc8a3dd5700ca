/**
 * Several replicas on one PostgreSQL database: two (or three) store instances, each with its own
 * pool and LISTEN connection, as two server processes would have.
 */
import pg from 'pg';
import { afterEach, describe, expect, inject, test } from 'vitest';
import type { SubmitBody } from '@agent-executor/common';
import { PostgresCommandStore } from '../src/store/postgres.js';
import { sql } from '../src/store/postgres-statements.js';
import { pgTypes } from '../src/store/postgres-rows.js';
import type { StoredEvent } from '../src/store/store.js';
import { createDatabase } from '../../test-support/postgres.js';
import { TestClock } from './helpers.js';

const adminUrl = inject('postgresUrl');
const delay = (ms = 10): SubmitBody => ({ type: 'DELAY', payload: { ms } });
const opened: PostgresCommandStore[] = [];
const clients: pg.Client[] = [];

afterEach(async () => {
  for (const store of opened.splice(0)) await store.close();
  for (const client of clients.splice(0)) await client.end().catch(() => undefined);
});

async function replicas(n: number, options: { now?: () => number } = {}): Promise<{ url: string; stores: PostgresCommandStore[] }> {
  const url = await createDatabase(adminUrl, 'replicas');
  const stores: PostgresCommandStore[] = [];
  for (let i = 0; i < n; i++) {
    const store = await PostgresCommandStore.open({ connectionString: url, poolSize: 4, ...options });
    opened.push(store);
    stores.push(store);
  }
  return { url, stores };
}

async function connect(url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url, types: pgTypes });
  await client.connect();
  clients.push(client);
  return client;
}

/** Resolves with the first 'available' the store emits. */
const nextAvailable = (store: PostgresCommandStore) =>
  new Promise<void>((resolve) => {
    const listener = () => {
      store.events.off('available', listener);
      resolve();
    };
    store.events.on('available', listener);
  });

/** Collects what a store's 'event' listeners hear; `until(n)` waits for n events. */
function hear(store: PostgresCommandStore) {
  const heard: StoredEvent[] = [];
  const waiting: { n: number; resolve: () => void }[] = [];
  store.events.on('event', (event) => {
    heard.push(event);
    for (const w of waiting) if (heard.length >= w.n) w.resolve();
  });
  return {
    heard,
    until: (n: number) =>
      new Promise<void>((resolve) => (heard.length >= n ? resolve() : waiting.push({ n, resolve }))),
  };
}

describe('PostgreSQL store: several replicas on one database', () => {
  test('a submit through A wakes a claim waiting on B, and B leases it', async () => {
    const { stores: [a, b] } = await replicas(2);
    const woken = nextAvailable(b!);
    const { command } = await a!.submit(delay());
    await woken; // B heard it through LISTEN/NOTIFY: B has no other way to know
    const claimed = await b!.claim('agent-on-b', 30_000);
    expect(claimed?.id).toBe(command.id);
  });

  test('events written through A and B reach every replica once each, in seq order', async () => {
    const { stores } = await replicas(3);
    const [a, b, c] = stores as [PostgresCommandStore, PostgresCommandStore, PostgresCommandStore];
    const ears = stores.map(hear);
    // Both replicas write at once: submits, claims and reports interleave on the counter.
    const work = async (store: PostgresCommandStore, agentId: string) => {
      for (let i = 0; i < 30; i++) {
        await Promise.all([store.submit(delay(i)), store.submit(delay(i))]);
        const claimed = await store.claim(agentId, 30_000);
        if (claimed) await store.report(claimed.id, { agentId, leaseId: claimed.leaseId, result: { i } });
      }
    };
    await Promise.all([work(a, 'agent-a'), work(b, 'agent-b')]);
    const log = await c.eventsSince(0, 10_000);
    expect(log.length).toBeGreaterThan(120);
    expect(log.map((e) => e.seq)).toEqual(log.map((_, i) => i + 1)); // no id missing
    for (const ear of ears) {
      await ear.until(log.length);
      expect(ear.heard.map((e) => e.seq)).toEqual(log.map((e) => e.seq));
      expect(ear.heard.map((e) => e.data)).toEqual(log.map((e) => e.data));
    }
  });

  test('events that fit in a notification reach the other replica without a read of the log; the rest are read, in order', async () => {
    const { stores: [a, b] } = await replicas(2);
    const ear = hear(b!);
    let reads = 0;
    const read = b!.eventsSince.bind(b!);
    b!.eventsSince = (...args) => {
      reads++;
      return read(...args);
    };
    // Non-ASCII data: the header counts UTF-16 units, PostgreSQL's limit counts bytes.
    const unicode: SubmitBody = { type: 'HTTP_GET_JSON', payload: { url: 'https://example.com/ünï/€/😀' } };
    for (let i = 0; i < 4; i++) await a!.submit(i === 2 ? unicode : delay(i));
    await ear.until(4);
    expect(reads, 'reads of the log while every event came with its notification').toBe(0);
    // 40 submits in one transaction: ~18 KB of events, over a notification's 8000 bytes.
    await a!.submitBatch(Array.from({ length: 40 }, (_, i) => delay(i)));
    await a!.submit(delay(99));
    await ear.until(45);
    expect(reads, 'the batch too large for its notification was read from the log').toBeGreaterThan(0);
    const log = await a!.eventsSince(0, 100);
    expect(ear.heard.map((e) => e.seq)).toEqual(log.map((e) => e.seq));
    expect(ear.heard.map((e) => e.data)).toEqual(log.map((e) => e.data));
    expect(ear.heard.map((e) => e.command)).toEqual(log.map((e) => e.command));
    expect(ear.heard.map((e) => [e.kind, e.transition, e.createdAt])).toEqual(log.map((e) => [e.kind, e.transition, e.createdAt]));
  });

  test('event ids are in commit order: a second writer waits for the first to commit (interleaved transactions)', async () => {
    const { url, stores: [reader] } = await replicas(1);
    const first = await connect(url);
    const second = await connect(url);
    const logOne = (client: pg.Client, data: string) =>
      client.query<{ last_seq: number }>({ ...sql.logEvents, values: [['cmd'], ['status'], ['submit'], [JSON.stringify(data)], [0], 'test', '0', [0, 0, 0, 0], null, true] });

    await first.query('BEGIN');
    const n = (await logOne(first, 'first')).rows[0]!.last_seq;
    await second.query('BEGIN');
    let secondDone = false;
    const secondSeq = logOne(second, 'second').then((r) => {
      secondDone = true;
      return r.rows[0]!.last_seq;
    });
    // While the first transaction is open the second cannot take an id, so it cannot commit
    // id n+1 before n is visible (with a sequence it would, and a reader resuming "after n+1"
    // would never see n).
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(secondDone).toBe(false);
    expect(await reader!.eventsSince(0, 10)).toEqual([]);
    await first.query('COMMIT');
    expect(await secondSeq).toBe(n + 1);
    expect((await reader!.eventsSince(0, 10)).map((e) => e.command)).toEqual(['first']);
    await second.query('COMMIT');
    expect((await reader!.eventsSince(0, 10)).map((e) => [e.seq, e.command])).toEqual([
      [n, 'first'],
      [n + 1, 'second'],
    ]);
  });

  test('a reader resuming with "id > last" under concurrent writers on two replicas loses nothing', async () => {
    const { stores } = await replicas(3);
    const [a, b, reader] = stores as [PostgresCommandStore, PostgresCommandStore, PostgresCommandStore];
    let writing = true;
    const seen: number[] = [];
    const read = (async () => {
      let last = 0;
      for (let more = true; more; ) {
        more = writing; // one last read after the writers are done
        for (const event of await reader.eventsSince(last, 1000)) {
          seen.push(event.seq);
          last = event.seq;
        }
      }
    })();
    const write = async (store: PostgresCommandStore) => {
      for (let i = 0; i < 40; i++) await Promise.all(Array.from({ length: 5 }, (_, j) => store.submit(delay(j))));
    };
    await Promise.all([write(a), write(b)]);
    writing = false;
    await read;
    expect(seen).toHaveLength(400);
    expect(seen).toEqual(seen.map((_, i) => i + 1));
  });

  test('concurrent submits with one Idempotency-Key on two replicas make one command; another body is a 422', async () => {
    const { stores: [a, b] } = await replicas(2);
    const outcomes = await Promise.all(
      Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? a! : b!).submit(delay(5), 'shared-key')),
    );
    expect(new Set(outcomes.map((o) => o.command.id)).size).toBe(1);
    expect(outcomes.filter((o) => !o.replayed)).toHaveLength(1);
    expect((await a!.countByStatus()).PENDING).toBe(1);
    await expect(b!.submit(delay(6), 'shared-key')).rejects.toMatchObject({ statusCode: 422 });
  });

  test('reapers of every replica at once expire each lease once', async () => {
    const clock = new TestClock();
    const { stores } = await replicas(3, { now: clock.now });
    const [a] = stores as [PostgresCommandStore];
    for (let i = 0; i < 60; i++) await a.submit(delay(i));
    expect(await a.claimBatch('agent-1', 1000, 60)).toHaveLength(60);
    clock.advance(1000);
    const expired = (await Promise.all(stores.map((s) => s.requeueExpired()))).flat();
    expect(expired).toHaveLength(60);
    expect(new Set(expired.map((c) => c.id)).size).toBe(60);
    const events = await a.eventsSince(0, 1000);
    expect(events.filter((e) => e.transition === 'expire')).toHaveLength(60);
  });

  test('after its LISTEN connection drops, a replica catches up on what it missed', async () => {
    const { stores: [a, b] } = await replicas(2);
    const ear = hear(b!);
    await a!.submit(delay(1));
    await ear.until(1);
    const woken = nextAvailable(b!);
    b!.dropListenConnection();
    // Committed while B cannot hear: its notification is lost for B.
    await a!.submit(delay(2));
    await woken;
    await ear.until(2);
    expect(ear.heard.map((e) => e.seq)).toEqual([1, 2]);
    // And B listens again: a later submit is heard as it happens.
    await a!.submit(delay(3));
    await ear.until(3);
    expect(ear.heard.map((e) => e.seq)).toEqual([1, 2, 3]);
  });
});

describe('per-key concurrency across replicas', () => {
  test('3 replicas claiming and completing keyed commands at once never run a key over its limit (event log replay)', async () => {
    const { stores } = await replicas(3);
    const limits: Record<string, number> = { k1: 1, k2: 2 };
    const keyed = (key: string): SubmitBody => ({ ...delay(), concurrencyKey: key, concurrencyLimit: limits[key]! }) as SubmitBody;
    const total = 60;
    await stores[0]!.submitBatch(Array.from({ length: total }, (_, i) => keyed(i % 3 === 0 ? 'k1' : 'k2')));
    let done = 0;
    const worker = async (store: PostgresCommandStore, agentId: string) => {
      for (let spins = 0; done < total && spins < 2_000; spins++) {
        const claimed = await store.claimBatch(agentId, 30_000, 3);
        // Held a moment, so claims of the other replicas run while these are RUNNING.
        await new Promise((resolve) => setTimeout(resolve, claimed.length > 0 ? 2 : 5));
        for (const c of claimed) {
          await store.report(c.id, { agentId, leaseId: c.leaseId, result: {} });
          done++;
        }
      }
    };
    await Promise.all(stores.flatMap((store, i) => [worker(store, `r${i}-a`), worker(store, `r${i}-b`)]));
    expect(done).toBe(total);
    // Event ids are in commit order: replaying them gives every moment's RUNNING set.
    const running = new Map<string, string>();
    const peak: Record<string, number> = { k1: 0, k2: 0 };
    for (let after = 0; ; ) {
      const events = await stores[1]!.eventsSince(after, 1000);
      if (events.length === 0) break;
      for (const { command } of events) {
        if (command.status === 'RUNNING') running.set(command.id, command.concurrencyKey ?? '');
        else running.delete(command.id);
        for (const key of Object.keys(peak)) {
          const n = [...running.values()].filter((k) => k === key).length;
          peak[key] = Math.max(peak[key]!, n);
        }
      }
      after = events.at(-1)!.seq;
    }
    expect(peak).toEqual({ k1: 1, k2: 2 });
  });
});
