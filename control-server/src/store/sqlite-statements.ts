import type Database from 'better-sqlite3';
import type { CommandStatus } from '@agent-executor/common';
import type { CommandRow } from './command-rows.js';
import type { EventRow } from './event-log.js';

/** A prepared statement: bind parameters, and the row type it reads (for the typed ones). */
type Stmt<P extends unknown[] = unknown[], R = unknown> = Database.Statement<P, R>;

export interface Statements {
  insert: Stmt;
  byId: Stmt<[string], CommandRow>;
  byIdempotencyKey: Stmt<[string], CommandRow>;
  claim: Stmt;
  release: Stmt;
  report: Stmt;
  heartbeat: Stmt;
  cancelPending: Stmt;
  cancelRunning: Stmt;
  retry: Stmt;
  expired: Stmt<[number], CommandRow>;
  expire: Stmt;
  nextLeaseExpiry: Stmt<[], { at: number | null }>;
  nextAvailable: Stmt<[number], { at: number | null }>;
  insertEvent: Stmt;
  eventsSince: Stmt<[number, number], EventRow>;
  eventsSinceForCommand: Stmt<[string, number, number], EventRow>;
  lastEventFor: Stmt<[string], EventRow>;
  lastEventSeq: Stmt<[], { seq: number | null }>;
  pruneEvents: Stmt;
  countByStatus: Stmt<[], { status: CommandStatus; n: number }>;
  ping: Stmt;
}

/**
 * Every statement of the SQLite store, prepared once per connection. Each transition is one
 * guarded statement: its WHERE states the precondition, and zero rows changed means the command
 * was no longer in the state the caller expected.
 */
