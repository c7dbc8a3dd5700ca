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
import { Conflict, NotFound, UnprocessableEntity } from '../errors.js';
import { GroupCommit } from '@agent-executor/common/group-commit';
import { migrateSqlite } from './migrate-sqlite.js';
import { prepareStatements, type Statements } from './sqlite-statements.js';
import { rowToCommand, withLease, type CommandRow } from './command-rows.js';
import { buildEvent, isAvailable, toStoredEvent } from './event-log.js';
import {
  expiryOutcome,
  hashJson,
  holdsLease,
  newCommandRow,
  reportConflictMessage,
  reportedRow,
  reportHash,
} from './transitions.js';
import type {
  ClaimRequest,
  CommandStore,
  EventFilter,
  ListFilter,
  ListPage,
  ReportOutcome,
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
  /** The event log keeps at least this many events and at least this much time. */
  eventRetention?: { count: number; ms: number };
}

const PRUNE_EVERY_EVENTS = 1_000;

export class SqliteCommandStore implements CommandStore {
  readonly events: StoreEvents;
  private readonly emitter = new EventEmitter();
  private readonly db: Database.Database;
  private readonly now: () => number;
  private readonly random: () => number;
  private readonly retention: { count: number; ms: number };
  private readonly stmt: Statements;
  private readonly listStatements = new Map<string, Database.Statement>();
  private eventsSincePrune = 0;
  /** Set by a write of the open transaction that left a command PENDING and available. */
  private workStaged = false;
  private readonly commits: GroupCommit;

  constructor(options: SqliteStoreOptions) {
    this.now = options.now ?? Date.now;
    this.random = options.random ?? Math.random;
    this.retention = options.eventRetention ?? { count: 100_000, ms: 24 * 60 * 60 * 1000 };
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
    try {
      this.emitter.emit('available');
    } catch (error) {
      // A listener's bug must not undo the commit: surface it after, as an uncaught error.
      setImmediate(() => {
        throw error;
      });
    }
  }

  /**
   * Runs `change` as one write of a group commit and, once committed, emits its events in order.
   * Events of a write that threw were rolled back with it and are never emitted.
   */
  private async write<T>(change: (log: (transition: Transition, row: CommandRow) => Command) => T): Promise<T> {
    const { value, events } = await this.commits.run(() => {
      const logged: StoredEvent[] = [];
      /** Appends the change to the event log and answers the command as it now is. */
      const log = (transition: Transition, row: CommandRow): Command => {
        const { commandId, ...event } = buildEvent(transition, row, this.now());
        if (isAvailable(row, event.createdAt)) this.workStaged = true;
        const seq = Number(
          this.stmt.insertEvent.run(commandId, event.kind, transition, event.data, event.createdAt).lastInsertRowid,
        );
        logged.push({ seq, ...event });
        return event.command;
      };
      return { value: change(log), events: logged };
    });
    for (const event of events) this.emitter.emit('event', event);
    this.eventsSincePrune += events.length;
    if (this.eventsSincePrune >= PRUNE_EVERY_EVENTS) this.pruneEvents();
    return value;
  }

  private pruneEvents(): void {
    this.eventsSincePrune = 0;
    this.stmt.pruneEvents.run({ keepCount: this.retention.count, before: this.now() - this.retention.ms });
  }

  private insertCommand(body: SubmitBody, idempotencyKey: string | null, requestHash: string | null): CommandRow {
    const row = newCommandRow(body, this.now(), idempotencyKey, requestHash);
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
      return { command: log('submit', row), replayed: false };
    });
  }

  async submitBatch(bodies: SubmitBody[]): Promise<Command[]> {
    return this.write((log) =>
      bodies.map((body) => {
        const row = this.insertCommand(body, null, null);
        return log('submit', row);
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

  async claim(agentId: string, leaseMs: number): Promise<ClaimedCommand | undefined> {
    return (await this.claimBatch(agentId, leaseMs, 1))[0];
  }

  async claimBatch(agentId: string, leaseMs: number, max: number): Promise<ClaimedCommand[]> {
    return (await this.claimEach([{ agentId, max }], leaseMs))[0] ?? [];
  }

  async claimEach(requests: readonly ClaimRequest[], leaseMs: number): Promise<ClaimedCommand[][]> {
    return this.write((log) => {
      const now = this.now();
      const answers: ClaimedCommand[][] = [];
      for (const { agentId, max } of requests) {
        // Each row gets its own random lease id (128 bits from SQLite's randomblob).
        const rows = this.stmt.claim.all({ agentId, leaseExpiresAt: now + leaseMs, now, max }) as CommandRow[];
        answers.push(
          rows
            .sort((a, b) => a.available_at - b.available_at || a.seq - b.seq)
            .map((row) => withLease(log('claim', row), row)),
        );
        if (rows.length < max) break; // nothing left for the requests after this one
      }
      return answers;
    });
  }

  async release(id: string, leaseId: string): Promise<void> {
    await this.write((log) => {
      const row = this.stmt.release.get({ id, leaseId, now: this.now() }) as CommandRow | undefined;
      if (row) log('release', row);
    });
  }

  async report(id: string, body: ResultBody): Promise<ReportOutcome> {
    const hash = reportHash(body);
    return this.write((log) => {
      const current = this.row(id);
      if (current.report_hash === hash) return { command: rowToCommand(current), replayed: true };
      if (!holdsLease(current, body)) throw new Conflict(reportConflictMessage(current, body.agentId));
      const row = reportedRow(current, body, hash, this.now(), this.random);
      const leaseId = body.leaseId ?? current.lease_id;
      const { changes } = this.stmt.report.run({ ...row, agentId: body.agentId, leaseId });
      if (changes !== 1) throw new Conflict(reportConflictMessage(current, body.agentId));
      return { command: log('report', row), replayed: false };
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
      if (body.progress !== undefined) log('progress', row);
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
      return log('cancel', row);
    });
  }

  async retry(id: string): Promise<Command> {
    return this.write((log) => {
      const current = this.row(id);
      const row = this.stmt.retry.get({ id, now: this.now() }) as CommandRow | undefined;
      if (!row) throw new Conflict(`only a FAILED command can be retried; command ${id} is ${current.status}`);
      return log('retry', row);
    });
  }

  async requeueExpired(): Promise<Command[]> {
    return this.write((log) => {
      const now = this.now();
      const changed: Command[] = [];
      for (const expired of this.stmt.expired.all(now)) {
        const outcome = expiryOutcome(expired, now, this.random);
        const row = this.stmt.expire.get({ id: expired.id, leaseId: expired.lease_id, ...outcome, now }) as
          | CommandRow
          | undefined;
        if (!row) continue;
        changed.push(log('expire', row));
      }
      return changed;
    });
  }

  async nextWakeAt(): Promise<WakeTimes> {
    const leaseExpiresAt = this.stmt.nextLeaseExpiry.get()?.at ?? null;
    const availableAt = this.stmt.nextAvailable.get(this.now())?.at ?? null;
    return {
      ...(leaseExpiresAt === null ? {} : { leaseExpiresAt }),
      ...(availableAt === null ? {} : { availableAt }),
    };
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

  async countByStatus(): Promise<Record<CommandStatus, number>> {
    const counts: Record<CommandStatus, number> = { PENDING: 0, RUNNING: 0, COMPLETED: 0, FAILED: 0 };
    for (const { status, n } of this.stmt.countByStatus.all()) counts[status] = n;
    return counts;
  }

  async ping(): Promise<void> {
    this.stmt.ping.get();
  }

  async close(): Promise<void> {
    if (!this.db.open) return;
    this.commits.flush();
    this.db.close();
  }
}
