import { EventEmitter } from 'node:events';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import type {
  ClaimedCommand,
  Command,
  CommandStatus,
  HeartbeatBody,
  HeartbeatResponse,
  ResultBody,
  SubmitBody,
} from '@agent-executor/common';
import { Conflict, DatabaseFull, NotFound, UnprocessableEntity } from '../errors.js';
import { GroupCommit } from '@agent-executor/common/group-commit';
import { newLeaseId } from './lease-ids.js';
import { migrateSqlite } from './migrate-sqlite.js';
import { BACKSTOP_PAGES, SqliteCheckpointer } from './sqlite-checkpointer.js';
import { prepareStatements, type Statements } from './sqlite-statements.js';
import { rowToCommand, withLease, type CommandRow } from './command-rows.js';
import { buildEvent, DEFAULT_EVENT_RETENTION, PRUNE_BATCH, pruneEnd, toStoredEvent } from './event-log.js';
import { emitToEach } from './listeners.js';
import { StatusCounts } from './status-counts.js';
import {
  claimedRow,
  expiryOutcome,
  hashJson,
  holdsLease,
  newCommandRow,
  reportConflictMessage,
  reportedRow,
  reportHash,
} from './transitions.js';
import { routeKey, routeOf } from './claim-route.js';
import { SqliteAgents } from './sqlite-agents.js';
import { HELD, KeySlots, pick, READY, SCHEDULED } from './sqlite-routing.js';
import type {
  AgentRecord,
  BulkBatch,
  BulkFilter,
  BulkStep,
  ClaimRequest,
  CommandStore,
  EventFilter,
  ListFilter,
  ListPage,
  PendingState,
  QueueCounts,
  ReportOutcome,
  Route,
  StoredEvent,
  StoreEvents,
  SubmitOutcome,
  Transition,
  WakeTimes,
} from './store.js';

export interface SqliteStoreOptions {
  path: string;
  /**
   * FULL (the default): a commit is on disk before the caller hears back, so even a power cut
   * loses no accepted command. NORMAL: in WAL mode a commit is in the WAL file (the OS's cache)
   * before the answer, so a killed process loses nothing, but a power cut may lose the last
   * commits; it saves one fsync per commit.
   */
  synchronous?: 'FULL' | 'NORMAL';
  /** Injected for tests; defaults to Date.now and Math.random. */
  now?: () => number;
  random?: () => number;
  /**
   * The event log keeps the events younger than `ms`, at most the newest `count` of them: "at
   * least the last 24 h or 100 000 events" (SPEC §4), whichever is fewer, so its size is bounded
   * at any rate (24 h at 800 commands/s would be 200 million events, ~130 GB).
   */
  eventRetention?: { count: number; ms: number };
  /**
   * Told of a failure after a commit (a throwing event listener, a failed prune): the write is
   * stored and is answered as stored, so the failure can only be reported. Default: stderr.
   */
  onError?: (error: unknown, what: string) => void;
}

const PRUNE_EVERY_EVENTS = 1_000;
/** What the health check writes while the database is full: a few pages. */
const PROBE_BYTES = 16_384;

export class SqliteCommandStore implements CommandStore {
  readonly shared = false;
  readonly events: StoreEvents;
  private readonly emitter = new EventEmitter();
  private readonly db: Database.Database;
  private readonly now: () => number;
  private readonly random: () => number;
  private readonly retention: { count: number; ms: number };
  private readonly stmt: Statements;
  private readonly listStatements = new Map<string, Database.Statement>();
  private readonly onError: (error: unknown, what: string) => void;
  private eventsSincePrune = 0;
  private readonly commitCounts = new StatusCounts();
  /** Set when a write failed for lack of space (SQLITE_FULL); cleared by a write that stores something. */
  private full = false;
  /** Set by a write of the open transaction that left a command PENDING and available. */
  private workStaged = false;
  private readonly commits: GroupCommit;
  private readonly keys: KeySlots;
  private readonly agents: SqliteAgents;
  private readonly checkpointer: SqliteCheckpointer | undefined;

