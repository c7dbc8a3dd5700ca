/**
 * Group commit for the PostgreSQL store: the writes that queue while one transaction commits run
 * together in the next one, on one connection, and share its commit (one WAL flush) and its one
 * turn at the event counter. `await run()` means committed.
 *
 * One batch at a time per replica: the event counter serialises committing writers anyway (it
 * gives event ids in commit order), so parallel transactions of one replica would only queue on
 * it; batching instead makes each turn at the counter carry many writes.
 *
 * A write that finds its precondition gone throws an HttpError (409, 404) without an SQL error,
 * so the transaction goes on for the others. An SQL error aborts the whole transaction: then each
 * write of the batch runs again alone, so one bad write cannot fail the others. A failure while
 * committing leaves the outcome unknown, and every write of the batch is told so.
 *
 * The next batch does not wait for the last one's afterCommit (its events handed to this
 * replica's listeners, which with replicas may first read the other replicas' events from the
 * log): that read is one more round trip that would otherwise sit between every two commits.
 * The callers of a batch still hear back only after its afterCommit, and afterCommits run in
 * commit order, one after another.
 *
 * A batch that made no work available (claims, reports) notifies the other replicas only for their
 * event listeners, and not at once: its notification is held (NOTICE_DELAY_MS) and goes with the
 * next transaction's commit, or on its own when none comes by then. Sent at once, it woke every
 * replica's listening connection and process just as the agent a claim answered was starting its
 * command, on a machine of two cores: measured, interleaved, 0.19–0.29 ms off the dispatch p50
 * across two replicas (BENCHMARKS.md). Held notifications go out in commit order, before any later
 * one of this replica's commits.
 */
import type pg from 'pg';
import type { Command, CommandStatus } from '@agent-executor/common';
import { HttpError } from '../errors.js';
import type { CommandRow } from './command-rows.js';
import { buildEvent, isAvailable, type NewEvent } from './event-log.js';
import { formatNotice, noticeEvents } from './postgres-notice.js';
import { sql, type Statement } from './postgres-statements.js';
import { StatusCounts } from './status-counts.js';
import type { StoredEvent, Transition } from './store.js';

export interface Tx {
  query<R extends pg.QueryResultRow = CommandRow>(statement: Statement, values: unknown[]): Promise<pg.QueryResult<R>>;
  /**
   * Stores a new command (no Idempotency-Key) with the other inserts of the transaction, in one
   * statement sent before the next query or the commit. Its `seq` stays unknown (0).
   */
  insertLater(row: CommandRow): void;
  /**
   * Logs the change (its event commits with it), counts the command's move from `from` (null: a
   * new command) to its status now, and answers the command as it now is.
   */
  log(transition: Transition, row: CommandRow, from: CommandStatus | null): Command;
  /** Counts a move between statuses that logs no event (a command deleted: `to` null). */
  count(from: CommandStatus | null, to: CommandStatus | null): void;
  /**
   * The command's current row, locked for the rest of the transaction (undefined: there is none).
   * For the id a write was queued with (`run(write, { lock })`), it comes from one locking read
   * shared by the run of such writes it belongs to (see WriteHints).
   */
  lockedRow(id: string): Promise<CommandRow | undefined>;
  /**
   * Writes a report's row (reportValues in postgres-rows.ts) with the other reports of the transaction,
   * in one statement sent before the next query or the commit. Only for a row this transaction
   * holds locked and has checked: the statement's guard then matches it, and a miss is an error.
   */
  reportLater(values: unknown[]): void;
  /**
   * Whether this transaction holds the keyed-claim turn (asked for with `run(write, { keyedTurn })`),
   * and when it does not, whether a keyed command due at the hint's `at` was waiting.
   */
  keyedTurn(): Promise<KeyedTurn>;
}

export type Write<T> = (tx: Tx) => Promise<T>;

/**
 * What a write will need, told when it is queued, so that the batch can fetch it for many writes in
 * one round trip: `lock`, the one command whose row it reads locked first (a report); `keyedTurn`, a
 * claim that may take keyed commands (the advisory lock is then tried with BEGIN, in the same round
 * trip).
 */
