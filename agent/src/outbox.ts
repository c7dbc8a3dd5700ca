import type Database from 'better-sqlite3';
import type { Outcome } from './outcome.js';

/**
 * States of a command in the outbox, in order:
 * - `started`: the executor is about to run (written, durably, before it runs);
 * - `finished`: the outcome is kept (written, durably, before it is reported);
 * - `reported`: the server took the report;
 * - `dropped`: the command is not ours any more (the server answered 404/409, or the lease was
 *   lost mid-execution); a finished outcome stays in the row.
 */
export type OutboxState = 'started' | 'finished' | 'reported' | 'dropped';

export interface OutboxEntry {
  commandId: string;
  leaseId: string;
  type: string;
  state: OutboxState;
  outcome: Outcome | undefined;
  executions: number;
  note: string | null;
  updatedAt: number;
}

/** What to do with a claimed command. */
export type Plan = { kind: 'execute' } | { kind: 'replay'; outcome: Outcome };

interface Row {
  command_id: string;
  lease_id: string;
  type: string;
  state: OutboxState;
  status: 'COMPLETED' | 'FAILED' | null;
  result: string | null;
  error: string | null;
  retryable: number | null;
  executions: number;
  note: string | null;
  updated_at: number;
}

/**
 * The idempotency log. Every transition is one statement guarded by the lease it belongs to,
 * so a slow attempt whose lease has moved on can never overwrite the newer attempt's row.
 */
export class Outbox {
  private readonly stmt;
  /** Made once: building a better-sqlite3 transaction function costs more than running it. */
  private readonly beginTransaction;

  constructor(
    private readonly db: Database.Database,
    private readonly now: () => number = Date.now,
  ) {
    this.stmt = {
      get: db.prepare<[string], Row>('SELECT * FROM outbox WHERE command_id = ?'),
      // A command this agent has never seen (almost every claim): one statement, no read first.
      startNew: db.prepare(`INSERT INTO outbox (command_id, lease_id, type, state, executions, updated_at)
        VALUES (@commandId, @leaseId, @type, 'started', 1, @now) ON CONFLICT (command_id) DO NOTHING`),
      start: db.prepare(`INSERT INTO outbox (command_id, lease_id, type, state, executions, updated_at)
        VALUES (@commandId, @leaseId, @type, 'started', 1, @now)
        ON CONFLICT (command_id) DO UPDATE SET lease_id = @leaseId, state = 'started', status = NULL,
          result = NULL, error = NULL, retryable = NULL, note = NULL, executions = executions + 1, updated_at = @now`),
      adopt: db.prepare(`UPDATE outbox SET lease_id = @leaseId, state = 'finished', note = NULL, updated_at = @now
        WHERE command_id = @commandId`),
      finish: db.prepare(`UPDATE outbox
        SET state = 'finished', status = @status, result = @result, error = @error, retryable = @retryable, updated_at = @now
        WHERE command_id = @commandId AND lease_id = @leaseId AND state = 'started'`),
      replace: db.prepare(`UPDATE outbox
        SET status = @status, result = @result, error = @error, retryable = @retryable, updated_at = @now
        WHERE command_id = @commandId AND lease_id = @leaseId AND state = 'finished'`),
      reported: db.prepare(`UPDATE outbox SET state = 'reported', updated_at = @now
        WHERE command_id = @commandId AND lease_id = @leaseId AND state = 'finished'`),
      drop: db.prepare(`UPDATE outbox SET state = 'dropped', note = @note, updated_at = @now
        WHERE command_id = @commandId AND lease_id = @leaseId AND state IN ('started', 'finished')`),
      interrupt: db.prepare(`UPDATE outbox
        SET state = 'finished', status = 'FAILED', result = NULL, error = 'interrupted', retryable = 1, updated_at = @now
        WHERE state = 'started'`),
      unreported: db.prepare<[], Row>(`SELECT * FROM outbox WHERE state = 'finished' ORDER BY updated_at`),
      countUnreported: db.prepare<[], { n: number }>(`SELECT count(*) AS n FROM outbox WHERE state = 'finished'`),
      // The subquery walks the outbox_state index (state, updated_at) from its oldest settled row and
      // stops after @limit: its cost is what it deletes, whatever the size of the log.
      prune: db.prepare(`DELETE FROM outbox WHERE rowid IN (
        SELECT rowid FROM outbox WHERE state IN ('reported', 'dropped') AND updated_at < @before LIMIT @limit)`),
    };
    this.beginTransaction = db.transaction((commandId: string, leaseId: string, type: string) => this.plan(commandId, leaseId, type));
  }