  constructor(options: SqliteStoreOptions) {
    this.now = options.now ?? Date.now;
    this.random = options.random ?? Math.random;
    this.retention = options.eventRetention ?? DEFAULT_EVENT_RETENTION;
    this.onError = options.onError ?? ((error, what) => console.error(`control-server: ${what}`, error));
    if (options.path !== ':memory:') mkdirSync(dirname(options.path), { recursive: true });
    this.db = new Database(options.path);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma(`synchronous = ${options.synchronous ?? 'FULL'}`);
    this.db.pragma('busy_timeout = 5000');
    this.db.pragma('foreign_keys = ON');
    // RETURNING and `IN (SELECT …)` build small temporary tables on every transition; in a temp
    // file each cost ~80 µs more (an UPDATE that matched nothing: 125 µs vs 45 µs). They hold a
    // few rows, never anything durable.
    this.db.pragma('temp_store = MEMORY');
    migrateSqlite(this.db);
    this.emitter.setMaxListeners(0);
    this.events = this.emitter as StoreEvents;
    this.stmt = prepareStatements(this.db);
    this.keys = new KeySlots(this.db);
    this.agents = new SqliteAgents(this.db);
    // Commands written by plain SQL while the server was down (a seeded or repaired file) are
    // counted too: one count by status at start, through the status index (~40 ms per million).
    this.db.transaction(() => this.stmt.recount.run()).immediate();
    this.commits = new GroupCommit(this.db, {
      beforeCommit: () => {
        this.announceWork();
        this.writeCounts();
      },
      afterRollback: () => this.commitCounts.clear(),
      afterCommit: () => this.checkpointer?.committed(),
    });
    if (options.path !== ':memory:') {
      // Checkpoints run in a worker; this connection's own is the backstop (sqlite-checkpointer.ts).
      this.db.pragma(`wal_autocheckpoint = ${BACKSTOP_PAGES}`);
      this.checkpointer = new SqliteCheckpointer(options.path, options.synchronous ?? 'FULL', (error) =>
        this.onError(error, 'a WAL checkpoint in the worker thread failed; the writer checkpoints by itself'),
      );
    }
  }

  /**
   * Inside the committing transaction: if its writes made work available, tell the listeners now,
   * so a claim they start joins this transaction and a waiting poll gets the command in the same
   * commit (one fsync between submit and start, not two).
   */
  private announceWork(): void {
    if (!this.workStaged) return;
    this.workStaged = false;
    // A listener's bug must not undo the commit (nor crash the server): report it.
    emitToEach(this.emitter, 'available', [], (error) => this.onError(error, "an 'available' listener failed"));
  }

  /**
   * The status moves of the open transaction's writes that succeeded, written once per commit:
   * one UPDATE per status that moved, not one or two per write (~3 µs each, measured).
   */
  private writeCounts(): void {
    for (const [status, n] of this.commitCounts.changes()) this.stmt.addCount.run(n, status);
    this.commitCounts.clear();
  }

  /**
   * Runs `change` as one write of a group commit and, once committed, emits its events in order.
   * Events of a write that threw were rolled back with it and are never emitted.
   */
  private async write<T>(change: (log: Log, counts: StatusCounts) => T): Promise<T> {
    const { value, events } = await this.commits.run(() => {
      const logged: StoredEvent[] = [];
      const counts = new StatusCounts();
      /**
       * Appends the change to the event log, counts the move from `from` (null: a new command)
       * to the row's status, and answers the command as it now is.
       */
      const log = (transition: Transition, row: CommandRow, from: CommandStatus | null): Command => {
        counts.move(from, row.status);
        const { commandId, ...event } = buildEvent(transition, row, this.now());
        // Claimable means ready: a held or scheduled PENDING command wakes no poll.
        if (row.status === 'PENDING' && row.ready === READY) this.workStaged = true;
        const seq = Number(
          this.stmt.insertEvent.run(commandId, event.kind, transition, event.data, event.createdAt).lastInsertRowid,
        );
        logged.push({ seq, ...event });
        return event.command;
      };
      const value = change(log, counts);
      // Only now: a write that threw is undone by its savepoint, and so are its moves.
      this.commitCounts.add(counts);
      return { value, events: logged };
    }).catch((error: unknown) => {
      throw this.spaceError(error);
    });
    // Committed: from here on nothing may turn the write into an error (a client told "500"
    // would submit again). Every listener hears every event even when one of them throws.
    // A write that stored something shows there is space again (one that only read shows nothing).
    if (events.length > 0) this.full = false;
    for (const event of events) {
      emitToEach(this.emitter, 'event', [event], (error) =>
        this.onError(error, `an 'event' listener failed on ${event.transition} of command ${event.command.id}`),
      );
    }
    this.eventsSincePrune += events.length;
    if (this.eventsSincePrune >= PRUNE_EVERY_EVENTS) {
      try {
        this.pruneEvents();
      } catch (error) {
        this.onError(this.spaceError(error), 'pruning the event log failed; trying again after the next writes');
      }
    }
    return value;
  }

