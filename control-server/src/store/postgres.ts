import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import pg from 'pg';
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
import { rowToCommand, withLease, type CommandRow } from './command-rows.js';
import { DEFAULT_EVENT_RETENTION, PRUNE_BATCH, pruneEnd, toStoredEvent, type EventRow } from './event-log.js';
import { emitToEach } from './listeners.js';
import { migratePostgres } from './migrate-postgres.js';
import { EventFeed } from './postgres-event-feed.js';
import { PgGroupCommit, type Committed, type Tx, type Write, type WriteHints } from './postgres-group-commit.js';
import { PgListener } from './postgres-listener.js';
import { carriedEvents, type Notice } from './postgres-notice.js';
import { insertValues, pgTypes, reportValues } from './postgres-rows.js';
import { SESSION_SETTINGS, sql } from './postgres-statements.js';
import { routeKey, routeOf } from './claim-route.js';
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
  WakeTimes,
} from './store.js';
import {
  expiryOutcome,
  hashJson,
  holdsLease,
  newCommandRow,
  reportConflictMessage,
  reportedRow,
  reportHash,
} from './transitions.js';

export interface PostgresStoreOptions {
  /** `postgres://user:password@host:port/database` */
  connectionString: string;
  /** Connections of the pool (the LISTEN connection comes on top). */
  poolSize?: number;
  /** Injected for tests; defaults to Date.now and Math.random. */
  now?: () => number;
  random?: () => number;
  /** The event log keeps the events younger than `ms`, at most the newest `count` (event-log.ts). */
  eventRetention?: { count: number; ms: number };
  /**
   * Where trouble is reported that no caller can be told of: a failure after a commit (a throwing
   * listener, a failed prune), a lost LISTEN connection, a failed read of the log for listeners.
   */
  onError?: (err: unknown, what: string) => void;
}

const PRUNE_EVERY_EVENTS = 1_000;
/** What the health check writes while the database is full. */
const PROBE_BYTES = 16_384;
/** Any fixed number: the advisory lock of the event-log prune (one replica prunes at a time). */
const PRUNE_LOCK = 0x61657866;
/** SQLSTATE disk_full: PostgreSQL could not extend a file (ENOSPC). */
const DISK_FULL = '53100';

/** The advisory lock keyed claims take turns on (see the claim in postgres-statements.ts). */
const KEYED_CLAIM_LOCK = 0x61656b79; // "aeky"
/** How soon polls try again after a claim missed the keyed turn. */
const KEYED_RETRY_MS = 20;

interface AgentRow {
  id: string;
  hostname: string | null;
  version: string | null;
  queues: string;
  types: string;
  concurrency: number | null;
  last_seen_at: number;
  draining: number;
}

interface PendingClaim extends ClaimRequest {
  resolve: (commands: ClaimedCommand[]) => void;
  reject: (err: unknown) => void;
}

/**
 * The CommandStore on PostgreSQL, for several replicas on one database. Transitions are the
 * SQLite store's (shared in transitions.ts), each one guarded statement, written by a group
 * commit. Across replicas: every committed write NOTIFYs its last event id; each replica's one
 * LISTEN connection turns that into 'available' and, through the event feed, into 'event' in id
 * order. Open with `PostgresCommandStore.open()`: it migrates and starts listening first.
 */
export class PostgresCommandStore implements CommandStore {
  readonly shared = true;
  readonly events: StoreEvents;
  private readonly emitter = new EventEmitter();
  private readonly replica = randomUUID();
  private readonly now: () => number;
  private readonly random: () => number;
  private readonly retention: { count: number; ms: number };
  private readonly onError: (err: unknown, what: string) => void;
  private readonly writes: PgGroupCommit;
  private readonly listener: PgListener;
  /** Set by open() once it knows where the log ends (a notice heard before it is covered by that read). */
  private feed!: EventFeed;
  private eventsSincePrune = 0;
  private pruning = false;
  /** Set when a write failed for lack of space (53100); cleared by a write that stores something. */
  private full = false;
  private closing: Promise<void> | undefined;
  private readonly pendingClaims = new Map<number, PendingClaim[]>();

