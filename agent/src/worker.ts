import { setTimeout as sleep } from 'node:timers/promises';
import { MAX_BATCH_CLAIM, MAX_RESULT_BYTES, type AgentClaim } from '@agent-executor/common';
import type { Logger } from 'pino';
import { runAttempt } from './attempt.js';
import type { CrashDrill } from './crash-drill.js';
import type { Executors } from './executors/index.js';
import type { AgentMetrics } from './metrics.js';
import { ActivitySummary } from './activity-summary.js';
import type { Outbox } from './outbox.js';
import type { OutboxWrites } from './outbox-writes.js';
import { Reporter } from './reporter.js';
import { fitOutcome } from './result-fit.js';
import { PollRefused, type ServerClient } from './server-client.js';

export interface WorkerOptions {
  client: ServerClient;
  outbox: Outbox;
  /** Every outbox write of the loop goes through it: one write of one commit per turn, not one per command. */
  writes: OutboxWrites;
  executors: Executors;
  agentId: string;
  concurrency: number;
  longPollWaitS: number;
  pollIntervalMs: number;
  drill: CrashDrill;
  log: Logger;
  /** Counts claims and executions. */
  metrics?: AgentMetrics;
  /** How often the `info` summary line (claimed, completed, failed) is logged; default 10 s. */
  summaryEveryMs?: number;
}

/** A drain the server asked for waits for the running commands (a timer's longest delay, ~24.8 days). */
const NO_DRAIN_LIMIT_MS = 2 ** 31 - 1;
/** After the drain time, aborted attempts get this long to report before the agent gives up on them. */
const REPORT_GRACE_MS = 2_000;

/**
 * The agent's loop, in the pg-boss shape: one fetch loop `while (!stopping) { wait for a free
 * slot → claim as many commands as slots are free → hand each to a slot }`, with cancellable
 * waits. A slot is taken from the claim until the executor is done; keeping and reporting the
 * outcome goes on beside the next command (batched with the other outcomes of the same moment).
 * `stop()` may be called any number of times and ends within its drain limit (plus a short
 * grace for the last reports).
 */
export class Worker {
  private stopping = false;
  private life: Promise<void> | undefined;
  private stopped: Promise<void> | undefined;
  private fatal: Error | undefined;
  /** Commands claimed and not done executing: the slots in use. */
  private running = 0;
  /**
   * Attempts done executing whose outcome is not yet handed to the reporter (being written as
   * `finished`): a report is about to go, and a claim for the freed slots can ride along with it.
   */
  private finishing = 0;
  /** Slots the poll that is out asks for (0: none is out). */
  private polling = 0;
  /** The poll that is out, or the last one: the loop waits for it before it ends. */
  private lastPoll: Promise<void> = Promise.resolve();
  /** Every command handled and not done (its report included): a drain waits for all of them. */
  private readonly handling = new Set<Promise<void>>();
  /** Wakes the fetch loop when it waits for a free slot. */
  private wake: (() => void) | undefined;
  /** Aborts polls, idle waits and start-up recovery. */
  private readonly polls = new AbortController();
  /** Aborts running attempts once the drain time is over. */
  private readonly shutdown = new AbortController();
  /** Gives up reports still retrying at the very end (their outcomes stay in the outbox). */
  private readonly reports = new AbortController();
  private readonly reporter: Reporter;
  private readonly log: Logger;
  /**
   * Outcomes waiting for the server's answer; past this many the loop claims nothing more, so an
   * agent whose reports keep failing does not go on taking work it cannot hand back.
   */
  private readonly maxReporting: number;
  /** Per-command lines are `debug`: checked once, so that their text is not built for nothing. */
  private readonly debug: boolean;
  private readonly summary: ActivitySummary;

