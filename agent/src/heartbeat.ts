import type { AgentClaim, Progress } from '@agent-executor/common';
import type { Logger } from 'pino';
import type { ServerClient } from './server-client.js';
import { attemptTimers, type Due } from './shared-timer.js';

export interface HeartbeatOptions {
  client: ServerClient;
  agentId: string;
  command: AgentClaim;
  /** Date.now() when the claim arrived. */
  receivedAt: number;
  progress: () => Progress | undefined;
  /** The lease is gone: the server said 409/404, or it was not renewed in time. */
  onLost: (why: string) => void;
  onCancel: () => void;
  log: Logger;
}

/** The server's default LEASE_MS, for a claim that does not tell its lease length. */
const FALLBACK_LEASE_MS = 30_000;
/**
 * After a failed renewal (server down, 5xx, no answer), the next try comes this soon rather than
 * an interval later: a server restarted within the lease must be renewed with before the
 * deadline, and waiting for the regular beat could miss it (the beat after two failed ones falls
 * on the deadline itself). Found by the chaos drill.
 */
const RETRY_AFTER_FAILURE_MS = 250;

/**
 * Renews a lease every third of its length while a command runs. The length is the server's
 * LEASE_MS, read off the claim as leaseExpiresAt − startedAt (both from the server's clock, so
 * no clock comparison). If no renewal succeeds within one lease length of *sending* the last
 * successful one (of receiving the claim, at first), the server may have given the command to
 * another agent, so the work is stopped: `onLost`.
 */
export class Heartbeat {
  readonly leaseMs: number;
  // Entries of the agent's shared timer, not Node timers of their own (see shared-timer.ts).
  private interval: Due | undefined;
  private deadline: Due | undefined;
  private retry: Due | undefined;
  /** Failed renewals in a row: the first is a warning, the quick retries after it are not. */
  private failures = 0;
  private inFlight = false;
  private stopped = false;
  /** Made at the first beat: most commands end before one is due, and an abort costs a DOMException. */
  private abort: AbortController | undefined;

  constructor(private readonly options: HeartbeatOptions) {
    const { leaseExpiresAt, startedAt } = options.command;
    const length = Date.parse(leaseExpiresAt) - Date.parse(startedAt ?? '');
    this.leaseMs = Number.isFinite(length) && length > 0 ? length : FALLBACK_LEASE_MS;
  }

  get intervalMs(): number {
    return Math.max(10, Math.floor(this.leaseMs / 3));
  }

  start(): void {
    const { command, receivedAt } = this.options;
    this.everyInterval();
    this.armDeadline(receivedAt + this.leaseMs);
    // A claim that took long to arrive (by our clock, its lease is nearly over): renew at once
    // rather than a third of a lease later, and learn early if it is lost already.
    if (Date.parse(command.leaseExpiresAt) - receivedAt < this.intervalMs) void this.beat();
  }

  stop(): void {
    this.stopped = true;
    attemptTimers.cancel(this.interval);
    attemptTimers.cancel(this.deadline);
    attemptTimers.cancel(this.retry);
    this.abort?.abort();
  }

  /** A beat every intervalMs, as setInterval would. */
  private everyInterval(): void {
    this.interval = attemptTimers.after(this.intervalMs, () => {
      if (this.stopped) return;
      this.everyInterval();
      void this.beat();
    });
  }

  private armDeadline(at: number): void {
    attemptTimers.cancel(this.deadline);
    this.deadline = attemptTimers.after(at - Date.now(), () => this.lose(`not renewed within ${this.leaseMs} ms`));
  }

  private lose(why: string): void {
    if (this.stopped) return;
    this.stop();
    this.options.onLost(why);
  }

  private async beat(): Promise<void> {
    if (this.inFlight || this.stopped) return;
    this.inFlight = true;
    const { client, agentId, command, log } = this.options;
    const sentAt = Date.now();
    try {
      const progress = this.options.progress();
      const answer = await client.heartbeat(
        command.id,
        { agentId, leaseId: command.leaseId, ...(progress === undefined ? {} : { progress }) },
        // Two intervals: a slow answer still counts, and a hung one makes way for the next try.
        AbortSignal.any([(this.abort ??= new AbortController()).signal, AbortSignal.timeout(2 * this.intervalMs)]),
      );
      if (this.stopped) return;
      if (answer.kind === 'lost') return this.lose(answer.message);
      this.failures = 0;
      this.armDeadline(sentAt + this.leaseMs);
      if (answer.cancelRequested) this.options.onCancel();
    } catch (err) {
      if (this.stopped) return;
      const level = ++this.failures === 1 ? 'warn' : 'debug';
      log[level]({ commandId: command.id }, `heartbeat failed (${this.failures} in a row): ${(err as Error).message}`);
      attemptTimers.cancel(this.retry);
      this.retry = attemptTimers.after(Math.min(this.intervalMs, RETRY_AFTER_FAILURE_MS), () => void this.beat());
    } finally {
      this.inFlight = false;
    }
  }
}