  private constructor(
    private readonly pool: pg.Pool,
    options: PostgresStoreOptions,
  ) {
    this.now = options.now ?? Date.now;
    this.random = options.random ?? Math.random;
    this.retention = options.eventRetention ?? DEFAULT_EVENT_RETENTION;
    this.onError = options.onError ?? ((err, what) => console.error(`postgres store: ${what}`, err));
    this.emitter.setMaxListeners(0);
    this.events = this.emitter as StoreEvents;
    this.writes = new PgGroupCommit(pool, { replica: this.replica, now: this.now, afterCommit: (c) => this.afterCommit(c) });
    this.listener = new PgListener({
      connectionString: options.connectionString,
      onNotice: (notice) => this.onNotice(notice),
      onReconnected: () => void this.recheck(),
      onError: this.onError,
    });
  }

  static async open(options: PostgresStoreOptions): Promise<PostgresCommandStore> {
    const pool = new pg.Pool({
      connectionString: options.connectionString,
      max: options.poolSize ?? 10,
      types: pgTypes,
      // Statements go out without waiting for the answers before them (postgres-group-commit.ts).
      pipeline: true,
    });
    // An idle connection that dies emits here; without a listener it would end the process.
    pool.on('error', (err) => (options.onError ?? console.error)(err, 'an idle database connection failed'));
    // Every statement here has an index to follow, and a plan is kept for the connection's life
    // (named statements; generic plans in write transactions): one made while a table was still
    // small chose to read it whole, and kept doing so as it grew, until autovacuum's first ANALYZE
    // (a minute or more). Measured on a fresh database, 2 replicas, 8 000 commands: 1 315 scans of
    // `commands` reading 7.6 million rows; PostgreSQL's CPU per command 1 029 → 803 µs without.
    // Sent before any other statement of the new connection (its queue keeps the order).
    pool.on('connect', (client) => {
      client.query(SESSION_SETTINGS).catch(() => undefined); // a failure here fails the connection's next query too
    });
    const store = new PostgresCommandStore(pool, options);
    try {
      await migratePostgres(pool);
      // LISTEN before reading where the log ends: nothing committed in between is missed.
      await store.listener.start();
      store.feed = new EventFeed(await store.lastEventSeq(), {
        read: (after, limit) => store.eventsSince(after, limit),
        emit: (event) =>
          emitToEach(store.emitter, 'event', [event], (err) =>
            store.onError(err, `an 'event' listener failed on ${event.transition} of command ${event.command.id}`),
          ),
        onError: (err) => store.onError(err, 'reading the event log for listeners failed'),
      });
    } catch (err) {
      await store.listener.close();
      await pool.end();
      throw err;
    }
    return store;
  }

  /**
   * After each commit of this replica: wake this replica's polls, hand its events on in order.
   * Committed: from here on nothing may turn the writes into errors; the feed and emitToEach
   * report a listener's failure instead of throwing it.
   */
  private async afterCommit({ events, available }: Committed): Promise<void> {
    if (available) this.announceWork();
    if (events.length === 0) return;
    // A write that stored something shows there is space again (one that only read shows nothing).
    this.full = false;
    await this.feed.deliver(events);
    this.eventsSincePrune += events.length;
    if (this.eventsSincePrune >= PRUNE_EVERY_EVENTS) void this.pruneEvents();
  }

  private announceWork(): void {
    emitToEach(this.emitter, 'available', [], (err) => this.onError(err, "an 'available' listener failed"));
  }

  private onNotice(notice: Notice): void {
    // This replica's own commits are announced and delivered by afterCommit. Their notification
    // often comes first (the LISTEN connection hears it before the pool's connection has COMMIT's
    // answer: 2 times in 3 measured), and taken as news it made the feed read the log for events
    // about to be delivered — a query that the answers of the batch then waited for (~0.7 ms).
    // Should afterCommit never run (COMMIT's answer lost), the next delivery reads the gap.
    if (notice.replica === this.replica) return;
    if (notice.available) this.announceWork();
    // Heard while opening, before the feed read where the log ends: that read covers it.
    if ((this.feed as EventFeed | undefined) === undefined) return;
    // Another replica's events come with the notice when they fit in it, parsed only if the feed
    // still needs them.
    void this.feed.heard(notice.lastSeq, () => carriedEvents(notice));
  }

