import {
  ClaimedCommand,
  ErrorResponse,
  HeartbeatResponse,
  ResultResponse,
  type Command,
  type HeartbeatBody,
  type ResultBody,
} from '@agent-executor/common';
import pRetry, { AbortError } from 'p-retry';
import type { Logger } from 'pino';
import { Agent, request, type Dispatcher } from 'undici';
import type { z } from 'zod';

export interface ServerClientOptions {
  serverUrl: string;
  agentId: string;
  token: string | undefined;
  log: Logger;
}

export type ReportAnswer =
  | { kind: 'accepted'; command: Command }
  /** 404 or 409: the command is not ours any more (another lease, or it is settled). */
  | { kind: 'gone'; statusCode: number; message: string }
  /** Any other 4xx: a definite no that no retry will change (a bad token, a result too large). */
  | { kind: 'rejected'; statusCode: number; message: string };

export type HeartbeatAnswer =
  | { kind: 'renewed'; leaseExpiresAt: number; cancelRequested: boolean }
  | { kind: 'lost'; message: string };

/** The server said no to a poll for a reason that waiting will not fix (a wrong AGENT_TOKEN). */
export class PollRefused extends Error {}

/** 5xx and 429: the server is there but cannot answer now. Retried like a network error. */
class ServerUnavailable extends Error {}

/** Backoff of every retried call: 250 ms doubling to 10 s, each wait scaled by a jitter in [1, 2). */
const RETRY = { retries: Number.POSITIVE_INFINITY, minTimeout: 250, factor: 2, maxTimeout: 10_000, randomize: true };
/** A report or heartbeat that has no answer within this long is given up and retried. */
const CALL_TIMEOUT_MS = 15_000;

/**
 * The agent's side of the agent routes. Polls and reports retry through p-retry on network
 * errors and 5xx: polls forever, reports until a definite answer. Heartbeats are not retried in
 * place; the next heartbeat is the retry, and the lease deadline decides when to give up.
 */
export class ServerClient {
  private readonly dispatcher = new Agent({ keepAliveTimeout: 10_000 });
  private readonly auth: Record<string, string>;

  constructor(private readonly options: ServerClientOptions) {
    this.auth = options.token === undefined ? {} : { authorization: `Bearer ${options.token}` };
  }

  /** Leases the next command, holding the poll open up to `waitS` seconds; undefined means no work. */
  async next(waitS: number, signal: AbortSignal): Promise<ClaimedCommand | undefined> {
    const query = new URLSearchParams({ agentId: this.options.agentId, wait: String(waitS) });
    return this.retrying('poll', signal, async () => {
      this.options.log.debug({ waitS }, 'polling for work');
      // The server answers within waitS; a poll open much longer than that is a dead connection.
      const response = await this.call('GET', `/commands/next?${query}`, undefined, signal, waitS * 1000 + CALL_TIMEOUT_MS);
      if (response.statusCode === 204) return undefined;
      if (response.statusCode === 200) return parse(ClaimedCommand, response.json, 'poll');
      throw new AbortError(new PollRefused(`poll refused: ${describe(response)}`));
    });
  }

  /** Reports an outcome; retries until the server gives a definite answer or `signal` aborts. */
  async report(commandId: string, body: ResultBody, signal: AbortSignal): Promise<ReportAnswer> {
    return this.retrying(`report of ${commandId}`, signal, async () => {
      const response = await this.call('PUT', `/commands/${encodeURIComponent(commandId)}/result`, body, signal);
      const { statusCode } = response;
      if (statusCode === 200) return { kind: 'accepted', command: parse(ResultResponse, response.json, 'report').command };
      if (statusCode === 404 || statusCode === 409) return { kind: 'gone', statusCode, message: describe(response) };
      return { kind: 'rejected', statusCode, message: describe(response) };
    });
  }

  /** One heartbeat. Throws on network errors and 5xx; the caller tries again at its next tick. */
  async heartbeat(commandId: string, body: HeartbeatBody, signal: AbortSignal): Promise<HeartbeatAnswer> {
    const response = await this.call('POST', `/commands/${encodeURIComponent(commandId)}/heartbeat`, body, signal);
    if (response.statusCode === 200) {
      const answer = parse(HeartbeatResponse, response.json, 'heartbeat');
      return { kind: 'renewed', leaseExpiresAt: Date.parse(answer.leaseExpiresAt), cancelRequested: answer.cancelRequested };
    }
    if (response.statusCode === 404 || response.statusCode === 409) return { kind: 'lost', message: describe(response) };
    throw new Error(`heartbeat refused: ${describe(response)}`);
  }

  async close(): Promise<void> {
    await this.dispatcher.destroy();
  }

  private async retrying<T>(what: string, signal: AbortSignal, attempt: () => Promise<T>): Promise<T> {
    return pRetry(attempt, {
      ...RETRY,
      signal,
      onFailedAttempt: ({ error, attemptNumber }) => {
        if (!signal.aborted) this.options.log.warn(`${what} failed (attempt ${attemptNumber}): ${error.message}; retrying`);
      },
    });
  }

  private async call(
    method: Dispatcher.HttpMethod,
    path: string,
    body: unknown,
    signal: AbortSignal,
    timeoutMs = CALL_TIMEOUT_MS,
  ): Promise<{ statusCode: number; json: unknown }> {
    const response = await request(`${this.options.serverUrl}${path}`, {
      method,
      headers: body === undefined ? this.auth : { ...this.auth, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
      dispatcher: this.dispatcher,
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
    });
    const text = await response.body.text();
    if (response.statusCode >= 500 || response.statusCode === 429) {
      throw new ServerUnavailable(`server answered ${response.statusCode}: ${text.slice(0, 200)}`);
    }
    let json: unknown = null;
    try {
      json = text === '' ? null : JSON.parse(text);
    } catch {
      json = text;
    }
    return { statusCode: response.statusCode, json };
  }
}

/** An answer we cannot read is a bug on one side, not a network blip: do not retry it. */
function parse<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw new AbortError(`unexpected ${what} answer from the server: ${parsed.error.message}`);
  return parsed.data;
}

function describe({ statusCode, json }: { statusCode: number; json: unknown }): string {
  const error = ErrorResponse.safeParse(json);
  return `${statusCode} ${error.success ? error.data.message : JSON.stringify(json)?.slice(0, 200)}`;
}
