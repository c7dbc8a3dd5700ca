import {
  AGENT_DRAIN_HEADER,
  AgentClaim,
  BatchClaimResponse,
  BatchResultResponse,
  ErrorResponse,
  HeartbeatResponse,
  MAX_BATCH_CLAIM,
  MAX_BATCH_REPORT,
  ResultResponse,
  type CommandStatus,
  type HeartbeatBody,
  type ResultBody,
} from '@agent-executor/common';
import { randomUUID } from 'node:crypto';
import pRetry, { AbortError } from 'p-retry';
import type { Logger } from 'pino';
import { request, type Dispatcher } from 'undici';
import { z } from 'zod';
import { Failover, type Server } from './failover.js';
import type { AgentMetrics } from './metrics.js';

export interface ServerClientOptions {
  /** SERVER_URL: one server, or replicas of one store to fail over between (see Failover). */
  serverUrls: readonly string[];
  agentId: string;
  token: string | undefined;
  log: Logger;
  /** Counts report retries. */
  metrics?: AgentMetrics;
  /** What every poll advertises (SPEC §9): the queues served and the types this agent can run. */
  route?: { queues: readonly string[]; types: readonly string[] };
  /** Shown in the server's GET /agents. */
  details?: { hostname?: string; version?: string; concurrency?: number };
  /** The server answered with `Agent-Drain: true`: stop claiming, finish, exit. */
  onDrain?: () => void;
}

export type ReportAnswer =
  /** `status`: the command's, after the report (COMPLETED, FAILED, or PENDING for a retry). */
  | { kind: 'accepted'; status: CommandStatus }
  /** 404 or 409: the command is not ours any more (another lease, or it is settled). */
  | { kind: 'gone'; statusCode: number; message: string }
  /** Any other 4xx: a definite no that no retry will change (a bad token, a result too large). */
  | { kind: 'rejected'; statusCode: number; message: string };

export type HeartbeatAnswer =
  | { kind: 'renewed'; leaseExpiresAt: number; cancelRequested: boolean }
  | { kind: 'lost'; message: string };

/** One outcome to report: the command and the body the single route would take. */
export interface Report {
  commandId: string;
  body: ResultBody;
}

/** The server said no to a poll for a reason that waiting will not fix (a wrong AGENT_TOKEN). */
export class PollRefused extends Error {}

/**
 * 5xx and 429: the server is there but cannot answer now. Retried like a network error; a 5xx
 * also fails over to the next server, a 429 (slow down) does not.
 */
class ServerUnavailable extends Error {
  constructor(readonly statusCode: number, message: string) {
    super(message);
  }
}

/** Backoff of every retried call: 250 ms doubling to 10 s, each wait scaled by a jitter in [1, 2). */
const RETRY = { retries: Number.POSITIVE_INFINITY, minTimeout: 250, factor: 2, maxTimeout: 10_000, randomize: true };
/** A report or heartbeat that has no answer within this long is given up and retried. */
const CALL_TIMEOUT_MS = 15_000;
/**
 * A batched report stays well under the server's 1 MiB body limit: one result may be 256 KiB,
 * so a batch is cut after this many bytes of reports (and after MAX_BATCH_REPORT of them).
 */
const REPORT_BATCH_BYTES = 512 * 1024;

/**
 * The agent's side of the agent routes. Polls and reports retry through p-retry on network
 * errors and 5xx: polls forever, reports until a definite answer. Heartbeats are not retried in
 * place; the next heartbeat is the retry, and the lease deadline decides when to give up.
 * With several servers, every call (poll, heartbeat, report) that fails with a network error or
 * a 5xx is sent again at once to the next server; only when each server failed it in turn does
 * the call fail (and p-retry back off).
 */
export class ServerClient {
  private readonly failover: Failover;
  private readonly auth: Record<string, string>;
  /**
   * Each is cleared when the server answers 404 to that batched route (a server older than them);
   * `claimAlong` when it refuses a report's `claim` (a server older than report-and-claim).
   */
  private readonly batched = { claims: true, reports: true, claimAlong: true };

  constructor(private readonly options: ServerClientOptions) {
    this.auth = options.token === undefined ? {} : { authorization: `Bearer ${options.token}` };
    this.failover = new Failover(options.serverUrls, options.agentId, options.log);
  }

  /** The server calls go to now (logged at start). */
  get serverUrl(): string {
    return this.failover.pick().url;
  }

