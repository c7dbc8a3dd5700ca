/**
 * The seeded schedule of a drill: which commands are submitted in which order, and when each kill
 * happens. Kills are placed on the drill's progress (the share of submitted commands that are
 * terminal), not on the clock: on a slow or busy machine they still land while work is going on,
 * and the same seed gives the same schedule.
 */
import type { ChaosOptions } from './options.js';
import { derive, intBetween, mulberry32 } from './random.js';

export interface PlannedCommand {
  index: number;
  /** Idempotency-Key of its submit, and its path on the counting target. */
  key: string;
  type: 'HTTP_GET_JSON' | 'DELAY';
  /** DELAY only. */
  delayMs: number;
  /** Routing (SPEC §9): both queues are served by every agent of the fleet. */
  queue: string;
  priority: number;
  /** A third of the commands share one of a few keys, each with its limit. */
  concurrencyKey?: string;
  concurrencyLimit?: number;
}

/** The queues the drill submits to; the fleet's agents serve them all (AGENT_QUEUES). */
export const CHAOS_QUEUES = ['default', 'chaos'] as const;
/** Concurrency keys and their limits: small, so the fleet keeps hitting them. */
const CHAOS_KEYS = [
  { key: 'tenant-a', limit: 1 },
  { key: 'tenant-b', limit: 2 },
  { key: 'tenant-c', limit: 3 },
] as const;

export interface PlannedKill {
  /** Position in the schedule, from 1. */
  n: number;
  target: 'server' | 'agent';
  /** Agent index (0-based); agent kills only. */
  agent: number;
  /** Server kills: the replica (0-based), or ALL_REPLICAS for every replica at once. */
  replica: number;
  /** Fires once this share of the commands is terminal… */
  atProgress: number;
  /** …plus this many ms, so kills do not line up with the progress probe. */
  jitterMs: number;
}

export interface Plan {
  commands: PlannedCommand[];
  kills: PlannedKill[];
}

/** A server kill of every replica at once. */
export const ALL_REPLICAS = -1;
/** With replicas, the share of server kills that take every replica down at once. */
const ALL_AT_ONCE_SHARE = 0.25;

/** Kills are spread over this share of the run's progress: early enough to hit work in flight. */
const FIRST_KILL_AT = 0.02;
const LAST_KILL_AT = 0.9;

export function makePlan(o: ChaosOptions): Plan {
  const random = mulberry32(derive(o.seed, 'plan'));
  // Its own stream, so a seed still gives the types, delays and kills it gave before routing.
  const routing = mulberry32(derive(o.seed, 'routing'));
  const commands: PlannedCommand[] = [];
  for (let index = 0; index < o.commands; index++) {
    const http = random() < o.httpShare;
    const keyed = routing() < 1 / 3 ? CHAOS_KEYS[intBetween(routing, 0, CHAOS_KEYS.length - 1)] : undefined;
    commands.push({
      index,
      key: `chaos-${o.seed}-${index}`,
      type: http ? 'HTTP_GET_JSON' : 'DELAY',
      delayMs: http ? 0 : intBetween(random, 0, o.delayMaxMs),
      queue: CHAOS_QUEUES[intBetween(routing, 0, CHAOS_QUEUES.length - 1)]!,
      priority: intBetween(routing, -2, 2),
      ...(keyed ? { concurrencyKey: keyed.key, concurrencyLimit: keyed.limit } : {}),
    });
  }
  const kills: Omit<PlannedKill, 'n'>[] = [];
  const at = () => FIRST_KILL_AT + random() * (LAST_KILL_AT - FIRST_KILL_AT);
  // Its own stream too, so a seed gives a one-server run the schedule it gave before replicas.
  const replicas = mulberry32(derive(o.seed, 'replicas'));
  const replica = (i: number) => {
    if (o.replicas === 1) return 0;
    // The second server kill always takes every replica down, so that every run has one.
    if (i === 1 || replicas() < ALL_AT_ONCE_SHARE) return ALL_REPLICAS;
    return intBetween(replicas, 0, o.replicas - 1);
  };
  for (let i = 0; i < o.serverKills; i++) {
    kills.push({ target: 'server', agent: -1, replica: replica(i), atProgress: at(), jitterMs: intBetween(random, 0, 500) });
  }
  for (let i = 0; i < o.agentKills; i++) {
    kills.push({ target: 'agent', agent: intBetween(random, 0, o.agents - 1), replica: -1, atProgress: at(), jitterMs: intBetween(random, 0, 500) });
  }
  kills.sort((a, b) => a.atProgress - b.atProgress);
  return { commands, kills: kills.map((k, i) => ({ ...k, n: i + 1 })) };
}

/** The --seed of an agent's n-th life: each life dies at different moments, reproducibly. */
export function agentLifeSeed(seed: number, agent: number, life: number): number {
  return derive(seed, 'agent', agent, life);
}

/** Whether an agent's n-th life runs with --random-failures. */
export function lifeHasRandomFailures(o: ChaosOptions, agent: number, life: number): boolean {
  return o.randomFailures && mulberry32(derive(o.seed, 'random-failures', agent, life))() < o.randomFailureShare;
}

/** The target's response delay for the n-th request of one command. */
export function targetDelayMs(seed: number, key: string, request: number, maxMs: number): number {
  return maxMs === 0 ? 0 : derive(seed, 'target', key, request) % (maxMs + 1);
}
