import type {
  ClaimedCommand,
  Command,
  CommandStatus,
  CommandType,
  HeartbeatBody,
  HeartbeatResponse,
  Progress,
  ResultBody,
  SubmitBody,
} from '@agent-executor/common';

/** One entry of the persisted event log: the SSE event id, its kind and the command after the change. */
export type Transition = 'submit' | 'claim' | 'release' | 'report' | 'progress' | 'cancel' | 'retry' | 'expire';

export interface StoredEvent {
  seq: number;
  kind: 'status' | 'progress';
  /** What caused the change. */
  transition: Transition;
  command: Command;
  /** The command as JSON, exactly as the log stores it: SSE sends it as is. */
  data: string;
  createdAt: number;
}

export interface SubmitOutcome {
  command: Command;
  /** True when an Idempotency-Key matched an earlier submit with the same body. */
  replayed: boolean;
}

export interface ListFilter {
  status?: CommandStatus | undefined;
  type?: CommandType | undefined;
  agentId?: string | undefined;
  queue?: string | undefined;
  limit: number;
  /** Only commands older than this sequence number (exclusive); opaque to clients. */
  beforeSeq?: number | undefined;
}

export interface ListPage {
  commands: Command[];
  /** Pass as `beforeSeq` to read the next (older) page; absent on the last page. */
  nextBeforeSeq?: number;
}

/** Which commands a bulk action touches (besides the status the action implies). */
export interface BulkFilter {
  type?: CommandType | undefined;
  queue?: string | undefined;
  agentId?: string | undefined;
  /** Only commands created before this moment (epoch ms, exclusive). */
  createdBefore?: number | undefined;
}

/**
 * One batch of a bulk action: the matching commands with `afterSeq < seq <= upToSeq`, oldest
 * first, at most `max`. The caller walks forward with `lastSeq`, so each command is visited once
 * even when it comes back to the status the action looks for (a retried command failing again).
 */
export interface BulkBatch {
  afterSeq: number;
  upToSeq: number;
  max: number;
}

export interface BulkStep {
  /** Commands changed by this batch. */
  changed: number;
  /** The seq of the last command changed; absent when the batch changed nothing. */
  lastSeq?: number;
}

export interface ReportOutcome {
  command: Command;
  /** True when the same report had already been taken: nothing changed. */
  replayed: boolean;
}

export interface ClaimRequest {
  agentId: string;
  max: number;
  /** The queues the agent serves; default: `default`. */
  queues?: readonly string[] | undefined;
  /** The command types the agent can run; default: every built-in type. */
  types?: readonly string[] | undefined;
}

/** An agent as the registry stores it (SPEC §9); times in epoch ms. */
export interface AgentRecord {
  id: string;
  hostname: string | null;
  version: string | null;
  queues: string[];
  types: string[];
  concurrency: number | null;
  lastSeenAt: number;
  draining: boolean;
}

export interface QueueCounts {
  queue: string;
  pending: number;
  running: number;
  /** created_at (epoch ms) of its oldest PENDING command. */
  oldestPendingAt: number | null;
}

/** What a claim is restricted to (SPEC §9). */
export interface Route {
  queues: readonly string[];
  types: readonly string[];
}

/** Where a PENDING command stands, for `waitingFor` (the server adds what the agents serve). */
export type PendingState = { queue: string; type: string } & (
  | { state: 'scheduled'; until: number }
  | { state: 'held'; running: number; limit: number }
  | { state: 'ready' }
);

export interface EventFilter {
  commandId?: string | undefined;
  status?: CommandStatus | undefined;
}

/**
 * Listeners for changes. The SQLite store emits in-process; a PostgreSQL store will emit what it
 * hears through LISTEN/NOTIFY, so every replica sees every change.
 */
export interface StoreEvents {
  on(event: 'event', listener: (event: StoredEvent) => void): void;
  off(event: 'event', listener: (event: StoredEvent) => void): void;
  /**
   * Work may have become available (a submit, a release, a retry, a requeue). The SQLite store
   * emits this inside the committing transaction, so a claim started synchronously by the
   * listener joins that commit; a store that cannot do that emits it after the commit.
   */
  on(event: 'available', listener: () => void): void;
  off(event: 'available', listener: () => void): void;
}

/**
 * Everything the routes and the lease reaper know of storage. Every method that changes a command
 * is one guarded transition: when its precondition no longer holds it throws Conflict (409) or
 * NotFound (404), and changes nothing.
 */
