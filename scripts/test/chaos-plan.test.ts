/** The chaos drill's schedule is a function of its seed: a failed run can be replayed. */
import { describe, expect, it } from 'vitest';
import { parseOptions, type ChaosOptions } from '../src/chaos/options.js';
import { agentLifeSeed, lifeHasRandomFailures, makePlan, targetDelayMs } from '../src/chaos/plan.js';

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

  it('--no-random-failures: no agent life runs with the flag', () => {
    const o = parseOptions(['--no-random-failures', '--seed', '1']) as ChaosOptions;
    expect(o.randomFailures).toBe(false);
    expect(Array.from({ length: 50 }, (_, life) => lifeHasRandomFailures(o, 0, life)).some(Boolean)).toBe(false);
  });
});
