import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { v7 as uuidv7 } from 'uuid';
import {
  DEFAULT_HTTP_TIMEOUT_MS,
  DEFAULT_MAX_ATTEMPTS,
  DELAY_TIMEOUT_MARGIN_MS,
  DEFAULT_QUEUE,
  CommandType,
  type ClaimedCommand,
  type Command,
  type CommandStatus,
  type HeartbeatBody,
  type HeartbeatResponse,
  type ResultBody,
  type SubmitBody,
} from '@agent-executor/common';
import { Conflict, DatabaseFull, NotFound, UnprocessableEntity } from '../errors.js';
import { retryBackoffMs } from './backoff.js';
import { GroupCommit } from '@agent-executor/common/group-commit';
import { migrateSqlite } from './migrate-sqlite.js';
import { prepareStatements, type EventRow, type Statements } from './sqlite-statements.js';
import { rowToCommand, withLease, type CommandRow } from './sqlite-rows.js';
import { SqliteAgents } from './sqlite-agents.js';
import { claimStatement, HELD, KeySlots, READY, routeParams, SCHEDULED } from './sqlite-routing.js';
import type {
  AgentRecord,
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
/** At most this many events deleted per prune: ~2 ms. A full batch prunes again at the next write. */
const PRUNE_BATCH = 2_000;

export class SqliteCommandStore implements CommandStore {
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
  /** Set when a write failed for lack of space (SQLITE_FULL); cleared by a write that stores something. */
  private full = false;
  /** Set by a write of the open transaction that left a command PENDING and available. */
  private workStaged = false;
  private readonly commits: GroupCommit;
  private readonly keys: KeySlots;
  private readonly agents: SqliteAgents;

  constructor(options: SqliteStoreOptions) {
    this.now = options.now ?? Date.now;
    this.random = options.random ?? Math.random;
    this.retention = options.eventRetention ?? { count: 100_000, ms: 24 * 60 * 60 * 1000 };
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
    this.commits = new GroupCommit(this.db, { beforeCommit: () => this.announceWork() });
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
    for (const listener of this.emitter.listeners('available') as (() => void)[]) {
      try {
        listener();
      } catch (error) {
        this.onError(error, "an 'available' listener failed");
      }
    }
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
        const command = rowToCommand(row);
        const data = JSON.stringify(command);
        const kind = transition === 'progress' ? 'progress' : 'status';
        const createdAt = this.now();
        if (row.status === 'PENDING' && row.ready === READY) this.workStaged = true;
        const seq = Number(this.stmt.insertEvent.run(row.id, kind, transition, data, createdAt).lastInsertRowid);
        logged.push({ seq, kind, transition, command, data, createdAt });
        return command;
      };
      const value = change(log, counts);
      counts.apply(this.stmt.addCount);
      return { value, events: logged };
    }).catch((error: unknown) => {
      throw this.spaceError(error);
    });
    // Committed: from here on nothing may turn the write into an error (a client told "500"
    // would submit again). Every listener hears every event even when one of them throws.
    // A write that stored something shows there is space again (one that only read shows nothing).
    if (events.length > 0) this.full = false;
    const listeners = this.emitter.listeners('event') as ((event: StoredEvent) => void)[];
    for (const event of events) {
      for (const listener of listeners) {
        try {
          listener(event);
        } catch (error) {
          this.onError(error, `an 'event' listener failed on ${event.transition} of command ${event.command.id}`);
        }
      }
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
   * Where the clock stepped back, an event newer by seq may carry an older time; the first event
   * young enough by the events_created index is the boundary then, which may delete a few events
   * younger than the limit after such a step.
   */
  private pruneEvents(): void {
    this.eventsSincePrune = 0;
    const head = this.stmt.eventLogHead.get()?.seq;
    const last = this.stmt.lastEventSeq.get()?.seq;
    if (head == null || last == null) return;
    const keptByTime = this.stmt.firstEventAtOrAfter.get(this.now() - this.retention.ms)?.seq ?? last + 1;
    const end = Math.min(Math.max(keptByTime, last - this.retention.count + 1), head + PRUNE_BATCH);
    if (end <= head) return;
    const { changes } = this.stmt.pruneEventsBefore.run(end);
    if (changes >= PRUNE_BATCH) this.eventsSincePrune = PRUNE_EVERY_EVENTS;
  }

  private insertCommand(body: SubmitBody, idempotencyKey: string | null, requestHash: string | null): CommandRow {
    const now = this.now();
    const runAt = body.runAt === undefined ? null : Date.parse(body.runAt);
    const key = body.concurrencyKey ?? null;
    if (key !== null && body.concurrencyLimit !== undefined && this.keys.limit(key, body.concurrencyLimit) > 0) {
      this.workStaged = true;
    }
    const availableAt = runAt === null ? now : Math.max(now, runAt);
    const row: CommandRow = {
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
      concurrency_key: key,
      concurrency_limit: body.concurrencyLimit ?? null,
      ready: this.keys.readiness(key, availableAt, now),
    };
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
    let statement = this.listStatements.get(sql);
    if (!statement) {
      statement = this.db.prepare(sql);
      this.listStatements.set(sql, statement);
    }
    const rows = statement.all({
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
        // Each row gets its own random lease id (128 bits from SQLite's randomblob).
        const rows = claimStatement(this.db, route).all({
          agentId,
          leaseExpiresAt: now + leaseMs,
          now,
          max,
          ...routeParams(route),
        }) as CommandRow[];
        answers.push(
          rows
            .sort((a, b) => b.priority - a.priority || a.seq - b.seq)
            .map((row) => withLease(log('claim', row, 'PENDING'), row)),
        );
        if (rows.length < max) exhausted.add(shape);
      }
      return answers;
    });
  }

  async release(id: string, leaseId: string): Promise<void> {
    await this.write((log) => {
      const row = this.stmt.release.get({ id, leaseId, now: this.now() }) as CommandRow | undefined;
      if (row) log('release', row, 'RUNNING');
    });
  }

  async report(id: string, body: ResultBody): Promise<ReportOutcome> {
    const reportHash = hashJson([
      body.agentId,
      body.leaseId ?? null,
      body.status ?? null,
      body.result ?? null,
      body.error ?? null,
      body.retryable ?? null,
    ]);
    return this.write((log) => {
      const current = this.row(id);
      if (current.report_hash === reportHash) return { command: rowToCommand(current), replayed: true };
      const leaseId = body.leaseId ?? current.lease_id;
      // COMPLETED and FAILED are final (SPEC §2): a FAILED `lease expired` command keeps its lease
      // id, yet its holder's late report must not revive it (its stream already ended at FAILED).
      if (current.status === 'COMPLETED' || current.status === 'FAILED') {
        throw new Conflict(reportConflictMessage(current, body.agentId));
      }
      if (current.lease_id === null || leaseId !== current.lease_id || current.agent_id !== body.agentId) {
        throw new Conflict(reportConflictMessage(current, body.agentId));
      }
      const now = this.now();
      const failed = body.status === 'FAILED';
      const canRetry = failed && body.retryable === true && current.cancel_requested === 0 && current.attempts < current.max_attempts;
      const status: CommandStatus = !failed ? 'COMPLETED' : canRetry ? 'PENDING' : 'FAILED';
      const availableAt = canRetry ? now + retryBackoffMs(current.attempts, this.random) : current.available_at;
      // It leaves RUNNING: its key's slot goes to the next held command (a retry waits its backoff).
      if (holdsSlot(current) && this.keys.release(current.concurrency_key) > 0) this.workStaged = true;
      const row: CommandRow = {
        ...current,
        status,
        result: body.result === undefined ? null : JSON.stringify(body.result),
        error: failed ? (body.error ?? 'failed') : null,
        available_at: availableAt,
        finished_at: status === 'PENDING' ? null : now,
        lease_id: null,
        lease_expires_at: null,
        cancel_requested: status === 'PENDING' ? current.cancel_requested : 0,
        report_hash: reportHash,
        updated_at: now,
        ready: status === 'PENDING' ? this.readinessAfterRelease(current, availableAt, now) : current.ready,
      };
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

  async requeueExpired(): Promise<Command[]> {
    return this.write((log) => {
      const now = this.now();
      const changed: Command[] = [];
      for (const expired of this.stmt.expired.all(now)) {
        const canceled = expired.cancel_requested === 1;
        const retry = !canceled && expired.attempts < expired.max_attempts;
        const availableAt = retry ? now + retryBackoffMs(expired.attempts, this.random) : expired.available_at;
        if (this.keys.release(expired.concurrency_key) > 0) this.workStaged = true;
        const row = this.stmt.expire.get({
          id: expired.id,
          leaseId: expired.lease_id,
          status: retry ? 'PENDING' : 'FAILED',
          error: canceled ? 'canceled' : 'lease expired',
          availableAt,
          finishedAt: retry ? null : now,
          ready: retry ? this.readinessAfterRelease(expired, availableAt, now) : expired.ready,
          // The holder may still report late, unless the command was canceled.
          keepLeaseId: canceled ? null : expired.lease_id,
          now,
        }) as CommandRow | undefined;
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
    this.db.close();
  }
}

type Log = (transition: Transition, row: CommandRow, from: CommandStatus | null) => Command;

/**
 * The moves of one write between statuses, added to `command_counts` in that write's savepoint:
 * at most four small updates per write, so a batch of 1 000 submits is one update, not 1 000.
 * (Triggers did the same per row: +8.7 µs per submit, half the cost of the insert.)
 */
class StatusCounts {
  private readonly delta: Record<CommandStatus, number> = { PENDING: 0, RUNNING: 0, COMPLETED: 0, FAILED: 0 };

  move(from: CommandStatus | null, to: CommandStatus | null): void {
    if (from === to) return;
    if (from !== null) this.delta[from]--;
    if (to !== null) this.delta[to]++;
  }

  apply(addCount: Statements['addCount']): void {
    for (const [status, n] of Object.entries(this.delta)) if (n !== 0) addCount.run(n, status);
  }
}

/** The claim's route; an agent that names none serves the default queue and every built-in type. */
function routeOf(request: ClaimRequest): Route {
  return {
    queues: request.queues?.length ? request.queues : [DEFAULT_QUEUE],
    types: request.types?.length ? request.types : CommandType.options,
  };
}

/** RUNNING and ready commands count against their key's limit (see KeySlots). */
function holdsSlot(row: CommandRow): boolean {
  return row.status === 'RUNNING' || (row.status === 'PENDING' && row.ready === READY);
}

function routeKey(route: Route): string {
  return `${[...route.queues].sort().join(',')}|${[...route.types].sort().join(',')}`;
}

function toStoredEvent(row: EventRow): StoredEvent {
  return {
    seq: row.seq,
    kind: row.kind,
    transition: row.transition,
    command: JSON.parse(row.data) as Command,
    data: row.data,
    createdAt: row.created_at,
  };
}

function defaultTimeoutMs(body: SubmitBody): number {
  return body.type === 'DELAY' ? body.payload.ms + DELAY_TIMEOUT_MARGIN_MS : DEFAULT_HTTP_TIMEOUT_MS;
}

/** Stable hash of a JSON value: object keys sorted, so key order does not change it. */
function hashJson(value: unknown): string {
  return createHash('sha256').update(JSON.stringify(value, sortKeys)).digest('hex');
}

function sortKeys(_key: string, value: unknown): unknown {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return value;
  return Object.fromEntries(Object.entries(value).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

function reportConflictMessage(row: CommandRow, agentId: string): string {
  if (row.status === 'COMPLETED' || row.status === 'FAILED') return `command ${row.id} is already ${row.status}`;
  if (row.agent_id !== agentId) return `command ${row.id} is leased to another agent`;
  return `the lease of ${agentId} on command ${row.id} has ended`;
}
