/** What an attempt produced: exactly what the agent reports and what the outbox keeps. */
export type Outcome =
  | { status: 'COMPLETED'; result: unknown; error: null; retryable: false }
  | { status: 'FAILED'; result: unknown; error: string; retryable: boolean };

export function completed(result: unknown): Outcome {
  return { status: 'COMPLETED', result, error: null, retryable: false };
}

/** The server keeps at most this much of an error message. */
const MAX_ERROR_LENGTH = 4096;

export function failed(error: string, retryable: boolean, result: unknown = null): Outcome {
  return { status: 'FAILED', result, error: error.slice(0, MAX_ERROR_LENGTH), retryable };
}

/**
 * An executor failed. Retryable, unless it is a PermanentError. `result` is what the attempt
 * found out anyway (an HTTP status, the text of a body that is not JSON) and is reported with it.
 */
export class ExecutionError extends Error {
  constructor(
    message: string,
    readonly result: unknown = null,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/** Retrying would fail the same way: a 404, a body that is not JSON, a refused address. */
export class PermanentError extends ExecutionError {}

/**
 * Why an attempt's AbortSignal fired; the signal's `reason` is one of these.
 * - `timeout`: the command's timeoutMs passed → FAILED `timeout`, retryable;
 * - `canceled`: a client canceled it → FAILED `canceled`, not retryable;
 * - `lease-lost`: the lease is gone (409, or not renewed in time) → nothing is reported, the
 *   command may already be another agent's;
 * - `shutdown`: the drain time after SIGTERM ran out → FAILED `interrupted`, retryable.
 */
export type AbortKind = 'timeout' | 'canceled' | 'lease-lost' | 'shutdown';

export class AttemptAborted extends Error {
  constructor(
    readonly kind: AbortKind,
    detail?: string,
  ) {
    super(detail === undefined ? kind : `${kind}: ${detail}`);
    this.name = 'AttemptAborted';
  }

  /** The error string the command gets when this abort is reported. */
  get reportedError(): string {
    return this.kind === 'shutdown' ? 'interrupted' : this.kind;
  }
}

export function abortKind(signal: AbortSignal): AbortKind | undefined {
  return signal.aborted && signal.reason instanceof AttemptAborted ? signal.reason.kind : undefined;
}
