import type Database from 'better-sqlite3';
import type { CommandStatus } from '@agent-executor/common';
import type { CommandRow } from './command-rows.js';
import type { EventRow } from './event-log.js';

/** A prepared statement: bind parameters, and the row type it reads (for the typed ones). */
type Stmt<P extends unknown[] = unknown[], R = unknown> = Database.Statement<P, R>;

export interface Statements {
  insert: Stmt;
  byId: Stmt<[string], CommandRow>;
  bySeq: Stmt<[number], CommandRow>;
  /** agent_id, lease_id, lease_expires_at, attempts, started_at, updated_at, seq. */
  claim: Stmt<[string, string, number, number, number, number, number]>;
  byIdempotencyKey: Stmt<[string], CommandRow>;
  /** Whether a claim at this time could find a command (undefined: no route would find one). */
  claimable: Stmt<[number], { found: number }>;
  release: Stmt;
  report: Stmt;
  heartbeat: Stmt;
  cancelPending: Stmt;
  cancelRunning: Stmt;
  retry: Stmt;
  retryBySeq: Stmt;
  cancelPendingBySeq: Stmt;
  lastCommandSeq: Stmt<[], { seq: number | null }>;
  expired: Stmt<[number], CommandRow>;
  expire: Stmt;
  nextLeaseExpiry: Stmt<[], { at: number | null }>;
  nextAvailable: Stmt<[], { at: number | null }>;
  insertEvent: Stmt;
  eventsSince: Stmt<[number, number], EventRow>;
  eventsSinceForCommand: Stmt<[string, number, number], EventRow>;
  lastEventFor: Stmt<[string], EventRow>;
  lastEventSeq: Stmt<[], { seq: number | null }>;
  eventLogHead: Stmt<[], { seq: number | null }>;
  firstEventAtOrAfter: Stmt<[number], { seq: number }>;
  youngBelow: Stmt<[number, number, number], { seq: number | null }>;
  pruneEventsBefore: Stmt<[number]>;
  deleteFinished: Stmt<[{ before: number; max: number }], { status: CommandStatus }>;
  oldestFinished: Stmt<[], { at: number | null }>;
  countByStatus: Stmt<[], { status: CommandStatus; n: number }>;
  addCount: Stmt<[number, string]>;
  recount: Stmt;
  ping: Stmt;
  probeSpace: Stmt<[number]>;
  clearProbe: Stmt;
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
       started_at, finished_at, idempotency_key, request_hash, report_hash, queue, priority, run_at,
       concurrency_key, concurrency_limit, ready)
      VALUES (@id, @type, @payload, @status, @result, @error, @agent_id, @lease_id, @lease_expires_at,
       @attempts, @max_attempts, @timeout_ms, @available_at, @cancel_requested, @progress, @created_at,
       @updated_at, @started_at, @finished_at, @idempotency_key, @request_hash, @report_hash, @queue,
       @priority, @run_at, @concurrency_key, @concurrency_limit, @ready)`),
    byId: db.prepare<[string], CommandRow>('SELECT * FROM commands WHERE id = ?'),
    bySeq: db.prepare<[number], CommandRow>('SELECT * FROM commands WHERE seq = ?'),
    // A command a pick (sqlite-routing.ts) found ready moves to RUNNING, guarded: it must still be
    // PENDING and ready. The row is built by claimedRow(), so no RETURNING * reads it back.
    claim: db.prepare<[string, string, number, number, number, number, number]>(`UPDATE commands
      SET status = 'RUNNING', agent_id = ?, lease_id = ?, lease_expires_at = ?, attempts = ?,
          started_at = ?, finished_at = NULL, progress = NULL, report_hash = NULL, updated_at = ?
      WHERE seq = ? AND status = 'PENDING' AND ready = 1`),
    byIdempotencyKey: db.prepare<[string], CommandRow>('SELECT * FROM commands WHERE idempotency_key = ?'),
    // Nothing ready and nothing scheduled that is due: no claim of any route finds a command.
    // (Route-blind on purpose: it only has to be right when it says "nothing", and two index
    // probes stay ~1 µs; a per-route probe would need one statement per route shape.)
    claimable: db.prepare<[number], { found: number }>(
      `SELECT 1 AS found WHERE EXISTS (SELECT 1 FROM commands INDEXED BY commands_ready WHERE status = 'PENDING' AND ready = 1)
          OR EXISTS (SELECT 1 FROM commands INDEXED BY commands_scheduled
                     WHERE status = 'PENDING' AND ready = 0 AND available_at <= ?)`,
    ),
    // available_at is left alone: the command keeps its place at the head of the queue, and it
    // is ready again (its key's slot stays taken: RUNNING and ready both count as active).
    // A cancel asked for while it was leased ends it instead: FAILED "canceled", as an expiry does.
    release: db.prepare(`UPDATE commands
      SET status = CASE WHEN cancel_requested = 1 THEN 'FAILED' ELSE 'PENDING' END,
          error = CASE WHEN cancel_requested = 1 THEN 'canceled' ELSE error END,
          finished_at = CASE WHEN cancel_requested = 1 THEN @now ELSE NULL END,
          lease_id = NULL, lease_expires_at = NULL, attempts = attempts - 1,
          started_at = NULL, ready = 1, updated_at = @now
      WHERE id = @id AND status = 'RUNNING' AND lease_id = @leaseId
      RETURNING *`),
    // Sets the row report() built from the current one it read in the same transaction, so no
    // RETURNING * is needed to know the result (it cost ~6.6 µs of the ~8.4 µs of this update).
    report: db.prepare(`UPDATE commands
      SET status = @status, result = @result, error = @error, available_at = @available_at,
          finished_at = @finished_at, lease_id = @lease_id, lease_expires_at = @lease_expires_at,
          cancel_requested = @cancel_requested, report_hash = @report_hash, ready = @ready, updated_at = @updated_at
      WHERE id = @id AND agent_id = @agentId AND lease_id = @leaseId AND status IN ('RUNNING', 'PENDING')`),
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
          report_hash = NULL, available_at = @now, ready = @ready, updated_at = @now
      WHERE id = @id AND status = 'FAILED'
      RETURNING *`),
    // The bulk forms (sqlite.ts `bulk`): the same guarded changes, by seq.
    retryBySeq: db.prepare(`UPDATE commands
      SET status = 'PENDING', attempts = 0, result = NULL, error = NULL, agent_id = NULL, lease_id = NULL,
          cancel_requested = 0, progress = NULL, started_at = NULL, finished_at = NULL,
          report_hash = NULL, available_at = @now, ready = @ready, updated_at = @now
      WHERE seq = @seq AND status = 'FAILED'
      RETURNING *`),
    cancelPendingBySeq: db.prepare(`UPDATE commands
      SET status = 'FAILED', error = 'canceled', lease_id = NULL, finished_at = @now, updated_at = @now
      WHERE seq = @seq AND status = 'PENDING'
      RETURNING *`),
    lastCommandSeq: db.prepare<[], { seq: number | null }>('SELECT max(seq) AS seq FROM commands'),
    expired: db.prepare<[number], CommandRow>(
      // INDEXED BY: without statistics SQLite reads every RUNNING row through commands_status_seq
      // and sorts them, on each reaper tick; the partial index holds them in expiry order.
      `SELECT * FROM commands INDEXED BY commands_lease WHERE status = 'RUNNING' AND lease_expires_at <= ? ORDER BY lease_expires_at`,
    ),
    expire: db.prepare(`UPDATE commands
      SET status = @status, error = @error, available_at = @availableAt, finished_at = @finishedAt,
          lease_id = @keepLeaseId, lease_expires_at = NULL, ready = @ready, updated_at = @now
      WHERE id = @id AND status = 'RUNNING' AND lease_id = @leaseId AND lease_expires_at <= @now
      RETURNING *`),
    nextLeaseExpiry: db.prepare<[], { at: number | null }>(
      // INDEXED BY, for the reason of `expired`: min() is then the first entry of the index.
      `SELECT min(lease_expires_at) AS at FROM commands INDEXED BY commands_lease WHERE status = 'RUNNING'`,
    ),
    nextAvailable: db.prepare<[], { at: number | null }>(
      // Scheduled commands (runAt, backoff) by due time; the first entry of the partial index.
      `SELECT min(available_at) AS at FROM commands INDEXED BY commands_scheduled WHERE status = 'PENDING' AND ready = 0`,
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
    eventLogHead: db.prepare<[], { seq: number | null }>('SELECT min(seq) AS seq FROM events'),
    // The event log is pruned from its head, in seq order, up to the first event it keeps: this
    // finds the first event young enough to keep through events_created, in O(log n), so the
    // prune costs what it deletes. (It walked the log filtering on created_at: 64 ms per run at
    // 1 M events, every 1 000 events, deleting nothing while the log held less than 24 h.)
    firstEventAtOrAfter: db.prepare<[number], { seq: number }>(
      'SELECT seq FROM events INDEXED BY events_created WHERE created_at >= ? ORDER BY created_at, seq LIMIT 1',
    ),
    // The first young event by seq in a range from the head (see pruneEvents: a clock step back).
    youngBelow: db.prepare<[number, number, number], { seq: number | null }>(
      'SELECT min(seq) AS seq FROM events WHERE seq >= ? AND seq < ? AND created_at >= ?',
    ),
    pruneEventsBefore: db.prepare<[number]>('DELETE FROM events WHERE seq < ?'),
    // Retention: finished commands oldest first, through the partial index on finished_at, so a
    // batch costs what it deletes. Their idempotency keys live on the row and go with it.
    deleteFinished: db.prepare<[{ before: number; max: number }], { status: CommandStatus }>(`DELETE FROM commands WHERE seq IN (
      SELECT seq FROM commands INDEXED BY commands_finished
      WHERE status IN ('COMPLETED', 'FAILED') AND finished_at < @before
      ORDER BY finished_at LIMIT @max)
      RETURNING status`),
    oldestFinished: db.prepare<[], { at: number | null }>(
      `SELECT min(finished_at) AS at FROM commands INDEXED BY commands_finished WHERE status IN ('COMPLETED', 'FAILED')`,
    ),
    // Kept by each write in its own transaction (StatusCounts in sqlite.ts): four rows, not a scan.
    countByStatus: db.prepare<[], { status: CommandStatus; n: number }>('SELECT status, n FROM command_counts'),
    addCount: db.prepare<[number, string]>('UPDATE command_counts SET n = n + ? WHERE status = ?'),
    recount: db.prepare(
      'UPDATE command_counts SET n = (SELECT count(*) FROM commands WHERE commands.status = command_counts.status)',
    ),
    ping: db.prepare('SELECT 1'),
    probeSpace: db.prepare<[number]>('INSERT INTO space_probe (filler) VALUES (zeroblob(?))'),
    clearProbe: db.prepare('DELETE FROM space_probe'),
  };
}