export function prepareStatements(db: Database.Database): Statements {
  return {
    // Every column but seq is bound from the row built in insertCommand, so that row is exactly
    // what was stored and no RETURNING * has to read it back (a third of the insert's cost).
    insert: db.prepare(`INSERT INTO commands
      (id, type, payload, status, result, error, agent_id, lease_id, lease_expires_at, attempts,
       max_attempts, timeout_ms, available_at, cancel_requested, progress, created_at, updated_at,
       started_at, finished_at, idempotency_key, request_hash, report_hash)
      VALUES (@id, @type, @payload, @status, @result, @error, @agent_id, @lease_id, @lease_expires_at,
       @attempts, @max_attempts, @timeout_ms, @available_at, @cancel_requested, @progress, @created_at,
       @updated_at, @started_at, @finished_at, @idempotency_key, @request_hash, @report_hash)`),
    byId: db.prepare<[string], CommandRow>('SELECT * FROM commands WHERE id = ?'),
    byIdempotencyKey: db.prepare<[string], CommandRow>('SELECT * FROM commands WHERE idempotency_key = ?'),
    // One statement picks and leases: no other claim can take the same row in between.
    // INDEXED BY: without statistics SQLite picks commands_status_seq and sorts every PENDING
    // row per claim (O(backlog) each: 3 ms with 20 000 pending); the partial index is in order.
    claim: db.prepare(`UPDATE commands
      SET status = 'RUNNING', agent_id = @agentId, lease_id = lower(hex(randomblob(16))), lease_expires_at = @leaseExpiresAt,
          attempts = attempts + 1, started_at = @now, finished_at = NULL, progress = NULL,
          report_hash = NULL, updated_at = @now
      WHERE seq IN (SELECT seq FROM commands INDEXED BY commands_claim
                    WHERE status = 'PENDING' AND available_at <= @now
                    ORDER BY available_at, seq LIMIT @max)
      RETURNING *`),
    // available_at is left alone: the command keeps its place at the head of the queue.
    release: db.prepare(`UPDATE commands
      SET status = 'PENDING', lease_id = NULL, lease_expires_at = NULL, attempts = attempts - 1,
          started_at = NULL, updated_at = @now
      WHERE id = @id AND status = 'RUNNING' AND lease_id = @leaseId
      RETURNING *`),
    // Sets the row report() built from the current one it read in the same transaction, so no
    // RETURNING * is needed to know the result (it cost ~6.6 µs of the ~8.4 µs of this update).
    report: db.prepare(`UPDATE commands
      SET status = @status, result = @result, error = @error, available_at = @available_at,
          finished_at = @finished_at, lease_id = @lease_id, lease_expires_at = @lease_expires_at,
          cancel_requested = @cancel_requested, report_hash = @report_hash, updated_at = @updated_at
      WHERE id = @id AND agent_id = @agentId AND lease_id = @leaseId AND status <> 'COMPLETED'`),
    heartbeat: db.prepare(`UPDATE commands
      SET lease_expires_at = @leaseExpiresAt, progress = coalesce(@progress, progress), updated_at = @now
      WHERE id = @id AND status = 'RUNNING' AND agent_id = @agentId AND lease_id = @leaseId
      RETURNING *`),
    cancelPending: db.prepare(`UPDATE commands
      SET status = 'FAILED', error = 'canceled', lease_id = NULL, finished_at = @now, updated_at = @now
      WHERE id = @id AND status = 'PENDING'
      RETURNING *`),
    cancelRunning: db.prepare(`UPDATE commands
      SET cancel_requested = 1, updated_at = @now
      WHERE id = @id AND status = 'RUNNING' AND cancel_requested = 0
      RETURNING *`),
    retry: db.prepare(`UPDATE commands
      SET status = 'PENDING', attempts = 0, result = NULL, error = NULL, agent_id = NULL, lease_id = NULL,
          cancel_requested = 0, progress = NULL, started_at = NULL, finished_at = NULL,
          report_hash = NULL, available_at = @now, updated_at = @now
      WHERE id = @id AND status = 'FAILED'
      RETURNING *`),
    expired: db.prepare<[number], CommandRow>(
      `SELECT * FROM commands WHERE status = 'RUNNING' AND lease_expires_at <= ? ORDER BY lease_expires_at`,
    ),
    expire: db.prepare(`UPDATE commands
      SET status = @status, error = @error, available_at = @availableAt, finished_at = @finishedAt,
          lease_id = @keepLeaseId, lease_expires_at = NULL, updated_at = @now
      WHERE id = @id AND status = 'RUNNING' AND lease_id = @leaseId AND lease_expires_at <= @now
      RETURNING *`),
    nextLeaseExpiry: db.prepare<[], { at: number | null }>(
      `SELECT min(lease_expires_at) AS at FROM commands WHERE status = 'RUNNING'`,
    ),
    nextAvailable: db.prepare<[number], { at: number | null }>(
      `SELECT min(available_at) AS at FROM commands WHERE status = 'PENDING' AND available_at > ?`,
    ),
    insertEvent: db.prepare(`INSERT INTO events (command_id, kind, transition, data, created_at)
      VALUES (?, ?, ?, ?, ?)`),
    eventsSince: db.prepare<[number, number], EventRow>(
      'SELECT seq, kind, transition, data, created_at FROM events WHERE seq > ? ORDER BY seq LIMIT ?',
    ),
    eventsSinceForCommand: db.prepare<[string, number, number], EventRow>(
      'SELECT seq, kind, transition, data, created_at FROM events WHERE command_id = ? AND seq > ? ORDER BY seq LIMIT ?',
    ),
    lastEventFor: db.prepare<[string], EventRow>(
      'SELECT seq, kind, transition, data, created_at FROM events WHERE command_id = ? ORDER BY seq DESC LIMIT 1',
    ),
    lastEventSeq: db.prepare<[], { seq: number | null }>('SELECT max(seq) AS seq FROM events'),
    pruneEvents: db.prepare(`DELETE FROM events WHERE seq IN (
      SELECT seq FROM events WHERE seq <= (SELECT max(seq) FROM events) - @keepCount AND created_at < @before
      ORDER BY seq LIMIT 10000)`),
    countByStatus: db.prepare<[], { status: CommandStatus; n: number }>(
      'SELECT status, count(*) AS n FROM commands GROUP BY status',
    ),
    ping: db.prepare('SELECT 1'),
  };
}
