import { MAX_BATCH_REPORT, type AgentClaim } from '@agent-executor/common';
import type { Logger } from 'pino';
import type { CrashDrill } from './crash-drill.js';
import type { Outbox } from './outbox.js';
import type { OutboxWrites } from './outbox-writes.js';
import type { Outcome } from './outcome.js';
import { shrinkOutcome } from './result-fit.js';
import type { ReportAnswer, ServerClient } from './server-client.js';

export interface ReporterOptions {
  client: ServerClient;
  outbox: Outbox;
  writes: OutboxWrites;
  agentId: string;
  drill: CrashDrill;
  log: Logger;
}

/**
 * While a report is already on its way, outcomes (and a claim riding along) wait for company: until
 * that exchange comes back, then this long, for the commands it claimed to join them when they are
 * quick. Under load (outcomes finishing one by one, as HTTP_GET_JSON ones do) many share a request
 * instead of one each; and an agent's slots stay in one group that reports and claims together.
 * With a fixed 2 ms instead, two groups that formed at start (a first poll that found only some of
 * the work) never met again: two exchanges per round, measured 0.19–0.23 requests per command
 * against 0.125 for one group of 8, and ~10 % less throughput (throughput scenario, PostgreSQL).
 * With nothing on the way they go at the end of the turn.
 */
const REPORT_WINDOW_MS = 2;

/** The longest outcomes wait for an exchange on its way to come back: then they go beside it. */
const MAX_HOLD_MS = 25;

interface Pending {
  commandId: string;
  leaseId: string;
  outcome: Outcome;
  done: () => void;
}

/** A claim waiting to ride along with the next report (report-and-claim). */
interface Claim {
  /**
   * How many commands to ask for, asked when the report leaves: the slots that freed while it
   * waited for company ride along too (asked earlier, they were left to poll on their own, and
   * an agent's slots split for good into a group that polled and one that reported).
   */
  max: () => number;
  /** Aborted: the worker stopped claiming before the report went; the claim is not sent. */
  signal: AbortSignal;
  /** The commands leased, or undefined when the claim did not ride along (the caller polls). */
  resolve: (claimed: AgentClaim[] | undefined) => void;
}

/**
 * Sends finished outcomes to the server and records in the outbox what the server answered.
 * Outcomes handed over in the same turn of the event loop (or within REPORT_WINDOW_MS while
 * another report is on its way) go out together, in one `PUT /commands/results`
 * (ServerClient.reportMany); each is then handled exactly as the single route's answer would be.
 */
export class Reporter {
  private readonly queues = new Map<AbortSignal, Pending[]>();
  private scheduled = false;
  /** The flush scheduled while a report was on its way, and whether one has come back since. */
  private held: { timer: NodeJS.Timeout; back: boolean } | undefined;
  /** Report requests on their way. */
  private sending = 0;
  private claim: Claim | undefined;

  constructor(private readonly options: ReporterOptions) {}

  /** Outcomes handed over and not yet sent: a report request is about to go. */
  get waiting(): number {
    let n = 0;
    for (const batch of this.queues.values()) n += batch.length;
    return n;
  }

  /**
   * Report-and-claim: the next report request also asks for up to `max` commands, leased in its
   * answer. Resolves with them, or with undefined when no report went out with the claim (nothing
   * to report by then, an older server, a failed request): then the caller polls. Never rejects.
   */
  claimAlong(max: () => number, signal: AbortSignal): Promise<AgentClaim[] | undefined> {
    return new Promise((resolve) => {
      this.claim?.resolve(undefined);
      this.claim = { max, signal, resolve };
      this.schedule();
    });
  }