  /** SQLITE_FULL becomes DatabaseFull (503, and /health reports it); any other error is unchanged. */
  private spaceError(error: unknown): unknown {
    if ((error as { code?: unknown } | null)?.code !== 'SQLITE_FULL') return error;
    this.full = true;
    return new DatabaseFull();
  }

  /**
   * Deletes events from the head of the log up to the first one it keeps: one older than
   * `retention.ms` or outside the newest `retention.count` goes. Each statement is a range of seq
   * or one index lookup, so a prune costs what it deletes, at most PRUNE_BATCH rows. A full batch
   * leaves more to delete: the next write prunes again.
   *
   * Where the clock stepped back, an event newer by seq may carry an older time, so the first event
   * young enough by the events_created index may come after younger ones by seq: the range up to it
   * (at most PRUNE_BATCH rows, by seq) is read for the first young event, which is the boundary.
   */
  private pruneEvents(): void {
    this.eventsSincePrune = 0;
    const head = this.stmt.eventLogHead.get()?.seq;
    const last = this.stmt.lastEventSeq.get()?.seq;
    if (head == null || last == null) return;
    const youngSince = this.now() - this.retention.ms;
    let keptByTime = this.stmt.firstEventAtOrAfter.get(youngSince)?.seq;
    if (keptByTime !== undefined && keptByTime > head) {
      const below = Math.min(keptByTime, head + PRUNE_BATCH);
      keptByTime = this.stmt.youngBelow.get(head, below, youngSince)?.seq ?? keptByTime;
    }
    const end = pruneEnd({ head, last, keptByTime, keepCount: this.retention.count });
    if (end <= head) return;
    const { changes } = this.stmt.pruneEventsBefore.run(end);
    if (changes >= PRUNE_BATCH) this.eventsSincePrune = PRUNE_EVERY_EVENTS;
  }

  private insertCommand(body: SubmitBody, idempotencyKey: string | null, requestHash: string | null): CommandRow {
    const now = this.now();
    const row = newCommandRow(body, now, idempotencyKey, requestHash);
    const key = row.concurrency_key;
    if (key !== null && row.concurrency_limit !== null && this.keys.limit(key, row.concurrency_limit) > 0) {
      this.workStaged = true;
    }
    row.ready = this.keys.readiness(key, row.available_at, now);
    row.seq = Number(this.stmt.insert.run(row).lastInsertRowid);
    return row;
  }


  private row(id: string): CommandRow {
    const row = this.stmt.byId.get(id);
    if (!row) throw new NotFound(`command ${id} not found`);
    return row;
  }

  async submit(body: SubmitBody, idempotencyKey?: string): Promise<SubmitOutcome> {
    const requestHash = idempotencyKey === undefined ? null : hashJson(body);
    return this.write((log) => {
      if (idempotencyKey !== undefined) {
        const existing = this.stmt.byIdempotencyKey.get(idempotencyKey);
        if (existing) {
          if (existing.request_hash !== requestHash) {
            throw new UnprocessableEntity('Idempotency-Key was already used with a different body');
          }
          return { command: rowToCommand(existing), replayed: true };
        }
      }
      const row = this.insertCommand(body, idempotencyKey ?? null, requestHash);
      return { command: log('submit', row, null), replayed: false };
    });
  }