export interface CommandStore {
  readonly events: StoreEvents;
  /**
   * Other server processes write this store too (PostgreSQL replicas): what a replica keeps in
   * memory from it (the agent registry) must be read back now and then. False for SQLite, whose
   * file has one server.
   */
  readonly shared: boolean;
  submit(body: SubmitBody, idempotencyKey?: string): Promise<SubmitOutcome>;
  /** Stores every command, or none, in one transaction. */
  submitBatch(bodies: SubmitBody[]): Promise<Command[]>;
  get(id: string): Promise<Command | undefined>;
  list(filter: ListFilter): Promise<ListPage>;
  /**
   * Leases the first command `agentId` may start: of its route's queues and types, available,
   * its key below its limit; highest priority first, then oldest. Undefined when there is none.
   */
  claim(agentId: string, leaseMs: number, route?: Partial<Route>): Promise<ClaimedCommand | undefined>;
  /** Leases up to `max` such commands to `agentId` in one statement. */
  claimBatch(agentId: string, leaseMs: number, max: number, route?: Partial<Route>): Promise<ClaimedCommand[]>;
  /**
   * Claims for several agents in one transaction, in order: answer i is for request i (possibly
   * empty). A request whose route an earlier request exhausted is answered empty without a claim.
   */
  claimEach(requests: readonly ClaimRequest[], leaseMs: number): Promise<ClaimedCommand[][]>;
  /** Undoes a claim whose answer could not be delivered (the polling agent had gone away). */
  release(id: string, leaseId: string): Promise<void>;
  report(id: string, body: ResultBody): Promise<ReportOutcome>;
  heartbeat(id: string, body: HeartbeatBody, leaseMs: number): Promise<HeartbeatResponse>;
  cancel(id: string): Promise<Command>;
  retry(id: string): Promise<Command>;
  /** One batch of "retry every FAILED command of a filter": each one as `retry` does it, in one transaction. */
  retryFailed(filter: BulkFilter, batch: BulkBatch): Promise<BulkStep>;
  /** One batch of "cancel every PENDING command of a filter": each one as `cancel` does it, in one transaction. */
  cancelPending(filter: BulkFilter, batch: BulkBatch): Promise<BulkStep>;
  /** The seq of the newest command (0 when there is none): where a bulk action stops. */
  lastCommandSeq(): Promise<number>;
  /** Requeues (or fails, when attempts are spent) every RUNNING command whose lease ran out. */
  requeueExpired(): Promise<Command[]>;
  /**
   * Scheduled commands (runAt, backoff) that are due become claimable (or wait for their key's
   * slot), and 'available' is emitted when some did. Answers true when more are due than one
   * pass handles: call it again.
   */
  promoteDue(): Promise<boolean>;
  /** Where a PENDING command stands; undefined when it is not PENDING (or not there). */
  pendingState(id: string): Promise<PendingState | undefined>;
  /** Stores what the registry saw of these agents (their drain flag is left as it is). */
  saveAgents(records: readonly AgentRecord[]): Promise<void>;
  /** Agents seen at or after `seenSince` (epoch ms). */
  loadAgents(seenSince: number): Promise<AgentRecord[]>;
  /** Marks an agent draining; false when no such agent is stored. */
  drainAgent(id: string): Promise<boolean>;
  /** RUNNING commands per agent id. */
  runningByAgent(): Promise<Map<string, number>>;
  /** PENDING and RUNNING counts per queue that has any. */
  queueCounts(): Promise<QueueCounts[]>;
  /** The earliest moment something changes by itself: a lease expiry or a backoff ending. */
  nextWakeAt(): Promise<WakeTimes>;
  eventsSince(afterSeq: number, limit: number, filter?: EventFilter): Promise<StoredEvent[]>;
  lastEventSeq(): Promise<number>;
  /** The oldest event the log still holds; undefined while it holds none. */
  oldestEventSeq(): Promise<number | undefined>;
  /** The newest logged event of one command, if the log still holds one. */
  lastEventFor(commandId: string): Promise<StoredEvent | undefined>;
  /** Stored commands by status, kept as they change: cheap enough for every /metrics scrape. */
  countByStatus(): Promise<Record<CommandStatus, number>>;
  /**
   * Retention (SPEC §7): deletes up to `max` COMPLETED or FAILED commands whose finishedAt is
   * before `before` (epoch ms), oldest first, in one transaction, with their idempotency keys;
   * answers how many. Never a PENDING or RUNNING one.
   */
  deleteFinishedBefore(before: number, max: number): Promise<number>;
  /** The finishedAt (epoch ms) of the oldest COMPLETED or FAILED command, if any. */
  oldestFinishedAt(): Promise<number | undefined>;
  /**
   * True since a write failed for lack of space (it threw DatabaseFull, a 503), until a write
   * stores something again or `ping` finds space again.
   */
  isFull(): boolean;
  /** Checks the database answers; while it is full, also that a write fits (else DatabaseFull). */
  ping(): Promise<void>;
  close(): Promise<void>;
}

export type { Progress };

export interface WakeTimes {
  /** The earliest lease expiry of a RUNNING command. */
  leaseExpiresAt?: number;
  /** The earliest end of a retry backoff, for a PENDING command not yet available. */
  availableAt?: number;
}