  /** Leases the next command, holding the poll open up to `waitS` seconds; undefined means no work. */
  async next(waitS: number, signal: AbortSignal): Promise<AgentClaim | undefined> {
    const query = this.pollQuery({ agentId: this.options.agentId, wait: String(waitS) });
    return this.retrying('poll', signal, async () => {
      this.options.log.debug({ waitS }, 'polling for work');
      // The server answers within waitS; a poll open much longer than that is a dead connection.
      const response = await this.call('GET', `/commands/next?${query}`, undefined, signal, waitS * 1000 + CALL_TIMEOUT_MS);
      if (response.statusCode === 204) return undefined;
      if (response.statusCode === 200) return parse(AgentClaim, response.json, 'poll');
      throw new AbortError(new PollRefused(`poll refused: ${describe(response)}`));
    });
  }

  /**
   * Leases up to `max` commands at once (`/commands/next-batch`), holding the poll open up to
   * `waitS` seconds; empty means no work. One at a time through `/commands/next` when `max` is 1
   * or the server has no batched routes.
   */
  async claim(max: number, waitS: number, signal: AbortSignal): Promise<AgentClaim[]> {
    if (max <= 1 || !this.batched.claims) {
      const command = await this.next(waitS, signal);
      return command ? [command] : [];
    }
    const { agentId } = this.options;
    const query = this.pollQuery({ agentId, max: String(Math.min(max, MAX_BATCH_CLAIM)), wait: String(waitS) });
    const commands = await this.retrying('poll', signal, async () => {
      this.options.log.debug({ waitS, max }, 'polling for work');
      const path = `/commands/next-batch?${query}`;
      const response = await this.call('GET', path, undefined, signal, waitS * 1000 + CALL_TIMEOUT_MS);
      if (response.statusCode === 204) return [];
      if (response.statusCode === 200) return parse(ClaimBatchAnswer, response.json, 'poll').commands;
      if (response.statusCode === 404) return undefined;
      throw new AbortError(new PollRefused(`poll refused: ${describe(response)}`));
    });
    if (commands) return commands;
    this.withoutBatched('claims', 'GET /commands/next-batch');
    return this.claim(1, waitS, signal);
  }

  /** Reports an outcome; retries until the server gives a definite answer or `signal` aborts. */
  async report(commandId: string, body: ResultBody, signal: AbortSignal): Promise<ReportAnswer> {
    const json = JSON.stringify(body);
    return this.retrying(`report of ${commandId}`, signal, async () => {
      const response = await this.call('PUT', `/commands/${encodeURIComponent(commandId)}/result`, json, signal);
      const { statusCode } = response;
      if (statusCode === 200) return { kind: 'accepted', status: parse(ResultResponse, response.json, 'report').command.status };
      return refusal(statusCode, describe(response));
    }, commandId);
  }

  /**
   * Reports many outcomes, in as few `PUT /commands/results` as fit, and answers for each what
   * the single route would have: every item is retried (as a whole batch) until the server gives
   * a definite answer or `signal` aborts. A single outcome, or a server without the batched
   * route, goes through `report()`.
   */
  async reportMany(reports: Report[], signal: AbortSignal): Promise<ReportAnswer[]> {
    return (await this.reportAndClaim(reports, 0, signal)).answers;
  }

  /**
   * Report-and-claim: reports as reportMany does and, in the same exchange, leases up to `max`
   * more commands (the free slots), as `/commands/next-batch` would but without waiting.
   * `claimed` is undefined when the claim could not ride along (no batched route, a server
   * older than report-and-claim, a request that failed as a whole): the caller polls instead.
   */
  async reportAndClaim(reports: Report[], max: number, signal: AbortSignal): Promise<{ answers: ReportAnswer[]; claimed?: AgentClaim[] }> {
    const claim = max > 0 && this.batched.reports && this.batched.claimAlong ? this.claimBody(max) : undefined;
    if ((reports.length === 1 && claim === undefined) || !this.batched.reports) {
      return { answers: await Promise.all(reports.map((r) => this.report(r.commandId, r.body, signal))) };
    }
    const parts = await Promise.all(batches(reports).map((batch, i) => this.reportBatch(batch, signal, i === 0 ? claim : undefined)));
    const claimed = parts[0]?.claimed;
    return { answers: parts.flatMap((p) => p.answers), ...(claimed ? { claimed } : {}) };
  }

  /** The `claim` of a report-and-claim, as JSON: what a poll's query says, for `max` commands. */
  private claimBody(max: number): string {
    const { agentId, route, details } = this.options;
    return JSON.stringify({
      agentId,
      max: Math.min(max, MAX_BATCH_CLAIM),
      ...(route ? { queues: route.queues, types: route.types } : {}),
      ...details,
    });
  }

