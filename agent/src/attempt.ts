import type { AgentClaim, Progress } from '@agent-executor/common';
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
export async function runAttempt(command: AgentClaim, receivedAt: number, options: AttemptOptions): Promise<AttemptEnd> {
  // The signal is made when an executor first reads it: a Node AbortSignal costs more to make
  // than a DELAY 0 to run (measured: ~2 µs warm, ~8 µs in the agent's profile under load), and
  // an attempt that ends in the turn it starts never needs one.
  let controller: AbortController | undefined;
  let reason: AttemptAborted | undefined;
  const abort = (kind: AbortKind, detail?: string) => {
    if (reason) return;
    reason = new AttemptAborted(kind, detail);
    controller?.abort(reason);
  };
  const signal = () => {
    if (!controller) {
      controller = new AbortController();
      if (reason) controller.abort(reason);
    }
    return controller.signal;
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
      get signal() {
        return signal();
      },
      get aborted() {
        return reason !== undefined;
      },
      get log() {
        return logger();
      },
      trackProgress: (p) => (probe = p),
    });
    // Finished, even if an abort raced it: a finished outcome is always kept and reported.
    return { kind: 'finished', outcome: completed(result) };
  } catch (err) {
    const result = err instanceof ExecutionError ? err.result : null;
    // Read after the throw: an abort is what ended the attempt only if it came before the end.
    const aborted = reason as AttemptAborted | undefined;
    if (aborted) {
      if (aborted.kind === 'lease-lost') return { kind: 'lease-lost', why: aborted.message };
      return { kind: 'finished', outcome: failed(aborted.reportedError, aborted.kind !== 'canceled', result) };
    }
    const message = err instanceof Error ? err.message : String(err);
    return { kind: 'finished', outcome: failed(message, !(err instanceof PermanentError), result) };
  } finally {
    attemptTimers.cancel(timer);
    heartbeat.stop();
    stopListening();
  }
}
