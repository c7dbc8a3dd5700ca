import { setTimeout as sleep } from 'node:timers/promises';
import type { ClaimedCommand } from '@agent-executor/common';
import type { Logger } from 'pino';
import { runAttempt } from './attempt.js';
import type { CrashDrill } from './crash-drill.js';
import type { Executors } from './executors/index.js';
import type { Outbox } from './outbox.js';
import { Reporter } from './reporter.js';
import { PollRefused, type ServerClient } from './server-client.js';

export interface WorkerOptions {
  client: ServerClient;
  outbox: Outbox;
  executors: Executors;
  agentId: string;
  concurrency: number;
  longPollWaitS: number;
  pollIntervalMs: number;
  drill: CrashDrill;
  log: Logger;
}

/** After the drain time, aborted attempts get this long to report before the agent gives up on them. */
const REPORT_GRACE_MS = 2_000;

/**
 * The agent's loop, in the pg-boss shape: `concurrency` slots, each `while (!stopping) { claim →
 * run → report }`, with cancellable waits. `stop()` may be called any number of times and ends
 * within its drain limit (plus a short grace for the last reports).
 */
export class Worker {
  private stopping = false;
  private life: Promise<void> | undefined;
  private stopped: Promise<void> | undefined;
  private fatal: Error | undefined;
  private running = 0;
  /** Aborts polls, idle waits and start-up recovery. */
  private readonly polls = new AbortController();
  /** Aborts running attempts once the drain time is over. */
  private readonly shutdown = new AbortController();
  /** Gives up reports still retrying at the very end (their outcomes stay in the outbox). */
  private readonly reports = new AbortController();
  private readonly reporter: Reporter;
  private readonly log: Logger;

  constructor(private readonly options: WorkerOptions) {
    this.log = options.log;
    this.reporter = new Reporter(options);
  }

  /** Runs until stopped (resolves after the drain), or rejects when the server refuses our polls. */
  run(): Promise<void> {
    this.life ??= this.live();
    return this.life;
  }

  stop(drainMs: number): Promise<void> {
    this.stopped ??= this.drain(drainMs);
    return this.stopped;
  }

  private async live(): Promise<void> {
    // Outcomes left by a previous life go out before any new work comes in.
    await this.reporter.recover(this.polls.signal);
    const { concurrency, longPollWaitS } = this.options;
    if (!this.stopping) {
      this.log.info(`agent ${this.options.agentId} polling (concurrency ${concurrency}, long-poll ${longPollWaitS} s)`);
    }
    await Promise.all(Array.from({ length: concurrency }, () => this.slot()));
    if (this.fatal) throw this.fatal;
  }

  private async drain(drainMs: number): Promise<void> {
    this.stopping = true;
    this.polls.abort();
    const life = (this.life ?? Promise.resolve()).catch(() => {});
    if (this.running > 0) this.log.info(`stopping: letting ${this.running} running command(s) finish (up to ${drainMs} ms)`);
    if (await settlesWithin(life, drainMs)) return;
    this.log.warn(`stopping: drain time over; aborting ${this.running} command(s) as interrupted`);
    this.shutdown.abort();
    if (await settlesWithin(life, REPORT_GRACE_MS)) return;
    this.reports.abort();
    await life;
  }

  private async slot(): Promise<void> {
    while (!this.stopping) {
      const claimed = await this.poll();
      if (claimed) await this.handle(claimed.command, claimed.receivedAt);
    }
  }

  private async poll(): Promise<{ command: ClaimedCommand; receivedAt: number } | undefined> {
    const { client, longPollWaitS, pollIntervalMs } = this.options;
    const sentAt = Date.now();
    try {
      const command = await client.next(longPollWaitS, this.polls.signal);
      if (command) return { command, receivedAt: Date.now() };
      // A long-poll answered early and empty (the server is shutting down) must not become a
      // busy loop; a plain poll waits POLL_INTERVAL between polls by definition.
      const early = Date.now() - sentAt < longPollWaitS * 1000 - 1000;
      if (longPollWaitS === 0 || early) await this.idle(pollIntervalMs);
    } catch (err) {
      if (this.stopping) return undefined;
      if (err instanceof PollRefused) {
        this.fatal = err;
        this.log.error(`${err.message}; stopping`);
        void this.stop(0);
        return undefined;
      }
      this.log.error({ err }, 'poll failed');
      await this.idle(pollIntervalMs);
    }
    return undefined;
  }

  private async idle(ms: number): Promise<void> {
    await sleep(ms, undefined, { signal: this.polls.signal }).catch(() => {});
  }

  private async handle(command: ClaimedCommand, receivedAt: number): Promise<void> {
    const { outbox, drill, client, agentId, executors } = this.options;
    const { id, type, leaseId } = command;
    const log = this.log.child({ commandId: id });
    this.running++;
    try {
      const plan = outbox.begin(id, leaseId, type);
      if (plan.kind === 'replay') {
        log.info(`${type} ${id} already finished here (${plan.outcome.status}): reporting the kept outcome, not running it again`);
        await this.reporter.deliver(id, leaseId, plan.outcome, this.reports.signal);
        return;
      }
      log.info(`${type} ${id} started (attempt ${command.attempts} of ${command.maxAttempts})`);
      drill.at('after-start', id);
      const startedAt = performance.now();
      const end = await runAttempt(command, receivedAt, { client, agentId, executors, shutdown: this.shutdown.signal, log });
      if (end.kind === 'lease-lost') {
        outbox.drop(id, leaseId, `lease lost: ${end.why}`);
        log.warn(`${type} ${id} stopped, lease lost (${end.why}): not reported, the command is the server's again`);
        return;
      }
      const { outcome } = end;
      if (!outbox.finish(id, leaseId, outcome)) {
        log.warn(`${type} ${id}: a newer lease took over while this attempt ran; its outcome is dropped`);
        return;
      }
      const took = Math.round(performance.now() - startedAt);
      const detail = outcome.error === null ? '' : ` (${outcome.error}${outcome.retryable ? ', retryable' : ''})`;
      log.info(`${type} ${id} ${outcome.status}${detail} in ${took} ms`);
      drill.at('after-finish', id);
      await this.reporter.deliver(id, leaseId, outcome, this.reports.signal);
    } catch (err) {
      // The outbox row (if any) still says where this command got to; the next start deals with it.
      log.error({ err }, `${type} ${id}: ${(err as Error).message}`);
    } finally {
      this.running--;
    }
  }
}

/** True when `promise` settled within `ms`. */
async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  const settled = promise.then(() => true);
  try {
    return await Promise.race([settled, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
