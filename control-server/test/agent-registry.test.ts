/** The agent registry on a real SQLite store: what its flushes write, and when they read back. */
import { describe, expect, test } from 'vitest';
import { AgentRegistry } from '../src/agent-registry.js';
import type { CommandStore } from '../src/store/store.js';
import { useSqliteStore } from './sqlite-test-store.js';

const current = useSqliteStore('agent-registry');

/** Counts the store's reads and writes of the agents table. */
function counting(store: CommandStore): { loads: number; saves: number } {
  const counts = { loads: 0, saves: 0 };
  const load = store.loadAgents.bind(store);
  const save = store.saveAgents.bind(store);
  store.loadAgents = (seenSince) => (counts.loads++, load(seenSince));
  store.saveAgents = (records) => (counts.saves++, save(records));
  return counts;
}

const advert = { queues: ['default'], types: ['DELAY'] };

describe('agent registry', () => {
  test('with one server on the store (SQLite), a flush writes the sightings and does not read the table back', async () => {
    const { store, clock } = current;
    const counts = counting(store);
    const registry = new AgentRegistry(store, { goneAfterMs: 60_000, flushMs: 3_600_000, now: clock.now, onError: (err) => { throw err; } });
    registry.start(); // reads what an earlier run stored: the one read
    for (const id of ['a1', 'a2', 'a3']) registry.polled(id, advert);
    await registry.flush();
    clock.advance(1_000);
    registry.polled('a2', advert); // a sighting, written by the next flush
    await registry.flush();
    await registry.flush();
    expect(counts.loads, 'reads of the agents table').toBe(1); // 4 before: one per flush
    expect(counts.saves).toBeGreaterThanOrEqual(2);
    const stored = await store.loadAgents(0);
    expect(stored.map((a) => [a.id, a.lastSeenAt - stored[0]!.lastSeenAt])).toEqual([['a1', 0], ['a2', 1_000], ['a3', 0]]);
    expect((await registry.list()).map((a) => a.id)).toEqual(['a1', 'a2', 'a3']);
    await registry.stop();
  });

  test('a store other servers write (PostgreSQL replicas) is read back at each flush: what another one stored shows up', async () => {
    const { store, clock } = current;
    const shared: CommandStore = Object.assign(Object.create(store) as CommandStore, { shared: true });
    const registry = new AgentRegistry(shared, { goneAfterMs: 60_000, flushMs: 3_600_000, now: clock.now, onError: (err) => { throw err; } });
    registry.start();
    registry.polled('here', advert);
    // Another replica's agent, written to the table behind this registry's back.
    await store.saveAgents([{ id: 'elsewhere', hostname: null, version: null, ...advert, concurrency: null, lastSeenAt: clock.now(), draining: false }]);
    await registry.flush();
    expect((await registry.list()).map((a) => a.id)).toEqual(['elsewhere', 'here']);
    await registry.stop();
  });
});