export interface WriteHints {
  lock?: string;
  keyedTurn?: { lock: number; at: number };
}

export interface KeyedTurn {
  got: boolean;
  waiting: boolean;
}

export interface Committed {
  events: StoredEvent[];
  /** A write left a command PENDING and claimable. */
  available: boolean;
}

/** A committed batch, and the notification to hold for it (see "Notifications" below). */
interface Transaction {
  outcomes: Outcome[];
  committed: Committed;
  notifyAfter?: string;
}

interface Queued {
  write: Write<unknown>;
  hints: WriteHints | undefined;
  resolve: (value: unknown) => void;
  reject: (reason: unknown) => void;
}

type Outcome =
  | { ok: true; value: unknown; events: NewEvent[]; counts: StatusCounts; available: boolean }
  | { ok: false; error: unknown };

/** Writes per transaction, at most: bounds how long one commit holds the counter. */
const MAX_BATCH = 256;

/**
 * Batches of one replica in flight at once. The event counter still lets one commit at a time, but
 * it is taken by a batch's last statement: a second batch runs its BEGIN and its writes while the
 * first waits for its COMMIT (the WAL flush), and queues on the counter only for what remains.
 */
const LANES = 2;

/**
 * How long a batch's notification waits for the next commit to carry it (see the header): past the
 * start of the command a claim hands out (~1–2 ms here), and too short for a reader to notice.
 */
const NOTICE_DELAY_MS = 5;

export class PgGroupCommit {
  private queue: Queued[] = [];
  private readonly draining = new Set<Promise<void>>();
  private lanes = 0;
  /** The afterCommit of the last committed batch, and of every one before it (a chain). */
  private announced: Promise<void> = Promise.resolve();
  /** Notifications held for the next commit, in commit order, and the timer that sends them if none comes. */
  private held: string[] = [];
  private heldTimer: NodeJS.Timeout | undefined;
  /** The notifications sent on their own, until PostgreSQL took every one of them. */
  private heldSent: Promise<void> = Promise.resolve();

  constructor(
    private readonly pool: pg.Pool,
    private readonly options: {
      replica: string;
      now: () => number;
      /** Runs after each commit, before the writes' callers hear back. */
      afterCommit: (committed: Committed) => Promise<void>;
      /** How long a notification is held for the next commit; default NOTICE_DELAY_MS. */
      noticeDelayMs?: number;
    },
  ) {}

