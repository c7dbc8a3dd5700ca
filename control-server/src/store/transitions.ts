/**
 * What a transition makes of a command row, shared by both stores: each store reads the current
 * row, asks these functions for the row after the change, and writes it with one guarded
 * statement. Only the SQL differs between SQLite and PostgreSQL, never the outcome.
 */
import { createHash } from 'node:crypto';
import { v7 as uuidv7 } from 'uuid';
import {
  DEFAULT_HTTP_TIMEOUT_MS,
  DEFAULT_MAX_ATTEMPTS,
  DELAY_TIMEOUT_MARGIN_MS,
  DEFAULT_QUEUE,
  type CommandStatus,
  type ResultBody,
  type SubmitBody,
} from '@agent-executor/common';
import { retryBackoffMs } from './backoff.js';
import type { CommandRow } from './command-rows.js';

/**
 * The row a submit stores; `seq` is 0 until the database hands one out. `ready` is READY (1) or,
 * with a `runAt` ahead, SCHEDULED (0); a store that enforces concurrency keys decides HELD itself.
 */
export function newCommandRow(body: SubmitBody, now: number, idempotencyKey: string | null, requestHash: string | null): CommandRow {
  const runAt = body.runAt === undefined ? null : Date.parse(body.runAt);
  const availableAt = runAt === null ? now : Math.max(now, runAt);
  return {
    seq: 0,
    // Time-ordered (UUIDv7): new ids land at the end of the id indexes of both tables instead of
    // at random places in them, which made each insert cost twice as much (BENCHMARKS.md).
    id: uuidv7(),
    type: body.type,
    payload: JSON.stringify(body.payload),
    status: 'PENDING',
    result: null,
    error: null,
    agent_id: null,
    lease_id: null,
    lease_expires_at: null,
    attempts: 0,
    max_attempts: body.maxAttempts ?? DEFAULT_MAX_ATTEMPTS,
    timeout_ms: body.timeoutMs ?? defaultTimeoutMs(body),
    available_at: availableAt,
    cancel_requested: 0,
    progress: null,
    created_at: now,
    updated_at: now,
    started_at: null,
    finished_at: null,
    idempotency_key: idempotencyKey,
    request_hash: requestHash,
    report_hash: null,
    queue: body.queue ?? DEFAULT_QUEUE,
    priority: body.priority ?? 0,
    run_at: runAt,
    concurrency_key: body.concurrencyKey ?? null,
    concurrency_limit: body.concurrencyLimit ?? null,
    ready: availableAt > now ? 0 : 1,
  };
}

function defaultTimeoutMs(body: SubmitBody): number {
  return body.type === 'DELAY' ? body.payload.ms + DELAY_TIMEOUT_MARGIN_MS : DEFAULT_HTTP_TIMEOUT_MS;
}

/** The row a claim stores: RUNNING under a new lease, one more attempt, nothing of a previous run. */
export function claimedRow(current: CommandRow, agentId: string, leaseId: string, now: number, leaseMs: number): CommandRow {
  return {
    ...current,
    status: 'RUNNING',
    agent_id: agentId,
    lease_id: leaseId,
    lease_expires_at: now + leaseMs,
    attempts: current.attempts + 1,
    started_at: now,
    finished_at: null,
    progress: null,
    report_hash: null,
    updated_at: now,
  };
}

/** Identifies a report, so the same report sent twice is recognised and changes nothing. */
export function reportHash(body: ResultBody): string {
  return hashJson([
    body.agentId,
    body.leaseId ?? null,
    body.status ?? null,
    body.result ?? null,
    body.error ?? null,
    body.retryable ?? null,
  ]);
}

/**
 * The row after a report taken from the lease holder: COMPLETED, FAILED, or back to PENDING after
 * a backoff when the failure is retryable, attempts are left and nobody asked to cancel.
 */
export function reportedRow(current: CommandRow, body: ResultBody, hash: string, now: number, random: () => number): CommandRow {
  const failed = body.status === 'FAILED';
  const canRetry = failed && body.retryable === true && current.cancel_requested === 0 && current.attempts < current.max_attempts;
  const status: CommandStatus = !failed ? 'COMPLETED' : canRetry ? 'PENDING' : 'FAILED';
  return {
    ...current,
    status,
    result: body.result === undefined ? null : JSON.stringify(body.result),
    error: failed ? (body.error ?? 'failed') : null,
    available_at: canRetry ? now + retryBackoffMs(current.attempts, random) : current.available_at,
    finished_at: status === 'PENDING' ? null : now,
    lease_id: null,
    lease_expires_at: null,
    cancel_requested: status === 'PENDING' ? current.cancel_requested : 0,
    report_hash: hash,
    updated_at: now,
  };
}

/**
 * True when the report may be taken: it comes from the holder of the command's current lease, and
 * the command is not finished. COMPLETED and FAILED are final (SPEC §2): a FAILED `lease expired`
 * command keeps its lease id, yet its holder's late report must not revive it (its stream already
 * ended at FAILED).
 */
export function holdsLease(current: CommandRow, body: ResultBody): boolean {
  if (current.status === 'COMPLETED' || current.status === 'FAILED') return false;
  const leaseId = body.leaseId ?? current.lease_id;
  return current.lease_id !== null && leaseId === current.lease_id && current.agent_id === body.agentId;
}

export function reportConflictMessage(row: CommandRow, agentId: string): string {
  if (row.status === 'COMPLETED' || row.status === 'FAILED') return `command ${row.id} is already ${row.status}`;
  if (row.agent_id !== agentId) return `command ${row.id} is leased to another agent`;
  return `the lease of ${agentId} on command ${row.id} has ended`;
}

/** What an expired lease does to its command: the values the expire statement sets. */
export interface ExpiryOutcome {
  status: 'PENDING' | 'FAILED';
  error: string;
  availableAt: number;
  finishedAt: number | null;
  /** The holder may still report late, unless the command was canceled. */
  keepLeaseId: string | null;
}

export function expiryOutcome(expired: CommandRow, now: number, random: () => number): ExpiryOutcome {
  const canceled = expired.cancel_requested === 1;
  const retry = !canceled && expired.attempts < expired.max_attempts;
  return {
    status: retry ? 'PENDING' : 'FAILED',
    error: canceled ? 'canceled' : 'lease expired',
    availableAt: retry ? now + retryBackoffMs(expired.attempts, random) : expired.available_at,
    finishedAt: retry ? null : now,
    keepLeaseId: canceled ? null : expired.lease_id,
  };
}

/** Stable hash of a JSON value: object keys sorted, so key order does not change it. */
export function hashJson(value: unknown): string {
  return createHash('sha256').update(JSON.stringify(value, sortKeys)).digest('hex');
}

function sortKeys(_key: string, value: unknown): unknown {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return value;
  return Object.fromEntries(Object.entries(value).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}