  /**
   * `begin` without a transaction of its own, for a caller already inside one (OutboxWrites runs
   * it in a group commit): its read and its write must not be split by another writer.
   */
  plan(commandId: string, leaseId: string, type: string): Plan {
    const params = { commandId, leaseId, type, now: this.now() };
    if (this.stmt.startNew.run(params).changes === 1) return { kind: 'execute' };
    // A row was there already: the command came back to this agent (a retry, a replay).
    const row = this.stmt.get.get(commandId);
    const outcome = row && toOutcome(row);
    if (row && outcome && (row.state === 'finished' || outcome.status === 'COMPLETED')) {
      this.stmt.adopt.run(params);
      return { kind: 'replay', outcome };
    }
    this.stmt.start.run(params);
    return { kind: 'execute' };
  }

  /**
   * Decides, durably, what to do with a command just claimed under `leaseId`:
   * - an outcome not yet reported, or a COMPLETED one, is replayed: reported again, not re-run;
   * - otherwise (new command, or a failure the server chose to retry) it is executed, and the
   *   row says `started` before this returns. (A row still `started` belongs to an attempt
   *   whose lease the server has since given up on; that attempt learns it at its next
   *   heartbeat, and its late writes are refused because they name the old lease.)
   */
  begin(commandId: string, leaseId: string, type: string): Plan {
    return this.beginTransaction.immediate(commandId, leaseId, type);
  }

  /** Keeps the outcome of the attempt under `leaseId`. False when that attempt is not current. */
  finish(commandId: string, leaseId: string, outcome: Outcome): boolean {
    return (
      this.stmt.finish.run({ commandId, leaseId, ...this.columns(outcome) }).changes === 1
    );
  }

  private columns(outcome: Outcome) {
    return {
      status: outcome.status,
      result: JSON.stringify(outcome.result ?? null),
      error: outcome.error,
      retryable: outcome.retryable ? 1 : 0,
      now: this.now(),
    };
  }

  /** Swaps a finished, unreported outcome for another (one cut down after the server refused it). */
  replace(commandId: string, leaseId: string, outcome: Outcome): boolean {
    return this.stmt.replace.run({ commandId, leaseId, ...this.columns(outcome) }).changes === 1;
  }

  markReported(commandId: string, leaseId: string): boolean {
    return this.stmt.reported.run({ commandId, leaseId, now: this.now() }).changes === 1;
  }

  drop(commandId: string, leaseId: string, note: string): boolean {
    return this.stmt.drop.run({ commandId, leaseId, note, now: this.now() }).changes === 1;
  }

  /**
   * At start-up nothing is running, so every `started` row was cut off by a crash: it becomes a
   * finished FAILED `interrupted` (retryable) outcome, which the server will retry.
   */
  interruptUnfinished(): number {
    return this.stmt.interrupt.run({ now: this.now() }).changes;
  }

  /** Finished outcomes the server has not taken yet, oldest first. */
  unreported(): OutboxEntry[] {
    return this.stmt.unreported.all().map(toEntry);
  }

  /** How many finished outcomes the server has not taken yet (the agent's metrics read it at each scrape). */
  countUnreported(): number {
    return this.stmt.countUnreported.get()?.n ?? 0;
  }

  get(commandId: string): OutboxEntry | undefined {
    const row = this.stmt.get.get(commandId);
    return row && toEntry(row);
  }

  /**
   * Forgets up to `limit` settled (reported or dropped) rows older than `ageMs`: by then the
   * server has long settled those commands. Answers how many went; fewer than `limit` means done.
   */
  prune(ageMs: number, limit: number): number {
    return this.stmt.prune.run({ before: this.now() - ageMs, limit }).changes;
  }
}

function toOutcome(row: Row): Outcome | undefined {
  if (row.status === null) return undefined;
  const result: unknown = row.result === null ? null : JSON.parse(row.result);
  return row.status === 'COMPLETED'
    ? { status: 'COMPLETED', result, error: null, retryable: false }
    : { status: 'FAILED', result, error: row.error ?? 'failed', retryable: row.retryable === 1 };
}

function toEntry(row: Row): OutboxEntry {
  return {
    commandId: row.command_id,
    leaseId: row.lease_id,
    type: row.type,
    state: row.state,
    outcome: toOutcome(row),
    executions: row.executions,
    note: row.note,
    updatedAt: row.updated_at,
  };
}
