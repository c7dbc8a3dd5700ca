/**
 * Routing and flow control (SPEC §9), part of the store contract (store-contract.ts runs it for
 * every store): queues and types, priority, runAt, per-key concurrency and where a PENDING
 * command stands. Time is the injected clock.
 */
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import type { ClaimedCommand, SubmitBody } from '@agent-executor/common';
import { mulberry32 } from '@agent-executor/common/seeded-random';
import type { CommandStore, Route } from '../src/store/store.js';
import { TestClock } from './helpers.js';
import type { MakeStore } from './store-contract.js';

const LEASE_MS = 30_000;
const delay = (extra: Partial<SubmitBody> = {}): SubmitBody => ({ type: 'DELAY', payload: { ms: 1 }, ...extra }) as SubmitBody;

export function describeRoutingContract(name: string, makeStore: MakeStore): void {
  describe(`CommandStore routing contract: ${name}`, () => {
    let clock: TestClock;
    let store: CommandStore;
    beforeEach(async () => {
      clock = new TestClock();
      store = await makeStore({ now: clock.now, random: () => 0.5 });
    });
    afterEach(async () => {
      await store.close();
    });
    const submit = async (extra: Partial<SubmitBody> = {}) => (await store.submit(delay(extra))).command;
    const claimAll = async (agentId: string, route?: Partial<Route>, max = 100) =>
      (await store.claimBatch(agentId, LEASE_MS, max, route)).map((c) => c.id);
    const complete = (c: ClaimedCommand) => store.report(c.id, { agentId: c.agentId ?? '', leaseId: c.leaseId, result: {} });

    test('a command goes only to an agent serving its queue and type; defaults: queue default, built-in types', async () => {
      const plain = await submit();
      const gpu = await submit({ queue: 'gpu' });
      const http = (await store.submit({ type: 'HTTP_GET_JSON', payload: { url: 'https://example.com/' } })).command;
      expect(plain).toMatchObject({ queue: 'default', priority: 0, runAt: null, concurrencyKey: null, concurrencyLimit: null });
      expect(await claimAll('a1', { queues: ['other'] })).toEqual([]);
      expect(await claimAll('a2', { queues: ['default', 'gpu'], types: ['HTTP_GET_JSON'] })).toEqual([http.id]);
      expect(await claimAll('a3', { types: ['DELAY'] })).toEqual([plain.id]);
      expect(await claimAll('a4')).toEqual([]);
      expect(await claimAll('a5', { queues: ['gpu'] })).toEqual([gpu.id]);
    });

    test('claimEach gives each request only what its route serves, even after another route ran dry', async () => {
      const b = await submit({ queue: 'b' });
      const answers = await store.claimEach(
        [
          { agentId: 'on-a', max: 1, queues: ['a'] },
          { agentId: 'on-a-too', max: 1, queues: ['a'] },
          { agentId: 'on-b', max: 1, queues: ['b'] },
        ],
        LEASE_MS,
      );
      expect(answers.map((list) => list.map((c) => c.id))).toEqual([[], [], [b.id]]);
    });

    test('a type the server never heard of goes only to agents that advertise it', async () => {
      const resize = (await store.submit({ type: 'RESIZE_IMAGE', payload: { width: 10 } } as unknown as SubmitBody)).command;
      expect(await claimAll('old-agent')).toEqual([]);
      expect(await claimAll('old-agent', { types: ['DELAY', 'HTTP_GET_JSON'] })).toEqual([]);
      expect(await claimAll('new-agent', { types: ['DELAY', 'RESIZE_IMAGE'] })).toEqual([resize.id]);
    });

    test('higher priority first, first in first out within a priority, across queues and types', async () => {
      const low = await submit({ priority: -5 });
      const mid1 = await submit();
      const high = await submit({ priority: 100, queue: 'q2' });
      const mid2 = (await store.submit({ type: 'HTTP_GET_JSON', payload: { url: 'https://example.com/' } })).command;
      const order = await claimAll('a', { queues: ['default', 'q2'] });
      expect(order).toEqual([high.id, mid1.id, mid2.id, low.id]);
    });

    test('one queue, two types: priority first, then submission, merged across the types and cut at max', async () => {
      const http = (extra: Partial<SubmitBody> = {}) =>
        store.submit({ type: 'HTTP_GET_JSON', payload: { url: 'https://example.com/' }, ...extra } as SubmitBody).then((o) => o.command);
      const d1 = await submit();
      const h1 = await http({ priority: 3 });
      const d2 = await submit({ priority: 3 });
      const h2 = await http();
      const d3 = await submit({ priority: -1 });
      const route = { types: ['DELAY', 'HTTP_GET_JSON'] };
      expect(await claimAll('a', route, 3)).toEqual([h1.id, d2.id, d1.id]);
      expect(await claimAll('a', route, 1)).toEqual([h2.id]);
      expect(await claimAll('a', route)).toEqual([d3.id]);
    });

    test('runAt: not claimable before, claimable from then; its time is kept', async () => {
      const at = clock.now() + 60_000;
      const later = await submit({ runAt: new Date(at).toISOString() });
      const past = await submit({ runAt: new Date(clock.now() - 1000).toISOString() });
      expect(later.availableAt).toBe(new Date(at).toISOString());
      expect(later.runAt).toBe(new Date(at).toISOString());
      expect(await claimAll('a')).toEqual([past.id]);
      expect(await store.nextWakeAt()).toMatchObject({ availableAt: at });
      expect(await store.pendingState(later.id)).toMatchObject({ state: 'scheduled', until: at });
      clock.advance(59_999);
      expect(await claimAll('a')).toEqual([]);
      clock.advance(1);
      expect(await store.promoteDue()).toBe(false);
      expect(await claimAll('a')).toEqual([later.id]);
    });

    test('a key never has more than its limit RUNNING; the rest are held and start as slots free', async () => {
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) ids.push((await submit({ concurrencyKey: 'tenant-1', concurrencyLimit: 2 })).id);
      const other = await submit();
      const first = await store.claimBatch('a', LEASE_MS, 10);
      expect(first.map((c) => c.id)).toEqual([ids[0], ids[1], other.id]);
      expect(await store.pendingState(ids[2]!)).toMatchObject({ state: 'held', running: 2, limit: 2 });
      await complete(first[0]!);
      expect(await claimAll('b')).toEqual([ids[2]]);
      // Cancel of a held command frees nothing; a canceled ready one frees its slot.
      await store.cancel(ids[4]!);
      await complete(first[1]!);
      expect(await store.pendingState(ids[3]!)).toMatchObject({ state: 'ready' });
      await store.cancel(ids[3]!);
      expect(await claimAll('b')).toEqual([]);
      // A later submit raises the key's limit: held commands start at once.
      const more = [await submit({ concurrencyKey: 'tenant-1', concurrencyLimit: 3 }), await submit({ concurrencyKey: 'tenant-1', concurrencyLimit: 3 })];
      expect(await claimAll('b')).toEqual([more[0]!.id, more[1]!.id]);
    });

    test('a key at its limit does not stand in the way: a lower-priority command behind its backlog is claimed', async () => {
      const keyed = { concurrencyKey: 'busy', concurrencyLimit: 1, priority: 5 };
      for (let i = 0; i < 20; i++) await submit(keyed);
      const behind = await submit();
      expect(await claimAll('a', undefined, 1)).toHaveLength(1);
      expect(await claimAll('b', undefined, 1), 'the key is at its limit; the next command goes').toEqual([behind.id]);
    });

    test('an expired lease and a retryable failure give the key slot back', async () => {
      const a = await submit({ concurrencyKey: 'k', concurrencyLimit: 1 });
      const b = await submit({ concurrencyKey: 'k', concurrencyLimit: 1 });
      const [ca] = await store.claimBatch('x', LEASE_MS, 5);
      expect(ca?.id).toBe(a.id);
      clock.advance(LEASE_MS + 1);
      await store.requeueExpired();
      const [cb] = await store.claimBatch('y', LEASE_MS, 5);
      expect(cb?.id).toBe(b.id);
      await store.report(b.id, { agentId: 'y', leaseId: cb!.leaseId, status: 'FAILED', retryable: true, error: 'x' });
      clock.advance(60_000);
      expect((await store.claimBatch('z', LEASE_MS, 5)).map((c) => c.id)).toEqual([a.id]);
    });

    test('property: random submits, claims by 3 agents, reports, cancels and expiries never exceed a limit', async () => {
      const random = mulberry32(1313);
      const pick = <T>(items: readonly T[]) => items[Math.floor(random() * items.length)]!;
      const limits: Record<string, number> = { k1: 1, k2: 2, k3: 3 };
      const running = new Map<string, ClaimedCommand>();
      const check = async () => {
        const perKey = new Map<string, number>();
        for (const c of running.values()) {
          const now = await store.get(c.id);
          if (now?.status === 'RUNNING' && now.concurrencyKey) perKey.set(now.concurrencyKey, (perKey.get(now.concurrencyKey) ?? 0) + 1);
        }
        for (const [key, n] of perKey) expect(n, `${key} over its limit`).toBeLessThanOrEqual(limits[key]!);
      };
      for (let step = 0; step < 400; step++) {
        const r = random();
        if (r < 0.35) {
          const key = pick(['k1', 'k2', 'k3', undefined]);
          await submit(key ? { concurrencyKey: key, concurrencyLimit: limits[key]!, priority: Math.floor(random() * 3) } : {});
        } else if (r < 0.65) {
          const agent = pick(['a1', 'a2', 'a3']);
          const got = await store.claimEach([{ agentId: agent, max: 1 + Math.floor(random() * 3) }, { agentId: `${agent}-b`, max: 2 }], LEASE_MS);
          for (const c of got.flat()) running.set(c.id, c);
        } else if (r < 0.9 && running.size > 0) {
          const c = pick([...running.values()]);
          running.delete(c.id);
          const failed = random() < 0.3;
          await store
            .report(c.id, { agentId: c.agentId ?? '', leaseId: c.leaseId, ...(failed ? { status: 'FAILED', retryable: true, error: 'e' } : {}) })
            .catch(() => undefined);
        } else if (r < 0.95) {
          clock.advance(Math.floor(random() * 40_000));
          await store.requeueExpired();
          await store.promoteDue();
        } else {
          const list = await store.list({ status: 'PENDING', limit: 5 });
          if (list.commands[0]) await store.cancel(list.commands[0].id);
        }
        await check();
      }
    });
  });
}