  async submitBatch(bodies: SubmitBody[]): Promise<Command[]> {
    return this.write((log) =>
      bodies.map((body) => {
        const row = this.insertCommand(body, null, null);
        return log('submit', row, null);
      }),
    );
  }

  async get(id: string): Promise<Command | undefined> {
    const row = this.stmt.byId.get(id);
    return row && rowToCommand(row);
  }

  async list(filter: ListFilter): Promise<ListPage> {
    const where: string[] = [];
    if (filter.status !== undefined) where.push('status = @status');
    if (filter.type !== undefined) where.push('type = @type');
    if (filter.agentId !== undefined) where.push('agent_id = @agentId');
    if (filter.queue !== undefined) where.push('queue = @queue');
    if (filter.beforeSeq !== undefined) where.push('seq < @beforeSeq');
    const sql = `SELECT * FROM commands ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
      ORDER BY seq DESC LIMIT @limit`;
    const rows = this.cachedStatement(sql).all({
      status: filter.status,
      type: filter.type,
      agentId: filter.agentId,
      queue: filter.queue,
      beforeSeq: filter.beforeSeq,
      limit: filter.limit + 1,
    }) as CommandRow[];
    const page = rows.slice(0, filter.limit);
    const last = page.at(-1);
    return {
      commands: page.map(rowToCommand),
      ...(rows.length > filter.limit && last ? { nextBeforeSeq: last.seq } : {}),
    };
  }

  async claim(agentId: string, leaseMs: number, route?: Partial<Route>): Promise<ClaimedCommand | undefined> {
    return (await this.claimBatch(agentId, leaseMs, 1, route))[0];
  }

  async claimBatch(agentId: string, leaseMs: number, max: number, route?: Partial<Route>): Promise<ClaimedCommand[]> {
    return (await this.claimEach([{ agentId, max, ...route }], leaseMs))[0] ?? [];
  }

  async claimEach(requests: readonly ClaimRequest[], leaseMs: number): Promise<ClaimedCommand[][]> {
    // An idle fleet renews thousands of polls a minute against an empty queue: when no write is
    // queued and nothing is claimable, answer without a write transaction (a ~1 µs read through
    // the claim index instead of ~50 µs for an UPDATE … RETURNING that matches nothing, and its
    // commit). With writes queued, the claim must run after them, in their transaction.
    if (this.commits.idle && this.stmt.claimable.get(this.now()) === undefined) return requests.map(() => []);
    return this.write((log) => {
      const now = this.now();
      // Due scheduled commands join the claim index first, so a claim never misses one whose time
      // has come before the reaper's timer fired: an empty index range when none is due.
      if (this.keys.promoteDue(now).ready > 0) this.workStaged = true;
      const answers: ClaimedCommand[][] = [];
      // Routes that found less than they asked for: the requests after with the same route would
      // find nothing either.
      const exhausted = new Set<string>();
      for (const request of requests) {
        const route = routeOf(request);
        const shape = routeKey(route);
        if (exhausted.has(shape)) {
          answers.push([]);
          continue;
        }
        const { agentId, max } = request;
        const rows: CommandRow[] = [];
        for (const seq of pick(this.db, route, max)) {
          const current = this.stmt.bySeq.get(seq);
          if (!current) continue;
          // Each lease gets its own 128 random bits.
          const leaseId = newLeaseId();
          const row = claimedRow(current, agentId, leaseId, now, leaseMs);
          const { changes } = this.stmt.claim.run(agentId, leaseId, now + leaseMs, row.attempts, now, now, seq);
          if (changes === 1) rows.push(row);
        }
        // The pick is in claim order already: priority first, then submission.
        answers.push(rows.map((row) => withLease(log('claim', row, 'PENDING'), row)));
        if (rows.length < max) exhausted.add(shape);
      }
      return answers;
    });
  }