  run<T>(write: Write<T>, hints?: WriteHints): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ write: write as Write<unknown>, hints, resolve: resolve as (value: unknown) => void, reject });
      if (this.lanes < LANES) {
        this.lanes++;
        const lane = this.drain();
        this.draining.add(lane);
        void lane.then(() => this.draining.delete(lane));
      }
    });
  }

  /**
   * Resolves once every queued write has been committed or refused, its callers told, and its
   * notification sent.
   */
  async flush(): Promise<void> {
    while (this.draining.size > 0) await Promise.all(this.draining);
    await this.announced;
    this.sendAlone(this.takeHeld());
    await this.heldSent;
  }

  /** Holds a committed batch's notification for the next commit, or NOTICE_DELAY_MS at most. */
  private hold(payload: string): void {
    this.held.push(payload);
    this.heldTimer ??= setTimeout(() => this.sendAlone(this.takeHeld()), this.options.noticeDelayMs ?? NOTICE_DELAY_MS).unref();
  }

  private takeHeld(): string[] {
    clearTimeout(this.heldTimer);
    this.heldTimer = undefined;
    const held = this.held;
    this.held = [];
    return held;
  }

  /**
   * Sends notifications in a statement of their own. Lost (the database is unreachable), the other
   * replicas read these events with the next notification, or at their re-check.
   */
  private sendAlone(payloads: string[]): void {
    if (payloads.length === 0) return;
    const sent = this.pool.query({ ...sql.notifyEach, values: [payloads] }).then(
      () => undefined,
      () => undefined,
    );
    this.heldSent = Promise.all([this.heldSent, sent]).then(() => undefined);
  }

  private async drain(): Promise<void> {
    // One turn first, so the writes queued in this turn of the event loop share the first commit.
    await new Promise((resolve) => setImmediate(resolve));
    try {
      while (this.queue.length > 0) {
        const batch = this.queue.splice(0, MAX_BATCH);
        await this.commitBatch(batch);
      }
    } finally {
      // In the same turn as the loop's last look at the queue: a write queued after it starts a
      // new lane, none is left behind.
      this.lanes--;
    }
  }

  private async commitBatch(batch: Queued[]): Promise<void> {
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (error) {
      for (const { reject } of batch) reject(error);
      return;
    }
    let outcomes: Outcome[] | undefined;
    let committed: Committed | undefined;
    let notifyAfter: string | undefined;
    let failure: { error: unknown; retryAlone: boolean } | undefined;
    // The notifications held so far go with this commit.
    const carried = this.takeHeld();
    try {
      ({ outcomes, committed, notifyAfter } = await this.transaction(client, batch, carried));
      client.release();
      if (notifyAfter !== undefined) this.hold(notifyAfter);
    } catch (error) {
      failure = error instanceof CommitFailed ? { error: error.cause, retryAlone: false } : { error, retryAlone: true };
      // A connection that failed mid-transaction is not given back to the pool for reuse.
      client.release(error instanceof Error ? error : true);
      // Rolled back, or perhaps not: they go again on their own (a repeat changes nothing).
      this.sendAlone(carried);
    }
    if (failure) {
      if (failure.retryAlone && batch.length > 1) {
        for (const queued of batch) await this.commitBatch([queued]);
      } else {
        for (const { reject } of batch) reject(failure.error);
      }
      return;
    }
    const answer = () =>
      batch.forEach(({ resolve, reject }, i) => {
        const outcome = outcomes?.[i];
        if (outcome?.ok) resolve(outcome.value);
        else reject(outcome?.error);
      });
    const after = committed;
    // Chained, not awaited: the next batch may commit meanwhile (see the header). afterCommit
    // reports its own failures (the store's never rejects); the chain must not break on one.
    this.announced = this.announced
      .then(async () => {
        try {
          if (after) await this.options.afterCommit(after);
        } finally {
          answer();
        }
      })
      .catch(() => undefined);
  }

  private async transaction(client: pg.PoolClient, batch: Queued[], carried: string[]): Promise<Transaction> {
    // The pool's connections pipeline (store/postgres.ts): a statement sent is on the wire at once,
    // behind the ones before it, and only the statements whose answer a write needs are awaited.
    // BEGIN goes with the first of them. A keyed claim's turn is tried right after BEGIN, in its
    // own statement before the claims, so that their snapshots see every keyed claim committed
    // before this transaction got the turn; the claim reads the outcome from a setting.
    const turnKey = batch.find((q) => q.hints?.keyedTurn !== undefined)?.hints?.keyedTurn;
    const socket = corkable(client);
    let begun: Promise<unknown> | undefined;
    let turn: Promise<pg.QueryResult<KeyedTurn>> | undefined;
    /**
     * Sends BEGIN (and the keyed turn) once, just before the first statement that follows it and
     * in the same write to the socket (the callers cork around both): a submit-only batch is then
     * one write and one round trip, where BEGIN sent alone first cost the backend a wake-up of its
     * own and the batch a second round trip (~0.3–0.5 ms here).
     */
    const begin = (): Promise<unknown> => {
      if (begun === undefined) {
        // Generic plans inside write transactions: their statements each fit one index whatever
        // the values, and PostgreSQL would otherwise plan most executions again (~0.2 ms of its
        // CPU for the statement that logs events). Reads outside (lists, filters) keep plans for
        // their values.
        const started = client.query('BEGIN; SET LOCAL plan_cache_mode = force_generic_plan');
        turn = turnKey === undefined ? undefined : client.query<KeyedTurn>({ ...sql.tryKeyedTurn, values: [turnKey.lock, turnKey.at] });
        begun = turn ? Promise.all([started, turn]) : started;
        // Awaited with the statements behind it (an unawaited rejection must not go unhandled first).
        begun.catch(() => undefined);
      }
      return begun;
    };
    const keyedTurn = async (): Promise<KeyedTurn> => {
      await begin();
      const row = (await turn)?.rows[0];
      return { got: row?.got === true, waiting: row?.waiting === true };
    };
    const outcomes: Outcome[] = [];
    let inserts: CommandRow[] = [];
    let reports: unknown[][] = [];
    /** Rows read locked for a run of writes queued with `lock`; null: no such command. */
    let prefetched = new Map<string, CommandRow | null>();
    let prefetchedUpTo = 0;
    /** Sends the deferred inserts and reports (not awaited: see queryAfterWrites and the burst at the end). */
    const sendWrites = (): Promise<unknown>[] => {
      const sent: Promise<unknown>[] = [];
      if (inserts.length > 0) {
        const rows = inserts;
        inserts = [];
        sent.push(
          client.query({
            ...sql.insertMany,
            values: [
              rows.map((r) => r.id),
              rows.map((r) => r.type),
              rows.map((r) => r.payload),
              rows.map((r) => r.max_attempts),
              rows.map((r) => r.timeout_ms),
              rows.map((r) => r.available_at),
              rows.map((r) => r.created_at),
              rows.map((r) => r.queue),
              rows.map((r) => r.priority),
              rows.map((r) => r.run_at),
              rows.map((r) => r.concurrency_key),
              rows.map((r) => r.concurrency_limit),
            ],
          }),
        );
      }
      if (reports.length > 0) {
        const rows = reports;
        reports = [];
        // Fails the transaction unless it wrote every row (see the statement).
        sent.push(client.query({ ...sql.reportMany, values: rows[0]!.map((_, c) => rows.map((r) => r[c])) }));
      }
      return sent;
    };
    /**
     * Sends the deferred writes, then the statement — in that order on the wire, so that it sees
     * them — and answers its result once all of them have answered.
     */
    const queryAfterWrites = async <R extends pg.QueryResultRow>(config: pg.QueryConfig): Promise<pg.QueryResult<R>> => {
      socket?.cork();
      const started = begin();
      const sent = sendWrites();
      const query = client.query<R>(config);
      socket?.uncork(); // BEGIN (the first time), the deferred writes and the statement: one write
      const [result] = await Promise.all([query, started, ...sent]);
      return result;
    };
    for (const [i, { write, hints }] of batch.entries()) {
      if (hints?.lock === undefined) prefetched = new Map();
      else if (i >= prefetchedUpTo) {
        // The run of writes from here that each lock one command: one locking read for all (in id
        // order, as every multi-row lock here). Only those writes run until the run ends, and each
        // takes its row once, so no write sees a row another one changed since.
        let end = i;
        while (end < batch.length && batch[end]!.hints?.lock !== undefined) end++;
        const ids = [...new Set(batch.slice(i, end).map((q) => q.hints!.lock!))];
        const { rows } = await queryAfterWrites<CommandRow>({ ...sql.byIdsForUpdate, values: [ids] });
        prefetched = new Map<string, CommandRow | null>(ids.map((id) => [id, null]));
        for (const row of rows) prefetched.set(row.id, row);
        prefetchedUpTo = end;
      }
      const events: NewEvent[] = [];
      const counts = new StatusCounts();
      let available = false;
      const tx: Tx = {
        query: (statement, values) => queryAfterWrites({ name: statement.name, text: statement.text, values }),
        insertLater: (row) => inserts.push(row),
        reportLater: (values) => reports.push(values),
        lockedRow: async (id) => {
          if (hints?.lock === id && prefetched.has(id)) {
            const row = prefetched.get(id)!;
            prefetched.delete(id); // a second write of the same command reads it again, changed
            return row ?? undefined;
          }
          return (await tx.query(sql.byIdForUpdate, [id])).rows[0];
        },
        keyedTurn,
        log: (transition, row, from) => {
          counts.move(from, row.status);
          const event = buildEvent(transition, row, this.options.now());
          // A keyed command leaving RUNNING frees a slot of its key: a passed-over one may start.
          if (isAvailable(row, event.createdAt) || (from === 'RUNNING' && row.status !== 'RUNNING' && row.concurrency_key !== null)) {
            available = true;
          }
          events.push(event);
          return event.command;
        },
        count: (from, to) => counts.move(from, to),
      };
      try {
        const value = await write(tx);
        outcomes.push({ ok: true, value, events, counts, available });
      } catch (error) {
        // A refused precondition changed nothing and left the transaction usable; anything else
        // (an SQL error) aborted it: undo the batch.
        if (!(error instanceof HttpError)) {
          await client.query('ROLLBACK').catch(() => undefined);
          throw error;
        }
        outcomes.push({ ok: false, error });
      }
    }
    const logged = outcomes.flatMap((o) => (o.ok ? o.events : []));
    const available = outcomes.some((o) => o.ok && o.available);
    // The moves of the writes that were taken (a refused one changed nothing), summed by status.
    const moves = new StatusCounts();
    for (const outcome of outcomes) if (outcome.ok) moves.add(outcome.counts);
    const moved = moves.changes().length > 0;
    // Notifications. One that tells of new work goes at commit: the other replicas' polls wait
    // for it, and it must leave no later than the work is visible. Any other (claims, reports:
    // only for the other replicas' event listeners) is held, to go with a later commit (see the
    // header): at commit, PostgreSQL signals every listening backend before it answers, ~0.1 ms
    // more of every transaction here, on the way to a claim's answer. The held ones this commit
    // carries go first: notifications are delivered in the order they were made.
    const notice = noticeEvents(logged);
    const notifyAtCommit = available;
    // The rest goes out in one burst: the deferred writes, the events, COMMIT (a submit-only batch
    // is thus one round trip in all). A statement that fails aborts the transaction, and COMMIT
    // then answers ROLLBACK.
    socket?.cork();
    const before: Promise<unknown>[] = [begin(), ...sendWrites()];
    if (carried.length > 0) before.push(client.query({ ...sql.notifyEach, values: [carried] }));
    const logging =
      logged.length > 0 || moved
        ? client.query<{ last_seq: number }>({
            ...sql.logEvents,
            values: [
              logged.map((e) => e.commandId),
              logged.map((e) => e.kind),
              logged.map((e) => e.transition),
              logged.map((e) => e.data),
              logged.map((e) => e.createdAt),
              this.options.replica,
              available ? '1' : '0',
              moves.inOrder(),
              notice,
              notifyAtCommit,
            ],
          })
        : undefined;
    if (logging) before.push(logging);
    const commit = client.query('COMMIT');
    socket?.uncork(); // the burst leaves in one write
    const settled = await Promise.allSettled(before);
    let ended: pg.QueryResult;
    try {
      ended = await commit;
    } catch (error) {
      throw new CommitFailed(error);
    }
    const refused = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    // Rolled back (a statement failed): nothing is stored, so the writes may run again alone.
    if (refused || ended.command !== 'COMMIT') throw refused?.reason ?? new Error(`COMMIT answered ${ended.command}`);
    const events: StoredEvent[] = [];
    let notifyAfter: string | undefined;
    if (logging) {
      const { rows } = await logging;
      const last = rows[0]!.last_seq;
      const first = last - logged.length + 1;
      logged.forEach(({ commandId: _, ...event }, i) => events.push({ seq: first + i, ...event }));
      if (logged.length > 0 && !notifyAtCommit) notifyAfter = formatNotice(this.options.replica, last, false, notice);
    }
    return { outcomes, committed: { events, available }, notifyAfter };
  }
}

/**
 * The connection's socket, to send several pipelined statements in one write. node-postgres's
 * `connection.stream` (not part of its typed API): undefined if a version does not have it.
 */
function corkable(client: pg.PoolClient): { cork(): void; uncork(): void } | undefined {
  const stream = (client as unknown as { connection?: { stream?: { cork?: unknown; uncork?: unknown } } }).connection?.stream;
  return typeof stream?.cork === 'function' && typeof stream.uncork === 'function' ? (stream as { cork(): void; uncork(): void }) : undefined;
}

/** COMMIT itself failed: whether the batch is stored is unknown, so it must not run again. */
class CommitFailed extends Error {
  constructor(cause: unknown) {
    super('commit failed', { cause });
  }
}