  /** After the LISTEN connection was lost: what it would have heard meanwhile. */
  private async recheck(): Promise<void> {
    try {
      await this.feed.heard(await this.lastEventSeq());
      this.announceWork();
    } catch (err) {
      this.onError(err, 're-reading the event log after a reconnect failed');
    }
  }

  /**
   * Deletes events from the head of the log up to the first one it keeps (pruneEnd in
   * event-log.ts): index lookups and one range of seq, so a prune costs what it deletes, at most
   * PRUNE_BATCH events. A full batch leaves more to delete: the next write prunes again. One prune
   * at a time per replica; across replicas the advisory lock lets one delete and the others pass.
   */
  private async pruneEvents(): Promise<void> {
    if (this.pruning) return;
    this.pruning = true;
    this.eventsSincePrune = 0;
    try {
      const youngSince = this.now() - this.retention.ms;
      const [bounds] = await this.rows<{ head: number | null; last: number; kept: number | null }>(sql.eventLogBounds, [youngSince]);
      if (bounds?.head == null) return;
      const { head, last } = bounds;
      let keptByTime = bounds.kept ?? undefined;
      if (keptByTime !== undefined && keptByTime > head) {
        const [young] = await this.rows<{ seq: number | null }>(sql.youngBelow, [head, Math.min(keptByTime, head + PRUNE_BATCH), youngSince]);
        keptByTime = young?.seq ?? keptByTime;
      }
      const end = pruneEnd({ head, last, keptByTime, keepCount: this.retention.count });
      if (end <= head) return;
      const { rowCount } = await this.pool.query({ ...sql.pruneEventsBefore, values: [end, PRUNE_LOCK] });
      if ((rowCount ?? 0) >= PRUNE_BATCH) this.eventsSincePrune = PRUNE_EVERY_EVENTS;
    } catch (err) {
      this.onError(this.spaceError(err), 'pruning the event log failed; trying again after the next writes');
    } finally {
      this.pruning = false;
    }
  }

  private write<T>(change: Write<T>, hints?: WriteHints): Promise<T> {
    return this.writes.run(change, hints).catch((err: unknown) => {
      throw this.spaceError(err);
    });
  }

  /** SQLSTATE 53100 becomes DatabaseFull (503, and /health reports it); any other error is unchanged. */
  private spaceError(err: unknown): unknown {
    if ((err as { code?: unknown } | null)?.code !== DISK_FULL) return err;
    this.full = true;
    return new DatabaseFull();
  }

  private async rows<R extends pg.QueryResultRow = CommandRow>(statement: { name: string; text: string }, values: unknown[]): Promise<R[]> {
    return (await this.pool.query<R>({ ...statement, values })).rows;
  }

  /** The current row, locked for the rest of the transaction; NotFound when there is none. */
  private async lockedRow(tx: Tx, id: string): Promise<CommandRow> {
    const row = await tx.lockedRow(id);
    if (!row) throw new NotFound(`command ${id} not found`);
    return row;
  }

  async submit(body: SubmitBody, idempotencyKey?: string): Promise<SubmitOutcome> {
    const requestHash = idempotencyKey === undefined ? null : hashJson(body);
    return this.write(async (tx) => {
      const row = newCommandRow(body, this.now(), idempotencyKey ?? null, requestHash);
      if (idempotencyKey === undefined) {
        tx.insertLater(row);
        return { command: tx.log('submit', row, null), replayed: false };
      }
      const inserted = (await tx.query<{ seq: number }>(sql.insert, insertValues(row))).rows[0];
      if (inserted) {
        row.seq = inserted.seq;
        return { command: tx.log('submit', row, null), replayed: false };
      }
      // The key is taken (by an earlier submit, or one that just committed on another replica).
      const existing = (await tx.query(sql.byIdempotencyKey, [idempotencyKey])).rows[0];
      if (!existing) throw new Error(`idempotency key ${idempotencyKey} conflicted but its command is gone`);
      if (existing.request_hash !== requestHash) {
        throw new UnprocessableEntity('Idempotency-Key was already used with a different body');
      }
      return { command: rowToCommand(existing), replayed: true };
    });
  }