  /**
   * Reports until the server gives a definite answer, or `signal` aborts (shutdown): then the
   * outcome stays `finished` in the outbox and is reported at the next start. Never rejects.
   */
  deliver(commandId: string, leaseId: string, outcome: Outcome, signal: AbortSignal): Promise<void> {
    return new Promise((done) => {
      let queue = this.queues.get(signal);
      if (!queue) this.queues.set(signal, (queue = []));
      queue.push({ commandId, leaseId, outcome, done });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    if (this.sending > 0) this.held = { timer: setTimeout(() => this.flush(), MAX_HOLD_MS), back: false };
    else setImmediate(() => this.flush());
  }

  /** An exchange came back: what waits for company goes REPORT_WINDOW_MS from now (once). */
  private exchangeBack(): void {
    const held = this.held;
    if (!held || held.back) return;
    clearTimeout(held.timer);
    this.held = { timer: setTimeout(() => this.flush(), REPORT_WINDOW_MS), back: true };
  }

  /**
   * Start-up, before polling: whatever was `started` was cut off by a crash and becomes FAILED
   * `interrupted` (retryable); then every finished outcome the server has not taken is reported.
   */
  async recover(signal: AbortSignal): Promise<void> {
    const { outbox, log } = this.options;
    const interrupted = outbox.interruptUnfinished();
    const unreported = outbox.unreported();
    if (interrupted + unreported.length > 0) {
      log.info(`recovery: ${interrupted} command(s) interrupted by a crash; reporting ${unreported.length} outcome(s)`);
    }
    // A batch at a time, so that a long backlog is not all in flight at once.
    for (let i = 0; i < unreported.length && !signal.aborted; i += MAX_BATCH_REPORT) {
      const slice = unreported.slice(i, i + MAX_BATCH_REPORT);
      await Promise.all(slice.map((e) => e.outcome && this.deliver(e.commandId, e.leaseId, e.outcome, signal)));
    }
  }

  private flush(): void {
    this.scheduled = false;
    if (this.held) clearTimeout(this.held.timer);
    this.held = undefined;
    let claim = this.claim;
    this.claim = undefined;
    if (claim?.signal.aborted) {
      claim.resolve(undefined);
      claim = undefined;
    }
    for (const [signal, batch] of this.queues) {
      this.sending++;
      // The claim rides with the first request; one made at shutdown (signal aborted) would not go.
      const along = signal.aborted ? undefined : claim;
      if (along) claim = undefined;
      void this.send(batch, signal, along).finally(() => this.sending--);
    }
    this.queues.clear();
    claim?.resolve(undefined);
  }

  private async send(batch: Pending[], signal: AbortSignal, claim?: Claim): Promise<void> {
    const { client, agentId, log } = this.options;
    try {
      const reports = batch.map(({ commandId, leaseId, outcome }) => ({ commandId, body: { agentId, leaseId, ...outcome } }));
      let answers: ReportAnswer[];
      try {
        const answer = await client.reportAndClaim(reports, claim ? Math.max(0, claim.max()) : 0, signal).finally(() => this.exchangeBack());
        // Handed over before the outcomes are settled, so that the `started` rows of the commands
        // claimed share a commit with the `reported` marks of this answer.
        claim?.resolve(answer.claimed);
        answers = answer.answers;
      } catch (err) {
        const why = signal.aborted ? 'shutting down' : (err as Error).message;
        const ids = batch.map((p) => p.commandId);
        const which = ids.length === 1 ? `report of ${ids[0]}` : `reports of ${ids.length} outcomes (${ids.join(', ')})`;
        log.warn({ commandIds: ids }, `${which} not delivered (${why}); kept in the outbox for the next start`);
        return;
      }
      await Promise.all(batch.map((pending, i) => this.settle(pending, answers[i], signal)));
    } finally {
      claim?.resolve(undefined);
      for (const { done } of batch) done();
    }
  }

  private async settle({ commandId, leaseId, outcome }: Pending, answer: ReportAnswer | undefined, signal: AbortSignal): Promise<void> {
    const { writes, drill, log } = this.options;
    try {
      if (answer?.kind === 'accepted') {
        drill.at('after-report', commandId);
        // Not needed for safety (a report sent again is answered 200 and changes nothing), but
        // it keeps the next start from sending it again.
        await writes.markReported(commandId, leaseId);
        log.debug({ commandId, status: answer.status }, `report of ${commandId} accepted`);
      } else if (answer?.kind === 'gone') {
        await writes.drop(commandId, leaseId, `report answered ${answer.message}`);
        log.warn({ commandId }, `command ${commandId} is not ours any more (${answer.message}); outcome kept, not reported`);
      } else if (answer !== undefined && refusesTheResult(answer)) {
        // Cut down by the agent's own measure and still refused (a server with other limits, an
        // outcome kept by an older agent): report a smaller one instead of retrying forever.
        const smaller = shrinkOutcome(outcome);
        const kept = smaller !== undefined && (await writes.replace(commandId, leaseId, smaller));
        if (smaller === undefined || !kept) {
          log.error({ commandId }, `report of ${commandId} rejected (${answer.message}); nothing left to cut, kept in the outbox`);
          return;
        }
        log.warn({ commandId }, `report of ${commandId} rejected (${answer.message}); reporting it cut down: ${smaller.status} ${smaller.error}`);
        await this.deliver(commandId, leaseId, smaller, signal);
      } else {
        const why = answer?.message ?? 'no answer';
        log.error({ commandId }, `report of ${commandId} rejected (${why}); kept in the outbox for the next start`);
      }
    } catch (err) {
      log.error({ err, commandId }, `report of ${commandId}: recording the answer failed: ${(err as Error).message}`);
    }
  }
}

/** 413, or a 400 about the result (nested too deep): the server cannot take this outcome's result. */
function refusesTheResult(answer: ReportAnswer): boolean {
  return answer.kind === 'rejected' && (answer.statusCode === 413 || (answer.statusCode === 400 && /\bresult\b/.test(answer.message)));
}
