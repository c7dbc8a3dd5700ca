import type { ClaimedCommand, Progress } from '@agent-executor/common';
import type { Logger } from 'pino';
import type { Executors } from './executors/index.js';
import { onAbort } from './abort-fanout.js';
import { Heartbeat } from './heartbeat.js';
import { AttemptAborted, completed, ExecutionError, failed, PermanentError, type AbortKind, type Outcome } from './outcome.js';
import type { ServerClient } from './server-client.js';
import { attemptTimers } from './shared-timer.js';

export type AttemptEnd =
  | { kind: 'finished'; outcome: Outcome }
  /** The lease was lost mid-execution: the command may be another agent's now; report nothing. */
  | { kind: 'lease-lost'; why: string };

export interface AttemptOptions {
  client: ServerClient;
  agentId: string;
  executors: Executors;
  /** Aborts the attempt when the drain time after SIGTERM is over. */
  shutdown: AbortSignal;
  /**
   * The attempt's logger, or a function that makes it: a per-command child logger costs more than
   * a DELAY 0, and most attempts never log, so the worker hands a function made on first use.
   */
  log: Logger | (() => Logger);
}

/**
 * Runs one attempt of a claimed command: its executor, under the command's timeout, with
 * heartbeats renewing the lease. Every way it can end becomes an Outcome, except a lost lease.
 */
export async function runAttempt(command: ClaimedCommand, receivedAt: number, options: AttemptOptions): Promise<AttemptEnd> {
  const controller = new AbortController();
  const abort = (kind: AbortKind, detail?: string) => {
    if (!controller.signal.aborted) controller.abort(new AttemptAborted(kind, detail));
  };
  const timer = attemptTimers.after(command.timeoutMs, () => abort('timeout', `after ${command.timeoutMs} ms`));
  const stopListening = onAbort(options.shutdown, () => abort('shutdown'));

  let probe: (() => Progress) | undefined;
  const { log } = options;
  const logger = typeof log === 'function' ? log : () => log;
  const heartbeat = new Heartbeat({
    client: options.client,
    agentId: options.agentId,
    command,
    receivedAt,
    progress: () => probe?.(),
    onLost: (why) => abort('lease-lost', why),
    onCancel: () => abort('canceled'),
    get log() {
      return logger();
    },
  });
  heartbeat.start();
  try {
    const executor = options.executors[command.type];
    const result = await executor(command.payload, {
      signal: controller.signal,
      get log() {
        return logger();
      },
      trackProgress: (p) => (probe = p),
    });
    // Finished, even if an abort raced it: a finished outcome is always kept and reported.
    return { kind: 'finished', outcome: completed(result) };
  } catch (err) {
    const result = err instanceof ExecutionError ? err.result : null;
    const reason: unknown = controller.signal.aborted ? controller.signal.reason : undefined;
    if (reason instanceof AttemptAborted) {
      if (reason.kind === 'lease-lost') return { kind: 'lease-lost', why: reason.message };
      return { kind: 'finished', outcome: failed(reason.reportedError, reason.kind !== 'canceled', result) };
    }
    const message = err instanceof Error ? err.message : String(err);
    return { kind: 'finished', outcome: failed(message, !(err instanceof PermanentError), result) };
  } finally {
    attemptTimers.cancel(timer);
    heartbeat.stop();
    stopListening();
  }
}