  async submitBatch(bodies: SubmitBody[]): Promise<Command[]> {
    return this.write(async (tx) => {
      const commands: Command[] = [];
      for (const body of bodies) {
        const row = newCommandRow(body, this.now(), null, null);
        tx.insertLater(row);
        commands.push(tx.log('submit', row, null));
      }
      return commands;
    });
  }

  async get(id: string): Promise<Command | undefined> {
    const [row] = await this.rows(sql.byId, [id]);
    return row && rowToCommand(row);
  }

  async list(filter: ListFilter): Promise<ListPage> {
    const where: string[] = [];
    const values: unknown[] = [];
    const add = (condition: string, value: unknown) => {
      values.push(value);
      where.push(condition.replace('?', `$${values.length}`));
    };
    if (filter.status !== undefined) add('status = ?', filter.status);
    if (filter.type !== undefined) add('type = ?', filter.type);
    if (filter.agentId !== undefined) add('agent_id = ?', filter.agentId);
    if (filter.beforeSeq !== undefined) add('seq < ?', filter.beforeSeq);
    values.push(filter.limit + 1);
    const text = `SELECT * FROM commands ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
      ORDER BY seq DESC LIMIT $${values.length}`;
    // One prepared statement per combination of filters (16 at most).
    const name = `ae_list_${where.map((w) => w.split(' ')[0]).join('_')}`;
    const rows = await this.rows({ name, text }, values);
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

  /**
   * Claims asked for in the same turn of the event loop (agents polling at once) are served by one
   * claimEach, so they cost one statement together instead of one each.
   */
  claimBatch(agentId: string, leaseMs: number, max: number, route?: Partial<Route>): Promise<ClaimedCommand[]> {
    return new Promise((resolve, reject) => {
      let queue = this.pendingClaims.get(leaseMs);
      if (!queue) {
        const claims: PendingClaim[] = [];
        queue = claims;
        this.pendingClaims.set(leaseMs, claims);
        setImmediate(() => {
          this.pendingClaims.delete(leaseMs);
          this.claimEach(claims, leaseMs).then(
            (answers) => claims.forEach((claim, i) => claim.resolve(answers[i] ?? [])),
            (err: unknown) => claims.forEach((claim) => claim.reject(err)),
          );
        });
      }
      queue.push({ agentId, max, queues: route?.queues, types: route?.types, resolve, reject });
    });
  }

  async claimEach(requests: readonly ClaimRequest[], leaseMs: number): Promise<ClaimedCommand[][]> {
    // Requests of one route share one statement (an idle fleet's agents mostly serve the same
    // route); each route is claimed in the order its first request came.
    const byRoute = new Map<string, { route: Route; indexes: number[] }>();
    requests.forEach((request, i) => {
      const route = routeOf(request);
      const key = routeKey(route);
      const group = byRoute.get(key) ?? { route, indexes: [] };
      group.indexes.push(i);
      byRoute.set(key, group);
    });
    return this.write(async (tx) => {
      const now = this.now();
      const answers: ClaimedCommand[][] = requests.map(() => []);
      for (const { route, indexes } of byRoute.values()) {
        const slots = indexes.flatMap((i) => Array<string>(requests[i]!.max).fill(requests[i]!.agentId));
        const { rows } = await tx.query(sql.claim, [slots, now + leaseMs, now, route.queues, route.types]);
        rows.sort((a, b) => b.priority - a.priority || a.seq - b.seq);
        let next = 0;
        for (const i of indexes) {
          const { max } = requests[i]!;
          const mine = rows.slice(next, next + max);
          next += mine.length;
          answers[i] = mine.map((row) => withLease(tx.log('claim', row, 'PENDING'), row));
          if (mine.length < max) break; // nothing left for the requests of this route after this one
        }
      }
      // Another replica's claim held the turn: keyed commands wait for the next poll, so wake
      // this replica's polls again shortly (the other claim may leave some) — if any is waiting:
      // otherwise two replicas claiming at once would keep waking each other's polls for nothing.
      const turn = await tx.keyedTurn();
      if (!turn.got && turn.waiting) setTimeout(() => this.announceWork(), KEYED_RETRY_MS).unref();
      return answers;
    }, { keyedTurn: { lock: KEYED_CLAIM_LOCK, at: this.now() } });
  }

  async release(id: string, leaseId: string): Promise<void> {
    await this.write(async (tx) => {
      const [row] = (await tx.query(sql.release, [id, leaseId, this.now()])).rows;
      // FAILED: its cancel was asked for while it was leased.
      if (row) tx.log(row.status === 'PENDING' ? 'release' : 'cancel', row, 'RUNNING');
    });
  }

  async report(id: string, body: ResultBody): Promise<ReportOutcome> {
    const hash = reportHash(body);
    return this.write(async (tx) => {
      const current = await this.lockedRow(tx, id);
      if (current.report_hash === hash) return { command: rowToCommand(current), replayed: true };
      if (!holdsLease(current, body)) throw new Conflict(reportConflictMessage(current, body.agentId));
      const row = reportedRow(current, body, hash, this.now(), this.random);
      const leaseId = body.leaseId ?? current.lease_id;
      // holdsLease checked the report statement's guard on the row this transaction holds locked.
      tx.reportLater(reportValues(row, body.agentId, leaseId));
      return { command: tx.log('report', row, current.status), replayed: false };
    }, { lock: id });
  }

  async heartbeat(id: string, body: HeartbeatBody, leaseMs: number): Promise<HeartbeatResponse> {
    return this.write(async (tx) => {
      const now = this.now();
      const progress = body.progress === undefined ? null : JSON.stringify(body.progress);
      const [row] = (await tx.query(sql.heartbeat, [id, body.agentId, body.leaseId, now + leaseMs, progress, now])).rows;
      if (!row) {
        await this.lockedRow(tx, id);
        throw new Conflict(`lease lost: command ${id} is no longer leased to ${body.agentId} under this lease`);
      }
      if (body.progress !== undefined) tx.log('progress', row, row.status);
      return {
        leaseExpiresAt: new Date(row.lease_expires_at ?? now).toISOString(),
        cancelRequested: row.cancel_requested === 1,
      };
    });
  }

  async cancel(id: string): Promise<Command> {
    return this.write(async (tx) => {
      const current = await this.lockedRow(tx, id);
      if (current.status === 'RUNNING' && current.cancel_requested === 1) return rowToCommand(current);
      const now = this.now();
      const [row] =
        current.status === 'PENDING'
          ? (await tx.query(sql.cancelPending, [id, now])).rows
          : (await tx.query(sql.cancelRunning, [id, now])).rows;
      if (!row) throw new Conflict(`command ${id} is already ${current.status}`);
      return tx.log('cancel', row, current.status);
    });
  }

  async retry(id: string): Promise<Command> {
    return this.write(async (tx) => {
      const current = await this.lockedRow(tx, id);
      const [row] = (await tx.query(sql.retry, [id, this.now()])).rows;
      if (!row) throw new Conflict(`only a FAILED command can be retried; command ${id} is ${current.status}`);
      return tx.log('retry', row, 'FAILED');
    });
  }

  async retryFailed(filter: BulkFilter, batch: BulkBatch): Promise<BulkStep> {
    return this.bulk('FAILED', filter, batch, async (tx, id) => {
      const [row] = (await tx.query(sql.retry, [id, this.now()])).rows;
      return row && tx.log('retry', row, 'FAILED');
    });
  }

  async cancelPending(filter: BulkFilter, batch: BulkBatch): Promise<BulkStep> {
    return this.bulk('PENDING', filter, batch, async (tx, id) => {
      const [row] = (await tx.query(sql.cancelPending, [id, this.now()])).rows;
      return row && tx.log('cancel', row, 'PENDING');
    });
  }

  async lastCommandSeq(): Promise<number> {
    const [row] = await this.rows<{ seq: number | null }>(sql.lastCommandSeq, []);
    return row?.seq ?? 0;
  }

  /**
   * One batch of a bulk action, as in sqlite.ts: the `status` commands of `filter` in the seq range,
   * oldest first, each changed by the same guarded statement as the single action, in one
   * transaction. SKIP LOCKED: a row another replica is changing right now is left to it.
   */
  private async bulk(
    status: CommandStatus,
    filter: BulkFilter,
    batch: BulkBatch,
    change: (tx: Tx, id: string) => Promise<Command | undefined>,
  ): Promise<BulkStep> {
    const values: unknown[] = [status, batch.afterSeq, batch.upToSeq];
    const where = ['status = $1', 'seq > $2', 'seq <= $3'];
    const add = (condition: string, value: unknown) => {
      values.push(value);
      where.push(`${condition} $${values.length}`);
    };
    if (filter.type !== undefined) add('type =', filter.type);
    if (filter.queue !== undefined) add('queue =', filter.queue);
    if (filter.agentId !== undefined) add('agent_id =', filter.agentId);
    if (filter.createdBefore !== undefined) add('created_at <', filter.createdBefore);
    values.push(batch.max);
    const text = `SELECT id, seq FROM commands WHERE ${where.join(' AND ')}
      ORDER BY seq LIMIT $${values.length} FOR UPDATE SKIP LOCKED`;
    const name = `ae_bulk_${where.slice(3).map((w) => w.split(' ')[0]).join('_')}`;
    return this.write(async (tx) => {
      const picked = (await tx.query<{ id: string; seq: number }>({ name, text }, values)).rows;
      let changed = 0;
      for (const { id } of picked) if (await change(tx, id)) changed++;
      return { changed, ...(picked.length > 0 ? { lastSeq: Number(picked.at(-1)!.seq) } : {}) };
    });
  }

  async requeueExpired(): Promise<Command[]> {
    return this.write(async (tx) => {
      const now = this.now();
      const changed: Command[] = [];
      for (const expired of (await tx.query(sql.expired, [now])).rows) {
        const o = expiryOutcome(expired, now, this.random);
        const values = [expired.id, expired.lease_id, o.status, o.error, o.availableAt, o.finishedAt, o.keepLeaseId, now];
        const [row] = (await tx.query(sql.expire, values)).rows;
        if (row) changed.push(tx.log('expire', row, 'RUNNING'));
      }
      return changed;
    });
  }

  /** Nothing to promote: runAt and backoffs are kept in available_at, which the claim reads. */
  async promoteDue(): Promise<boolean> {
    return false;
  }

  /**
   * Scheduled, held (its key's free slots go to its commands before it in claim order, or it has
   * none: the claim passes it over) or ready.
   */
  async pendingState(id: string): Promise<PendingState | undefined> {
    const [row] = await this.rows(sql.byId, [id]);
    if (!row || row.status !== 'PENDING') return undefined;
    const base = { queue: row.queue, type: row.type };
    if (row.available_at > this.now()) return { ...base, state: 'scheduled', until: row.available_at };
    if (row.concurrency_key === null) return { ...base, state: 'ready' };
    const [key] = await this.rows<{ running: number; limit: number | null; ahead: number }>(sql.keyState, [
      row.concurrency_key,
      this.now(),
      row.priority,
      row.seq,
    ]);
    const limit = key?.limit ?? row.concurrency_limit ?? 0;
    const running = key?.running ?? 0;
    return running + (key?.ahead ?? 0) >= limit ? { ...base, state: 'held', running, limit } : { ...base, state: 'ready' };
  }

  async saveAgents(records: readonly AgentRecord[]): Promise<void> {
    if (records.length === 0) return;
    await this.write(async (tx) => {
      for (const r of records) {
        await tx.query(sql.upsertAgent, [
          r.id,
          r.hostname,
          r.version,
          JSON.stringify(r.queues),
          JSON.stringify(r.types),
          r.concurrency,
          r.lastSeenAt,
        ]);
      }
    });
  }

  async loadAgents(seenSince: number): Promise<AgentRecord[]> {
    const rows = await this.rows<AgentRow>(sql.agentsSeenSince, [seenSince]);
    return rows.map((row) => ({
      id: row.id,
      hostname: row.hostname,
      version: row.version,
      queues: JSON.parse(row.queues) as string[],
      types: JSON.parse(row.types) as string[],
      concurrency: row.concurrency,
      lastSeenAt: row.last_seen_at,
      draining: row.draining === 1,
    }));
  }

  async drainAgent(id: string): Promise<boolean> {
    return this.write(async (tx) => ((await tx.query(sql.drainAgent, [id])).rowCount ?? 0) === 1);
  }

  async runningByAgent(): Promise<Map<string, number>> {
    const rows = await this.rows<{ agent_id: string; n: number }>(sql.runningByAgent, []);
    return new Map(rows.map((row) => [row.agent_id, row.n]));
  }

  async queueCounts(): Promise<QueueCounts[]> {
    const rows = await this.rows<{ queue: string; status: 'PENDING' | 'RUNNING'; n: number; oldest: number }>(sql.queueCounts, []);
    const byQueue = new Map<string, QueueCounts>();
    for (const row of rows) {
      const counts = byQueue.get(row.queue) ?? { queue: row.queue, pending: 0, running: 0, oldestPendingAt: null };
      if (row.status === 'PENDING') {
        counts.pending = row.n;
        counts.oldestPendingAt = row.oldest;
      } else counts.running = row.n;
      byQueue.set(row.queue, counts);
    }
    return [...byQueue.values()];
  }

  async nextWakeAt(): Promise<WakeTimes> {
    const [lease] = await this.rows<{ at: number | null }>(sql.nextLeaseExpiry, []);
    const [available] = await this.rows<{ at: number | null }>(sql.nextAvailable, [this.now()]);
    return {
      ...(lease?.at == null ? {} : { leaseExpiresAt: lease.at }),
      ...(available?.at == null ? {} : { availableAt: available.at }),
    };
  }

  async eventsSince(afterSeq: number, limit: number, filter: EventFilter = {}): Promise<StoredEvent[]> {
    const rows =
      filter.commandId === undefined
        ? await this.rows<EventRow>(sql.eventsSince, [afterSeq, limit])
        : await this.rows<EventRow>(sql.eventsSinceForCommand, [filter.commandId, afterSeq, limit]);
    const events = rows.map(toStoredEvent);
    return filter.status === undefined ? events : events.filter((e) => e.command.status === filter.status);
  }

  async lastEventFor(commandId: string): Promise<StoredEvent | undefined> {
    const [row] = await this.rows<EventRow>(sql.lastEventFor, [commandId]);
    return row && toStoredEvent(row);
  }

  async lastEventSeq(): Promise<number> {
    const [row] = await this.rows<{ seq: number }>(sql.lastEventSeq, []);
    return row?.seq ?? 0;
  }

  async oldestEventSeq(): Promise<number | undefined> {
    const [row] = await this.rows<{ seq: number | null }>(sql.eventLogHead, []);
    return row?.seq ?? undefined;
  }

  async deleteFinishedBefore(before: number, max: number): Promise<number> {
    return this.write(async (tx) => {
      const { rows } = await tx.query<{ status: CommandStatus }>(sql.deleteFinished, [before, max]);
      for (const { status } of rows) tx.count(status, null);
      return rows.length;
    });
  }

  async oldestFinishedAt(): Promise<number | undefined> {
    const [row] = await this.rows<{ at: number | null }>(sql.oldestFinished, []);
    return row?.at ?? undefined;
  }

  isFull(): boolean {
    return this.full;
  }

  async countByStatus(): Promise<Record<CommandStatus, number>> {
    const [row] = await this.rows<{ pending: number; running: number; completed: number; failed: number }>(sql.countByStatus, []);
    return { PENDING: row?.pending ?? 0, RUNNING: row?.running ?? 0, COMPLETED: row?.completed ?? 0, FAILED: row?.failed ?? 0 };
  }

  async ping(): Promise<void> {
    await this.rows(sql.ping, []);
    if (!this.full) return;
    // Full since the last write: write (and delete) a few pages, so space that has returned is
    // noticed without waiting for a client's write. Throws DatabaseFull while there is none.
    await this.write(async (tx) => {
      await tx.query(sql.probeSpace, [PROBE_BYTES]);
      await tx.query(sql.clearProbe, []);
    });
    this.full = false;
  }

  /** For tests: breaks the LISTEN connection as a network failure would. */
  dropListenConnection(): void {
    this.listener.dropConnection();
  }

  /** For tests: one prune of the event log now (it otherwise runs every PRUNE_EVERY_EVENTS events). */
  pruneEventLogNow(): Promise<void> {
    return this.pruneEvents();
  }

  /** For tests: resolves once every event heard so far has been handed to the listeners. */
  eventsDelivered(): Promise<void> {
    return this.feed.settled();
  }

  /** Commits what is queued, stops listening, closes the pool. Safe to call twice. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.writes.flush();
      await this.listener.close();
      await this.feed.settled();
      await this.pool.end();
    })();
    return this.closing;
  }
}
