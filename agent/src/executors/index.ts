import type { CommandType, Progress } from '@agent-executor/common';
import type { Logger } from 'pino';
import { delay } from './delay.js';
import { httpGetJson, type HttpGetJsonOptions } from './http-get-json.js';

export interface ExecutorContext {
  /**
   * Fires when the attempt is aborted; its `reason` is an AttemptAborted saying why. Made on first
   * read: an executor that may end at once checks `aborted` first.
   */
  readonly signal: AbortSignal;
  /**
   * The attempt is aborted already: what `signal.aborted` says, without making the signal.
   * Optional (a context made by hand, in a test, may leave it out): absent means read the signal.
   */
  readonly aborted?: boolean;
  log: Logger;
  /** Lets the executor say how far it is; heartbeats send what the probe answers. */
  trackProgress: (probe: () => Progress) => void;
}

/**
 * One command type. Returns the result of a successful attempt; throws an ExecutionError
 * (retryable) or a PermanentError (not) otherwise. A new type is one file here, its payload
 * schema in common/, and one line in `executors()`.
 */
export type Executor<Result = unknown> = (payload: unknown, context: ExecutorContext) => Promise<Result>;

export type Executors = Record<CommandType, Executor>;

export function executors(options: HttpGetJsonOptions): Executors {
  return {
    DELAY: delay,
    HTTP_GET_JSON: httpGetJson(options),
  };
}
