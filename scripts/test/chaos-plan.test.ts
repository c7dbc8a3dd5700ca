/** The chaos drill's schedule is a function of its seed: a failed run can be replayed. */
import { describe, expect, it } from 'vitest';
import { parseOptions, type ChaosOptions } from '../src/chaos/options.js';
import { agentLifeSeed, ALL_REPLICAS, lifeHasRandomFailures, makePlan, targetDelayMs } from '../src/chaos/plan.js';

const options = (seed: number) =>
  parseOptions(['--commands', '500', '--server-kills', '5', '--agent-kills', '7', '--seed', String(seed)]) as ChaosOptions;

describe('chaos schedule', () => {
  it('the same seed gives the same commands, kills, agent seeds and target delays; another seed does not', () => {
    const a = makePlan(options(42));
    expect(makePlan(options(42))).toEqual(a);
    expect(makePlan(options(43))).not.toEqual(a);
    expect(agentLifeSeed(42, 1, 3)).toBe(agentLifeSeed(42, 1, 3));
    expect(agentLifeSeed(42, 1, 3)).not.toBe(agentLifeSeed(42, 1, 4));
    expect(lifeHasRandomFailures(options(42), 2, 5)).toBe(lifeHasRandomFailures(options(42), 2, 5));
    expect(targetDelayMs(42, 'k', 1, 80)).toBe(targetDelayMs(42, 'k', 1, 80));
  });

  it('plans every command and every kill, kills ordered by progress, agents in range', () => {
    const plan = makePlan(options(7));
    expect(plan.commands).toHaveLength(500);
    expect(new Set(plan.commands.map((c) => c.key)).size).toBe(500);
    expect(plan.commands.some((c) => c.type === 'DELAY') && plan.commands.some((c) => c.type === 'HTTP_GET_JSON')).toBe(true);
    expect(plan.kills.filter((k) => k.target === 'server')).toHaveLength(5);
    expect(plan.kills.filter((k) => k.target === 'agent')).toHaveLength(7);
    const at = plan.kills.map((k) => k.atProgress);
    expect(at).toEqual([...at].sort((x, y) => x - y));
    for (const k of plan.kills.filter((k) => k.target === 'agent')) expect(k.agent).toBeGreaterThanOrEqual(0);
    for (const k of plan.kills) expect(k.agent).toBeLessThan(3);
  });

  it('replicas: server kills name a replica or all at once (at least one), seeded; one server keeps its schedule', () => {
    const o = (argv: string[]) => parseOptions(['--commands', '500', '--server-kills', '12', '--agent-kills', '7', '--seed', '9', ...argv]) as ChaosOptions;
    const two = makePlan(o(['--replicas', '2', '--database', 'postgres']));
    const serverKills = two.kills.filter((k) => k.target === 'server');
    expect(serverKills.some((k) => k.replica === ALL_REPLICAS)).toBe(true);
    expect(serverKills.some((k) => k.replica === 0) && serverKills.some((k) => k.replica === 1)).toBe(true);
    for (const k of serverKills) expect([ALL_REPLICAS, 0, 1]).toContain(k.replica);
    expect(makePlan(o(['--replicas', '2', '--database', 'postgres']))).toEqual(two);
    // The replica draws have their own stream: the rest of the schedule is the one-server one.
    const one = makePlan(o([]));
    expect(one.kills.filter((k) => k.target === 'server').every((k) => k.replica === 0)).toBe(true);
    expect(two.kills.map(({ replica: _, ...k }) => k)).toEqual(one.kills.map(({ replica: _, ...k }) => k));
    expect(two.commands).toEqual(one.commands);
  });

  it('--replicas above 1 needs --database postgres; a bad --database is refused', () => {
    expect(() => parseOptions(['--replicas', '2'])).toThrow(/--database postgres/);
    expect(() => parseOptions(['--database', 'mysql'])).toThrow(/expected sqlite or postgres/);
    expect(parseOptions([])).toMatchObject({ database: 'sqlite', replicas: 1 });
  });

  it('--no-random-failures: no agent life runs with the flag', () => {
    const o = parseOptions(['--no-random-failures', '--seed', '1']) as ChaosOptions;
    expect(o.randomFailures).toBe(false);
    expect(Array.from({ length: 50 }, (_, life) => lifeHasRandomFailures(o, 0, life)).some(Boolean)).toBe(false);
  });
});