  private async reportBatch(
    batch: Array<Report & { json: string }>,
    signal: AbortSignal,
    claim?: string,
  ): Promise<{ answers: ReportAnswer[]; claimed?: AgentClaim[] }> {
    const first = batch[0]?.commandId ?? '';
    const what = batch.length === 1 ? `report of ${first}` : `report of ${batch.length} outcomes (${first}, …)`;
    const body = `{"reports":[${batch.map((r) => r.json).join(',')}]${claim === undefined ? '' : `,"claim":${claim}`}}`;
    const answer = await this.retrying(what, signal, async () => {
      // Brief answers: the command's status per report, not the whole command (a server older than
      // `brief` ignores the query and answers in full; both are read below).
      const response = await this.call('PUT', '/commands/results?brief=true', body, signal);
      if (response.statusCode !== 200) return response;
      const { results, commands } = parse(ReportAnswerBody, response.json, 'report');
      if (results.length !== batch.length || results.some((r, i) => r.id !== batch[i]?.commandId)) {
        throw new AbortError('unexpected report answer from the server: its results do not match the reports sent');
      }
      return { results, commands };
    }, batch.length === 1 ? first : undefined);
    if ('statusCode' in answer) {
      if (claim !== undefined && answer.statusCode === 400 && /\bclaim\b/.test(describe(answer))) {
        // A server older than report-and-claim refuses the unknown field: the same reports again
        // without it, and from now on claims go by poll only.
        this.withoutClaimAlong(describe(answer));
        return this.reportBatch(batch, signal);
      }
      // No answer per item: an older server (404), or a no to the whole request (a 401, a 413).
      // Sent one by one, each report gets its own definite answer.
      if (answer.statusCode === 404) this.withoutBatched('reports', 'PUT /commands/results');
      else this.options.log.warn(`batched report refused (${describe(answer)}); reporting one by one`);
      return { answers: await Promise.all(batch.map((r) => this.report(r.commandId, r.body, signal))) };
    }
    // A server that ignored the claim (no `commands`) gets none from now on either.
    if (claim !== undefined && answer.commands === undefined) this.withoutClaimAlong('its answer had no commands');
    const answers = await Promise.all(
      answer.results.map(({ statusCode, command, status, message }, i): ReportAnswer | Promise<ReportAnswer> => {
        const report = batch[i] as Report;
        const after = status ?? command?.status;
        if (statusCode === 200 && after) return { kind: 'accepted', status: after };
        // Not a definite answer for this one (cannot happen with our server, but the contract
        // of a report is "until a definite answer"): the single route retries it.
        if (statusCode === 200 || statusCode >= 500 || statusCode === 429) {
          return this.report(report.commandId, report.body, signal);
        }
        return refusal(statusCode, `${statusCode} ${message ?? ''}`.trim());
      }),
    );
    return { answers, ...(claim !== undefined && answer.commands ? { claimed: answer.commands } : {}) };
  }

  private withoutClaimAlong(why: string): void {
    if (!this.batched.claimAlong) return;
    this.batched.claimAlong = false;
    this.options.log.warn(`the server does not take a claim along with reports (${why}): claims go by poll only from now on`);
  }

  private withoutBatched(which: 'claims' | 'reports', route: string): void {
    if (!this.batched[which]) return;
    this.batched[which] = false;
    this.options.log.warn(`${route} answered 404 (a server without batched routes): ${which} go one by one from now on`);
  }

  /** One heartbeat. Throws on network errors and 5xx; the caller tries again at its next tick. */
  async heartbeat(commandId: string, body: HeartbeatBody, signal: AbortSignal): Promise<HeartbeatAnswer> {
    const path = `/commands/${encodeURIComponent(commandId)}/heartbeat`;
    const response = await this.call('POST', path, JSON.stringify(body), signal);
    if (response.statusCode === 200) {
      const answer = parse(HeartbeatResponse, response.json, 'heartbeat');
      return { kind: 'renewed', leaseExpiresAt: Date.parse(answer.leaseExpiresAt), cancelRequested: answer.cancelRequested };
    }
    if (response.statusCode === 404 || response.statusCode === 409) return { kind: 'lost', message: describe(response) };
    throw new Error(`heartbeat refused: ${describe(response)}`);
  }

  async close(): Promise<void> {
    await this.failover.close();
  }