  constructor(private readonly options: WorkerOptions) {
    this.log = options.log;
    this.reporter = new Reporter(options);
    this.maxReporting = Math.max(MAX_BATCH_CLAIM, 4 * options.concurrency);
    this.debug = options.log.isLevelEnabled('debug');
    this.summary = new ActivitySummary(options.log, options.summaryEveryMs ?? 10_000);
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

  /**
   * The server drains this agent (POST /agents/:id/drain): it claims nothing more, lets every
   * running command finish however long it takes, reports, and `run()` resolves (exit 0).
   */
  drainRequested(): void {
    if (this.stopping) return;
    this.log.info(`drained by the server: claiming nothing more; ${this.running} running command(s) finish first`);
    void this.stop(NO_DRAIN_LIMIT_MS);
  }

  private async live(): Promise<void> {
    // Outcomes left by a previous life go out before any new work comes in.
    await this.reporter.recover(this.polls.signal);
    const { concurrency, longPollWaitS } = this.options;
    if (!this.stopping) {
      this.log.info(`agent ${this.options.agentId} polling (concurrency ${concurrency}, long-poll ${longPollWaitS} s)`);
    }
    this.summary.start();
    try {
      await this.fetch();
      while (this.handling.size > 0) await Promise.all(this.handling);
    } finally {
      this.summary.stop();
    }
    if (this.fatal) throw this.fatal;
  }

  private async drain(drainMs: number): Promise<void> {
    this.stopping = true;
    this.polls.abort();
    this.wake?.();
    const life = (this.life ?? Promise.resolve()).catch(() => {});
    if (this.running > 0) this.log.info(`stopping: letting ${this.running} running command(s) finish (up to ${drainMs} ms)`);
    if (await settlesWithin(life, drainMs)) return;
    this.log.warn(`stopping: drain time over; aborting ${this.running} command(s) as interrupted`);
    this.shutdown.abort();
    if (await settlesWithin(life, REPORT_GRACE_MS)) return;
    this.reports.abort();
    await life;
  }

  /**
   * The fetch loop: claims for the free slots only, so nothing claimed waits for a slot. A poll
   * does not hold the loop: while it is out (at most one), slots that free up claim along with
   * their reports — otherwise, when exchanges take longer than commands, every freed slot would
   * wait for the poll, then poll on its own while its outcome went out in a report of its own.
   */
  private async fetch(): Promise<void> {
    while (!this.stopping) {
      const free = this.free;
      const busy = this.handling.size - this.running >= this.maxReporting;
      // A claim goes only with an outcome already handed to the reporter, while one is still being
      // written (finishing) or a poll is out: made earlier, it found no report to ride with when
      // the reporter's turn came first, and polled on its own — two exchanges instead of one, and
      // the slots split into groups that stayed apart (measured: a poll per 26 commands,
      // throughput scenario). The worker wakes this loop when an outcome is handed over.
      const nothingToRideWith = this.reporter.waiting === 0 && (this.finishing > 0 || this.polling > 0);
      if (free <= 0 || busy || nothingToRideWith) {
        await new Promise<void>((resolve) => (this.wake = resolve));
        this.wake = undefined;
        continue;
      }
      // A report is about to go: the claim for the slots free when it leaves rides along (one
      // exchange, not two). One that did not ride (nothing left to report by then): look again.
      if (this.reporter.waiting > 0) {
        const along = await this.reporter.claimAlong(() => Math.min(this.free, MAX_BATCH_CLAIM), this.polls.signal);
        if (along) this.take(along);
      } else if (this.polling === 0) this.startPoll(Math.min(free, MAX_BATCH_CLAIM));
    }
    await this.lastPoll;
  }

  /** Slots neither running a command nor held by the poll on its way. */
  private get free(): number {
    return this.options.concurrency - this.running - this.polling;
  }

  /** A poll for `max` slots, out while the loop goes on; its commands are taken when it answers. */
  private startPoll(max: number): void {
    this.polling = max;
    this.lastPoll = this.poll(max).then((claimed) => {
      this.polling = 0;
      this.take(claimed);
      this.wake?.();
    });
  }

  private take(claimed: AgentClaim[]): void {
    const receivedAt = Date.now();
    this.options.metrics?.claims.inc(claimed.length);
    this.summary.claimed += claimed.length;
    for (const command of claimed) this.dispatch(command, receivedAt);
    // Each dispatch asked for its `started` row synchronously: one commit for all of them, now.
    if (claimed.length > 0) this.options.writes.flush();
  }

  private dispatch(command: AgentClaim, receivedAt: number): void {
    this.running++;
    let held = true;
    const release = () => {
      if (!held) return;
      held = false;
      this.running--;
      this.wake?.();
    };
    const handled: Promise<void> = this.handle(command, receivedAt, release).finally(() => {
      release();
      this.handling.delete(handled);
      this.wake?.();
    });
    this.handling.add(handled);
  }

  private async poll(max: number): Promise<AgentClaim[]> {
    const { client, longPollWaitS, pollIntervalMs } = this.options;
    const sentAt = Date.now();
    try {
      const commands = await client.claim(max, longPollWaitS, this.polls.signal);
      if (commands.length > 0) return commands;
      // A long-poll answered early and empty (the server is shutting down) must not become a
      // busy loop; a plain poll waits POLL_INTERVAL between polls by definition.
      const early = Date.now() - sentAt < longPollWaitS * 1000 - 1000;
      if (longPollWaitS === 0 || early) await this.idle(pollIntervalMs);
    } catch (err) {
      if (this.stopping) return [];
      if (err instanceof PollRefused) {
        this.fatal = err;
        this.log.error(`${err.message}; stopping`);
        void this.stop(0);
        return [];
      }
      this.log.error({ err }, 'poll failed');
      await this.idle(pollIntervalMs);
    }
    return [];
  }

  private async idle(ms: number): Promise<void> {
    await sleep(ms, undefined, { signal: this.polls.signal }).catch(() => {});
  }

  /** Runs one claimed command; `release` frees its slot once the executor is done. */
  private async handle(command: AgentClaim, receivedAt: number, release: () => void): Promise<void> {
    const { writes, drill, client, agentId, executors, metrics } = this.options;
    const { id, type, leaseId } = command;
    // Every line about this command names it and its attempt, in a field a log query can use.
    // Made on first use: most commands log nothing (their lines are debug).
    let child: Logger | undefined;
    const commandLog = () => (child ??= this.log.child({ commandId: id, attempt: command.attempts }));
    let finishing = false;
    try {
      const plan = await writes.begin(id, leaseId, type);
      if (plan.kind === 'replay') {
        release();
        this.summary.replayed++;
        commandLog().info(`${type} ${id} already finished here (${plan.outcome.status}): reporting the kept outcome, not running it again`);
        await this.reporter.deliver(id, leaseId, plan.outcome, this.reports.signal);
        return;
      }
      if (this.debug) commandLog().debug(`${type} ${id} started (attempt ${command.attempts} of ${command.maxAttempts})`);
      drill.at('after-start', id);
      const startedAt = performance.now();
      const end = await runAttempt(command, receivedAt, { client, agentId, executors, shutdown: this.shutdown.signal, log: commandLog });
      // The slot is free once the executor is done: the next claim goes out while this outcome
      // is written, with its report when it can (report-and-claim).
      finishing = end.kind === 'finished';
      if (finishing) this.finishing++;
      release();
      const outcomeLabel = end.kind === 'lease-lost' ? 'LEASE_LOST' : end.outcome.status;
      metrics?.executions.inc({ type, outcome: outcomeLabel });
      metrics?.executionSeconds.observe({ type, outcome: outcomeLabel }, (performance.now() - startedAt) / 1000);
      if (end.kind === 'lease-lost') {
        this.summary.leaseLost++;
        await writes.drop(id, leaseId, `lease lost: ${end.why}`);
        commandLog().warn(`${type} ${id} stopped, lease lost (${end.why}): not reported, the command is the server's again`);
        return;
      }
      // Cut down here, before it is kept: an outcome the server cannot take would sit in the
      // outbox unreported while the lease runs out and the command is run again and again.
      const outcome = fitOutcome(end.outcome);
      if (outcome !== end.outcome) commandLog().warn(`${type} ${id}: its result does not fit a report (over ${MAX_RESULT_BYTES} bytes of JSON or too deep): cut down`);
      const kept = await writes.finish(id, leaseId, outcome);
      if (!kept) {
        commandLog().warn(`${type} ${id}: a newer lease took over while this attempt ran; its outcome is dropped`);
        return;
      }
      if (outcome.status === 'COMPLETED') this.summary.completed++;
      else this.summary.failed++;
      if (this.debug) {
        const took = Math.round(performance.now() - startedAt);
        const detail = outcome.error === null ? '' : ` (${outcome.error}${outcome.retryable ? ', retryable' : ''})`;
        commandLog().debug(`${type} ${id} ${outcome.status}${detail} in ${took} ms`);
      }
      drill.at('after-finish', id);
      const delivered = this.reporter.deliver(id, leaseId, outcome, this.reports.signal);
      this.finishing--;
      finishing = false;
      this.wake?.(); // a claim may ride with this report
      await delivered;
    } catch (err) {
      // The outbox row (if any) still says where this command got to; the next start deals with it.
      commandLog().error({ err }, `${type} ${id}: ${(err as Error).message}`);
    } finally {
      if (finishing) this.finishing--;
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
