import { writeSync } from 'node:fs';
import { mulberry32 } from '@agent-executor/common/seeded-random';

/**
 * Points in the life of a command where a crash drill may kill the agent:
 * - `after-start`: `started` is durable, the executor has not run yet;
 * - `after-finish`: the outcome is durable, the server has not heard of it (the window that
 *   broke the original agent);
 * - `after-report`: the server took the report, the outbox does not know it yet.
 */
export const DRILL_POINTS = ['after-start', 'after-finish', 'after-report'] as const;
export type DrillPoint = (typeof DRILL_POINTS)[number];

export interface CrashDrillOptions {
  /** `--kill-after=SECONDS`: SIGKILL after that long, wherever the agent is. */
  killAfterS?: number | undefined;
  /** `--random-failures`: SIGKILL at random drill points and at one random moment. */
  randomFailures?: boolean;
  /** `--seed=N` makes `--random-failures` repeatable. */
  seed?: number | undefined;
  /** `AGENT_CRASH_AT` (a test hook): SIGKILL at the first command that reaches this point. */
  crashAt?: DrillPoint | undefined;
}

/** Chance of dying at each drill point under --random-failures. */
const POINT_KILL_CHANCE = 0.15;
/** Under --random-failures the agent also dies at a random moment within this many ms. */
const RANDOM_KILL_WITHIN_MS = 30_000;

/**
 * Kills the agent with SIGKILL, the way a power cut or the OOM killer would: no `finally`, no
 * flush, no goodbye to the server. Only the outbox's durable writes survive, which is the point.
 */
export class CrashDrill {
  private readonly random: () => number;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly options: CrashDrillOptions) {
    this.random = options.seed === undefined ? Math.random : mulberry32(options.seed);
  }

  get enabled(): boolean {
    const o = this.options;
    return o.killAfterS !== undefined || o.randomFailures === true || o.crashAt !== undefined;
  }

  /** Arms the timers. They are unref'ed: a drill never keeps an agent alive that wants to exit. */
  start(): void {
    const { killAfterS, randomFailures } = this.options;
    const delays: number[] = [];
    if (killAfterS !== undefined) delays.push(killAfterS * 1000);
    if (randomFailures) delays.push(this.random() * RANDOM_KILL_WITHIN_MS);
    if (delays.length === 0) return;
    const ms = Math.min(...delays);
    this.timer = setTimeout(() => kill(`timer after ${Math.round(ms)} ms`), ms);
    this.timer.unref();
  }

  stop(): void {
    clearTimeout(this.timer);
  }

  /** Called by the worker at each drill point; returns only if the agent is to live on. */
  at(point: DrillPoint, commandId: string): void {
    if (this.options.crashAt === point) kill(`AGENT_CRASH_AT=${point} (command ${commandId})`);
    if (this.options.randomFailures && this.random() < POINT_KILL_CHANCE) kill(`random failure at ${point} (command ${commandId})`);
  }
}

function kill(why: string): never {
  // Synchronous write: the line must be out before the process vanishes.
  writeSync(2, `agent: crash drill: SIGKILL now: ${why}\n`);
  process.kill(process.pid, 'SIGKILL');
  // SIGKILL is delivered at once; this only satisfies the type checker.
  throw new Error('unreachable');
}