  async release(id: string, leaseId: string): Promise<void> {
    await this.write((log) => {
      const row = this.stmt.release.get({ id, leaseId, now: this.now() }) as CommandRow | undefined;
      if (!row) return;
      if (row.status === 'PENDING') {
        log('release', row, 'RUNNING');
        return;
      }
      // Its cancel was asked for while it was leased: it ends, and its key's slot goes on.
      if (this.keys.release(row.concurrency_key) > 0) this.workStaged = true;
      log('cancel', row, 'RUNNING');
    });
  }

  async report(id: string, body: ResultBody): Promise<ReportOutcome> {
    const hash = reportHash(body);
    return this.write((log) => {
      const current = this.row(id);
      if (current.report_hash === hash) return { command: rowToCommand(current), replayed: true };
      if (!holdsLease(current, body)) throw new Conflict(reportConflictMessage(current, body.agentId));
      const now = this.now();
      const row = reportedRow(current, body, hash, now, this.random);
      const leaseId = body.leaseId ?? current.lease_id;
      // It leaves RUNNING: its key's slot goes to the next held command (a retry waits its backoff).
      if (holdsSlot(current) && this.keys.release(current.concurrency_key) > 0) this.workStaged = true;
      if (row.status === 'PENDING') row.ready = this.readinessAfterRelease(current, row.available_at, now);
      const { changes } = this.stmt.report.run({ ...row, agentId: body.agentId, leaseId });
      if (changes !== 1) throw new Conflict(reportConflictMessage(current, body.agentId));
      return { command: log('report', row, current.status), replayed: false };
    });
  }

  async heartbeat(id: string, body: HeartbeatBody, leaseMs: number): Promise<HeartbeatResponse> {
    return this.write((log) => {
      const now = this.now();
      const row = this.stmt.heartbeat.get({
        id,
        agentId: body.agentId,
        leaseId: body.leaseId,
        leaseExpiresAt: now + leaseMs,
        progress: body.progress === undefined ? null : JSON.stringify(body.progress),
        now,
      }) as CommandRow | undefined;
      if (!row) {
        this.row(id);
        throw new Conflict(`lease lost: command ${id} is no longer leased to ${body.agentId} under this lease`);
      }
      if (body.progress !== undefined) log('progress', row, row.status);
      return {
        leaseExpiresAt: new Date(row.lease_expires_at ?? now).toISOString(),
        cancelRequested: row.cancel_requested === 1,
      };
    });
  }

  async cancel(id: string): Promise<Command> {
    return this.write((log) => {
      const current = this.row(id);
      if (current.status === 'RUNNING' && current.cancel_requested === 1) return rowToCommand(current);
      const params = { id, now: this.now() };
      const row = (this.stmt.cancelPending.get(params) ?? this.stmt.cancelRunning.get(params)) as
        | CommandRow
        | undefined;
      if (!row) throw new Conflict(`command ${id} is already ${current.status}`);
      // A ready command held one of its key's slots: it goes to the next held one.
      if (current.status === 'PENDING' && holdsSlot(current) && this.keys.release(current.concurrency_key) > 0) {
        this.workStaged = true;
      }
      return log('cancel', row, current.status);
    });
  }

  async retry(id: string): Promise<Command> {
    return this.write((log) => {
      const current = this.row(id);
      const now = this.now();
      if (current.status !== 'FAILED') {
        throw new Conflict(`only a FAILED command can be retried; command ${id} is ${current.status}`);
      }
      const ready = this.keys.readiness(current.concurrency_key, now, now);
      const row = this.stmt.retry.get({ id, now, ready }) as CommandRow | undefined;
      if (!row) throw new Conflict(`only a FAILED command can be retried; command ${id} is ${current.status}`);
      return log('retry', row, 'FAILED');
    });
  }

  async retryFailed(filter: BulkFilter, batch: BulkBatch): Promise<BulkStep> {
    return this.bulk('FAILED', filter, batch, (log, { seq, concurrency_key }) => {
      const now = this.now();
      // Like a single retry: it takes a slot of its key, or waits held.
      const ready = this.keys.readiness(concurrency_key, now, now);
      const row = this.stmt.retryBySeq.get({ seq, now, ready }) as CommandRow | undefined;
      return row && log('retry', row, 'FAILED');
    });
  }

