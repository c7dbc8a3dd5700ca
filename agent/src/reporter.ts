import { MAX_BATCH_REPORT } from '@agent-executor/common';
import type { Logger } from 'pino';
import type { CrashDrill } from './crash-drill.js';
import type { GroupCommit } from '@agent-executor/common/group-commit';
import type { Outbox } from './outbox.js';
import type { Outcome } from './outcome.js';
import { shrinkOutcome } from './result-fit.js';
import type { ReportAnswer, ServerClient } from './server-client.js';

export interface ReporterOptions {
  client: ServerClient;
  outbox: Outbox;
  commits: GroupCommit;
  agentId: string;
  drill: CrashDrill;
  log: Logger;
}

/**
 * While a report is already on its way, outcomes wait this long for company before they go: under
 * load (outcomes finishing one by one, as HTTP_GET_JSON ones do) many share a request instead of
 * one each. With nothing on the way they go at the end of the turn.
 */
const REPORT_WINDOW_MS = 2;

interface Pending {
  commandId: string;
  leaseId: string;
  outcome: Outcome;
  done: () => void;
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
  /** Report requests on their way. */
  private sending = 0;

  constructor(private readonly options: ReporterOptions) {}

  /**
   * Reports until the server gives a definite answer, or `signal` aborts (shutdown): then the
   * outcome stays `finished` in the outbox and is reported at the next start. Never rejects.
   */
  deliver(commandId: string, leaseId: string, outcome: Outcome, signal: AbortSignal): Promise<void> {
    return new Promise((done) => {
      let queue = this.queues.get(signal);
      if (!queue) this.queues.set(signal, (queue = []));
      queue.push({ commandId, leaseId, outcome, done });
      if (this.scheduled) return;
      this.scheduled = true;
      if (this.sending > 0) setTimeout(() => this.flush(), REPORT_WINDOW_MS);
      else setImmediate(() => this.flush());
    });
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
    for (const [signal, batch] of this.queues) {
      this.sending++;
      void this.send(batch, signal).finally(() => this.sending--);
    }
    this.queues.clear();
  }

  private async send(batch: Pending[], signal: AbortSignal): Promise<void> {
    const { client, agentId, log } = this.options;
    try {
      const reports = batch.map(({ commandId, leaseId, outcome }) => ({ commandId, body: { agentId, leaseId, ...outcome } }));
      let answers: ReportAnswer[];
      try {
        answers = await client.reportMany(reports, signal);
      } catch (err) {
        const why = signal.aborted ? 'shutting down' : (err as Error).message;
        const ids = batch.map((p) => p.commandId);
        const which = ids.length === 1 ? `report of ${ids[0]}` : `reports of ${ids.length} outcomes (${ids.join(', ')})`;
        log.warn({ commandIds: ids }, `${which} not delivered (${why}); kept in the outbox for the next start`);
        return;
      }
      await Promise.all(batch.map((pending, i) => this.settle(pending, answers[i], signal)));
    } finally {
      for (const { done } of batch) done();
    }
  }

  private async settle({ commandId, leaseId, outcome }: Pending, answer: ReportAnswer | undefined, signal: AbortSignal): Promise<void> {
    const { outbox, commits, drill, log } = this.options;
    try {
      if (answer?.kind === 'accepted') {
        drill.at('after-report', commandId);
        // Not needed for safety (a report sent again is answered 200 and changes nothing), but
        // it keeps the next start from sending it again.
        await commits.run(() => outbox.markReported(commandId, leaseId));
        log.debug({ commandId, status: answer.command.status }, `report of ${commandId} accepted`);
      } else if (answer?.kind === 'gone') {
        await commits.run(() => outbox.drop(commandId, leaseId, `report answered ${answer.message}`));
        log.warn({ commandId }, `command ${commandId} is not ours any more (${answer.message}); outcome kept, not reported`);
      } else if (answer !== undefined && refusesTheResult(answer)) {
        // Cut down by the agent's own measure and still refused (a server with other limits, an
        // outcome kept by an older agent): report a smaller one instead of retrying forever.
        const smaller = shrinkOutcome(outcome);
        const kept = smaller !== undefined && (await commits.run(() => outbox.replace(commandId, leaseId, smaller)));
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
