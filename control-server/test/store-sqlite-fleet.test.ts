/**
 * The fleet as the SQLite store keeps it (GET /agents, GET /queues, drain): the agents table
 * (an agent's own update never undoes a drain nor moves its last-seen time back), RUNNING
 * commands per agent, and PENDING/RUNNING counts per queue with the oldest PENDING one.
 *
 * Equivalent mutants (sqlite.ts / sqlite-agents.ts):
 * - saveAgents(): `if (records.length > 0)` → always: an empty save is an empty write that
 *   stores nothing and logs nothing (it only costs a commit).
 */
import { describe, expect, test } from 'vitest';
import type { AgentRecord } from '../src/store/store.js';
import { delay, useSqliteStore } from './sqlite-test-store.js';

const t = useSqliteStore('store-fleet');
const LEASE_MS = 30_000;

const agent = (id: string, extra: Partial<AgentRecord> = {}): AgentRecord => ({
  id,
  hostname: `${id}.example`,
  version: '1.2.3',
  queues: ['default'],
  types: ['DELAY'],
  concurrency: 4,
  lastSeenAt: 1_000,
  draining: false,
  ...extra,
});

describe('agents', () => {
  test('saved agents load by last-seen time (at or after), in id order, with every field', async () => {
    await t.store.saveAgents([
      agent('b', { lastSeenAt: 2_000, queues: ['gpu', 'default'], types: ['DELAY', 'HTTP_GET_JSON'] }),
      agent('a', { lastSeenAt: 1_000, hostname: null, version: null, concurrency: null }),
      agent('c', { lastSeenAt: 999 }),
    ]);
    expect(await t.store.loadAgents(1_000)).toEqual([
      agent('a', { lastSeenAt: 1_000, hostname: null, version: null, concurrency: null }),
      agent('b', { lastSeenAt: 2_000, queues: ['gpu', 'default'], types: ['DELAY', 'HTTP_GET_JSON'] }),
    ]);
    expect((await t.store.loadAgents(1_001)).map((a) => a.id)).toEqual(['b']);
    expect(await t.store.loadAgents(2_001)).toEqual([]);
  });

  test("a drain stays through the agent's own updates; last seen never moves back; unknown ids are not drained", async () => {
    await t.store.saveAgents([agent('a', { lastSeenAt: 5_000 })]);
    expect(await t.store.drainAgent('a')).toBe(true);
    expect(await t.store.drainAgent('nobody')).toBe(false);
    // A late, older update from the agent (e.g. a registry flush racing a newer one).
    await t.store.saveAgents([agent('a', { lastSeenAt: 4_000, hostname: 'renamed', queues: ['gpu'], draining: false })]);
    expect(await t.store.loadAgents(0)).toEqual([agent('a', { lastSeenAt: 5_000, hostname: 'renamed', queues: ['gpu'], draining: true })]);
    await t.store.saveAgents([agent('a', { lastSeenAt: 6_000 })]);
    expect((await t.store.loadAgents(0))[0]).toMatchObject({ lastSeenAt: 6_000, draining: true });
  });

  test('an empty save stores nothing', async () => {
    await t.store.saveAgents([]);
    expect(await t.store.loadAgents(0)).toEqual([]);
  });
});

describe('counts', () => {
  test('RUNNING commands per agent; finished and PENDING ones are not counted', async () => {
    for (let i = 0; i < 5; i++) await t.store.submit(delay());
    const [a1] = await t.store.claimBatch('a1', LEASE_MS, 2);
    await t.store.claimBatch('a2', LEASE_MS, 1);
    expect(await t.store.runningByAgent()).toEqual(new Map([['a1', 2], ['a2', 1]]));
    await t.store.report(a1!.id, { agentId: 'a1', leaseId: a1!.leaseId, result: {} });
    expect(await t.store.runningByAgent()).toEqual(new Map([['a1', 1], ['a2', 1]]));
  });

  test('per queue: PENDING and RUNNING counts and the creation time of the oldest PENDING command', async () => {
    expect(await t.store.queueCounts()).toEqual([]);
    const t0 = t.clock.now();
    await t.store.submit(delay({ queue: 'gpu' }));
    t.clock.advance(10);
    await t.store.submit(delay());
    t.clock.advance(10);
    await t.store.submit(delay());
    await t.store.claimBatch('a1', LEASE_MS, 1, { queues: ['gpu'] });
    // The oldest of the default queue is claimed: its oldest PENDING is the next one.
    await t.store.claim('a1', LEASE_MS);
    const byQueue = Object.fromEntries((await t.store.queueCounts()).map((q) => [q.queue, q]));
    expect(byQueue).toEqual({
      gpu: { queue: 'gpu', pending: 0, running: 1, oldestPendingAt: null },
      default: { queue: 'default', pending: 1, running: 1, oldestPendingAt: t0 + 20 },
    });
  });
});