  async cancelPending(filter: BulkFilter, batch: BulkBatch): Promise<BulkStep> {
    return this.bulk('PENDING', filter, batch, (log, current) => {
      const row = this.stmt.cancelPendingBySeq.get({ seq: current.seq, now: this.now() }) as CommandRow | undefined;
      if (!row) return undefined;
      // A ready command held one of its key's slots: it goes to the next held one.
      if (current.ready === READY && this.keys.release(current.concurrency_key) > 0) this.workStaged = true;
      return log('cancel', row, 'PENDING');
    });
  }

  async lastCommandSeq(): Promise<number> {
    return this.stmt.lastCommandSeq.get()?.seq ?? 0;
  }

  /**
   * Selects one batch of `status` commands matching `filter` and changes each through the same
   * guarded statement as the single-command action, all in one write.
   */
  private async bulk(
    status: CommandStatus,
    filter: BulkFilter,
    batch: BulkBatch,
    change: (log: Log, row: BulkRow) => Command | undefined,
  ): Promise<BulkStep> {
    const where = ['status = @status', 'seq > @afterSeq', 'seq <= @upToSeq'];
    if (filter.type !== undefined) where.push('type = @type');
    if (filter.queue !== undefined) where.push('queue = @queue');
    if (filter.agentId !== undefined) where.push('agent_id = @agentId');
    if (filter.createdBefore !== undefined) where.push('created_at < @createdBefore');
    // Through commands_status_seq: a range of (status, seq), in order.
    const statement = this.cachedStatement(
      `SELECT seq, concurrency_key, ready FROM commands INDEXED BY commands_status_seq WHERE ${where.join(' AND ')} ORDER BY seq LIMIT @max`,
    );
    return this.write((log) => {
      const rows = statement.all({ status, ...batch, ...filter }) as BulkRow[];
      let changed = 0;
      for (const row of rows) if (change(log, row)) changed++;
      return { changed, ...(rows.length > 0 ? { lastSeq: rows.at(-1)!.seq } : {}) };
    });
  }

  private cachedStatement(sql: string): Database.Statement {
    let statement = this.listStatements.get(sql);
    if (!statement) {
      statement = this.db.prepare(sql);
      this.listStatements.set(sql, statement);
    }
    return statement;
  }

  async requeueExpired(): Promise<Command[]> {
    return this.write((log) => {
      const now = this.now();
      const changed: Command[] = [];
      for (const expired of this.stmt.expired.all(now)) {
        const outcome = expiryOutcome(expired, now, this.random);
        if (this.keys.release(expired.concurrency_key) > 0) this.workStaged = true;
        const ready =
          outcome.status === 'PENDING' ? this.readinessAfterRelease(expired, outcome.availableAt, now) : expired.ready;
        const row = this.stmt.expire.get({ id: expired.id, leaseId: expired.lease_id, ...outcome, ready, now }) as
          | CommandRow
          | undefined;
        if (!row) continue;
        changed.push(log('expire', row, 'RUNNING'));
      }
      return changed;
    });
  }

  async nextWakeAt(): Promise<WakeTimes> {
    const leaseExpiresAt = this.stmt.nextLeaseExpiry.get()?.at ?? null;
    const availableAt = this.stmt.nextAvailable.get()?.at ?? null;
    return {
      ...(leaseExpiresAt === null ? {} : { leaseExpiresAt }),
      ...(availableAt === null ? {} : { availableAt }),
    };
  }

  async promoteDue(): Promise<boolean> {
    return this.write(() => {
      const { ready, more } = this.keys.promoteDue(this.now());
      if (ready > 0) this.workStaged = true;
      return more;
    });
  }

  async pendingState(id: string): Promise<PendingState | undefined> {
    const row = this.stmt.byId.get(id);
    if (!row || row.status !== 'PENDING') return undefined;
    const base = { queue: row.queue, type: row.type };
    if (row.ready === SCHEDULED && row.available_at > this.now()) {
      return { ...base, state: 'scheduled', until: row.available_at };
    }
    if (row.ready !== HELD || row.concurrency_key === null) return { ...base, state: 'ready' };
    const key = this.keys.state(row.concurrency_key);
    return { ...base, state: 'held', running: key?.running ?? 0, limit: key?.limit ?? row.concurrency_limit ?? 0 };
  }

