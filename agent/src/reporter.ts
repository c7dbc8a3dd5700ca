import type { Logger } from 'pino';
import type { CrashDrill } from './crash-drill.js';
import type { Outbox } from './outbox.js';
import type { Outcome } from './outcome.js';
import type { ServerClient } from './server-client.js';

export interface ReporterOptions {
  client: ServerClient;
  outbox: Outbox;
  agentId: string;
  drill: CrashDrill;
  log: Logger;
}

/** Sends finished outcomes to the server and records in the outbox what the server answered. */
export class Reporter {
  constructor(private readonly options: ReporterOptions) {}

  /**
   * Reports until the server gives a definite answer, or `signal` aborts (shutdown): then the
   * outcome stays `finished` in the outbox and is reported at the next start.
   */
  async deliver(commandId: string, leaseId: string, outcome: Outcome, signal: AbortSignal): Promise<void> {
    const { client, outbox, agentId, drill, log } = this.options;
    let answer;
    try {
      answer = await client.report(commandId, { agentId, leaseId, ...outcome }, signal);
    } catch (err) {
      const why = signal.aborted ? 'shutting down' : (err as Error).message;
      log.warn({ commandId }, `report of ${commandId} not delivered (${why}); kept in the outbox for the next start`);
      return;
    }
    if (answer.kind === 'accepted') {
      drill.at('after-report', commandId);
      outbox.markReported(commandId, leaseId);
      log.debug({ commandId, status: answer.command.status }, `report of ${commandId} accepted`);
    } else if (answer.kind === 'gone') {
      outbox.drop(commandId, leaseId, `report answered ${answer.message}`);
      log.warn({ commandId }, `command ${commandId} is not ours any more (${answer.message}); outcome kept, not reported`);
    } else {
      log.error({ commandId }, `report of ${commandId} rejected (${answer.message}); kept in the outbox for the next start`);
    }
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
    for (const entry of unreported) {
      if (signal.aborted || entry.outcome === undefined) continue;
      await this.deliver(entry.commandId, entry.leaseId, entry.outcome, signal);
    }
  }
}