  /** `commandId`: the command a report is about, a field of the log line when it is retried. */
  private async retrying<T>(what: string, signal: AbortSignal, attempt: () => Promise<T>, commandId?: string): Promise<T> {
    return pRetry(attempt, {
      ...RETRY,
      signal,
      onFailedAttempt: ({ error, attemptNumber }) => {
        if (signal.aborted) return;
        if (what.startsWith('report')) this.options.metrics?.reportRetries.inc();
        this.options.log.warn({ commandId }, `${what} failed (attempt ${attemptNumber}): ${error.message}; retrying`);
      },
    });
  }

  /**
   * One request, on the current server and, while it fails with a network error or a 5xx, on each
   * next one in turn (at once: a long-poll cut by a dying server is re-polled on the next without a
   * pause). Throws the last failure when every server failed it; a 429 or a 4xx is not a failover.
   */
  /** A poll's query: its own parameters and what the agent advertises. */
  private pollQuery(params: Record<string, string>): URLSearchParams {
    const { route, details } = this.options;
    const query = new URLSearchParams(params);
    if (route) {
      query.set('queues', route.queues.join(','));
      query.set('types', route.types.join(','));
    }
    if (details?.hostname) query.set('hostname', details.hostname);
    if (details?.version) query.set('version', details.version);
    if (details?.concurrency) query.set('concurrency', String(details.concurrency));
    return query;
  }

  private async call(
    method: Dispatcher.HttpMethod,
    path: string,
    body: string | undefined,
    signal: AbortSignal,
    timeoutMs = CALL_TIMEOUT_MS,
  ): Promise<{ statusCode: number; json: unknown }> {
    for (let tried = 1; ; tried++) {
      const server = this.failover.pick();
      try {
        return await this.callOn(server, method, path, body, signal, timeoutMs);
      } catch (error) {
        const serverFault = !(error instanceof ServerUnavailable) || error.statusCode >= 500;
        if (signal.aborted || !serverFault) throw error;
        this.failover.failed(server, (error as Error).message);
        if (tried >= this.failover.size) throw error;
      }
    }
  }

  /**
   * One request to one server; `body` is JSON text already. Each carries its own X-Request-Id (a
   * retry is a new request), which the server logs and echoes: a failure names it, to be found in
   * the server's log.
   */
  private async callOn(
    server: Server,
    method: Dispatcher.HttpMethod,
    path: string,
    body: string | undefined,
    signal: AbortSignal,
    timeoutMs: number,
  ): Promise<{ statusCode: number; json: unknown }> {
    const requestId = randomUUID();
    const headers = { ...this.auth, 'x-request-id': requestId };
    const response = await request(`${server.url}${path}`, {
      method,
      headers: body === undefined ? headers : { ...headers, 'content-type': 'application/json' },
      body,
      signal,
      dispatcher: server.dispatcher,
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
    });
    const text = await response.body.text();
    if (response.headers[AGENT_DRAIN_HEADER] === 'true') this.options.onDrain?.();
    if (response.statusCode >= 500 || response.statusCode === 429) {
      const message = `server answered ${response.statusCode} to request ${requestId}: ${text.slice(0, 200)}`;
      throw new ServerUnavailable(response.statusCode, message);
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

/** 404 or 409: the command is not ours any more; any other 4xx: a no that no retry will change. */
function refusal(statusCode: number, message: string): ReportAnswer {
  const gone = statusCode === 404 || statusCode === 409;
  return { kind: gone ? 'gone' : 'rejected', statusCode, message };
}

/** Cuts reports into batches the server takes: at most MAX_BATCH_REPORT and REPORT_BATCH_BYTES each. */
function batches(reports: Report[]): Array<Array<Report & { json: string }>> {
  const all: Array<Array<Report & { json: string }>> = [];
  let current: Array<Report & { json: string }> = [];
  let bytes = 0;
  for (const report of reports) {
    const json = JSON.stringify({ id: report.commandId, ...report.body });
    const size = Buffer.byteLength(json) + 1;
    if (current.length > 0 && (current.length === MAX_BATCH_REPORT || bytes + size > REPORT_BATCH_BYTES)) {
      all.push(current);
      current = [];
      bytes = 0;
    }
    current.push({ ...report, json });
    bytes += size;
  }
  if (current.length > 0) all.push(current);
  return all;
}

/** The server's batched answers, read as an agent reads a claim (AgentClaim in common). */
const ClaimBatchAnswer = BatchClaimResponse.extend({ commands: z.array(AgentClaim) });
const ReportAnswerBody = BatchResultResponse.extend({ commands: z.array(AgentClaim).optional() });

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