  async saveAgents(records: readonly AgentRecord[]): Promise<void> {
    if (records.length > 0) await this.write(() => this.agents.save(records));
  }

  async loadAgents(seenSince: number): Promise<AgentRecord[]> {
    return this.agents.load(seenSince);
  }

  async drainAgent(id: string): Promise<boolean> {
    return this.write(() => this.agents.setDraining(id));
  }

  async runningByAgent(): Promise<Map<string, number>> {
    return this.agents.runningByAgent();
  }

  async queueCounts(): Promise<QueueCounts[]> {
    return this.agents.queueCounts();
  }

  /**
   * A command going back to PENDING from RUNNING (a retryable failure, an expired lease): with
   * a backoff ahead it is scheduled; due already, it takes a slot of its key like a new submit.
   */
  private readinessAfterRelease(current: CommandRow, availableAt: number, now: number): CommandRow['ready'] {
    return this.keys.readiness(current.concurrency_key, availableAt, now);
  }

  async eventsSince(afterSeq: number, limit: number, filter: EventFilter = {}): Promise<StoredEvent[]> {
    const rows =
      filter.commandId === undefined
        ? this.stmt.eventsSince.all(afterSeq, limit)
        : this.stmt.eventsSinceForCommand.all(filter.commandId, afterSeq, limit);
    const events = rows.map(toStoredEvent);
    return filter.status === undefined ? events : events.filter((e) => e.command.status === filter.status);
  }

  async lastEventFor(commandId: string): Promise<StoredEvent | undefined> {
    const row = this.stmt.lastEventFor.get(commandId);
    return row && toStoredEvent(row);
  }

  async lastEventSeq(): Promise<number> {
    return this.stmt.lastEventSeq.get()?.seq ?? 0;
  }

  async oldestEventSeq(): Promise<number | undefined> {
    return this.stmt.eventLogHead.get()?.seq ?? undefined;
  }

  async deleteFinishedBefore(before: number, max: number): Promise<number> {
    return this.write((_log, counts) => {
      const deleted = this.stmt.deleteFinished.all({ before, max });
      for (const { status } of deleted) counts.move(status, null);
      return deleted.length;
    });
  }

  async oldestFinishedAt(): Promise<number | undefined> {
    return this.stmt.oldestFinished.get()?.at ?? undefined;
  }

  isFull(): boolean {
    return this.full;
  }

  async countByStatus(): Promise<Record<CommandStatus, number>> {
    const counts: Record<CommandStatus, number> = { PENDING: 0, RUNNING: 0, COMPLETED: 0, FAILED: 0 };
    for (const { status, n } of this.stmt.countByStatus.all()) counts[status] = n;
    return counts;
  }

  async ping(): Promise<void> {
    this.stmt.ping.get();
    if (!this.full) return;
    // Full since the last write: write (and delete) a few pages, so space that has returned is
    // noticed without waiting for a client's write. Throws DatabaseFull while there is none.
    await this.write(() => {
      this.stmt.probeSpace.run(PROBE_BYTES);
      this.stmt.clearProbe.run();
    });
    this.full = false;
  }

  async close(): Promise<void> {
    if (!this.db.open) return;
    this.commits.flush();
    // The worker's connection first: the last connection to close checkpoints and removes the WAL.
    await this.checkpointer?.close();
    if (!this.db.open) return;
    this.commits.flush();
    this.db.close();
  }
}

type Log = (transition: Transition, row: CommandRow, from: CommandStatus | null) => Command;

/** What a bulk action reads of each command it selects (the routing state it must keep right). */
type BulkRow = Pick<CommandRow, 'seq' | 'concurrency_key' | 'ready'>;

/** RUNNING and ready commands count against their key's limit (see KeySlots). */
function holdsSlot(row: CommandRow): boolean {
  return row.status === 'RUNNING' || (row.status === 'PENDING' && row.ready === READY);
}

