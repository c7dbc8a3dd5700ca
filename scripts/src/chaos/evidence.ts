/**
 * What a drill collects to judge a run, and the readers of what the processes wrote: an agent's
 * outbox (SQLite, read-only, right after it died, before its restart) and the server's database
 * (its SQLite file read-only, or its PostgreSQL tables) after every replica was stopped.
 */
import { existsSync } from 'node:fs';
import Database from 'better-sqlite3';
import type { Witness } from './target.js';

export type CommandType = 'HTTP_GET_JSON' | 'DELAY';
export type Status = 'PENDING' | 'RUNNING' | 'COMPLETED' | 'FAILED';

/** One planned command and what its submit got. */
export interface SubmitRecord {
  key: string;
  type: CommandType;
  /** `created`: a 201; `replayed`: a 200 for a retry whose first answer was lost; `unanswered`: gave up. */
  answer: 'created' | 'replayed' | 'rejected' | 'unanswered';
  id: string | null;
  /** Requests sent for it (retries through server downtime included). */
  tries: number;
  /** The last error or rejection, for the report. */
  detail: string | null;
}

export interface CommandRecord {
  id: string;
  key: string | null;
  type: CommandType;
  status: Status;
  error: string | null;
  attempts: number;
  maxAttempts: number;
  agentId: string | null;
  /** HTTP_GET_JSON: the `key` in the body the command's result holds (the target echoes it). */
  resultKey: string | null;
}

export interface EventRecord {
  seq: number;
  transition: string;
  status: Status;
  agentId: string | null;
  attempts: number;
  error: string | null;
  at: number;
  /** The command's concurrency key and limit (SPEC §9), null for an unkeyed one. */
  concurrencyKey?: string | null;
  concurrencyLimit?: number | null;
}

export interface OutboxRow {
  commandId: string;
  leaseId: string;
  state: 'started' | 'finished' | 'reported' | 'dropped';
  status: 'COMPLETED' | 'FAILED' | null;
  error: string | null;
  executions: number;
  note: string | null;
}

/** One death of an agent, and what its outbox held right after it. */
export interface AgentDeath {
  agent: string;
  /** Which life of that agent ended (1 = its first start). */
  life: number;
  /** That life ran with --random-failures. */
  randomFailures: boolean;
  /** `drill`: killed by the drill's schedule; `self`: its own --random-failures; `exit`: ended by itself otherwise. */
  by: 'drill' | 'self' | 'exit';
  /** How it ended (SIGKILL, or an exit code) and, for self kills, the agent's last words. */
  how: string;
  at: number;
  /** Commands `started` in its outbox: attempts cut off mid-execution. */
  started: OutboxRow[];
  /** Commands `finished` but not reported: outcomes the server had not heard of yet. */
  unreported: OutboxRow[];
}

export interface ServerDeath {
  n: number;
  /** Which replica (0-based; always 0 with one server). */
  replica: number;
  by: 'drill' | 'exit';
  how: string;
  at: number;
  /** From the SIGKILL to /health answering again. */
  downMs: number;
}

/** An attempt an agent gave up because it could not renew its lease in time (from its log). */
export interface LeaseLoss {
  agent: string;
  commandId: string;
  why: string;
  /** When the drill read the agent's log line. */
  at: number;
}

/** What the drill's SSE follower received: one stream at a time, moved to the next replica when its replica died. */
export interface SseRecord {
  /** Event ids in the order they arrived, over every connection. */
  received: number[];
  /** Each reconnection: to which replica, resuming after which id. */
  resumes: Array<{ at: number; replica: number; lastEventId: number }>;
  /** `event: reset` frames (events after the resume id were pruned): events lost to the client. */
  resets: number;
}

export interface Evidence {
  run: {
    /** Server processes on the one database. */
    replicas: number;
    /** Agents could be killed: by the drill (agent kills > 0) or by themselves (--random-failures). */
    agentsKillable: boolean;
    /** LEASE_MS of the server. */
    leaseMs: number;
    /** The drill gave up waiting (deadline or stall) before every command was terminal. */
    gaveUp: string | null;
  };
  submits: SubmitRecord[];
  commands: CommandRecord[];
  events: Map<string, EventRecord[]>;
  /** By submit key. */
  witness: Map<string, Witness>;
  agentDeaths: AgentDeath[];
  serverDeaths: ServerDeath[];
  /** Each agent's outbox after the run. */
  outboxes: Map<string, OutboxRow[]>;
  leaseLosses: LeaseLoss[];
  /** Every event id in the server's log, ascending. */
  eventIds: number[];
  /** Null when the drill ran no SSE follower. */
  sse: SseRecord | null;
}

interface OutboxDbRow {
  command_id: string;
  lease_id: string;
  state: OutboxRow['state'];
  status: OutboxRow['status'];
  error: string | null;
  executions: number;
  note: string | null;
}

export function readOutbox(path: string): OutboxRow[] {
  if (!existsSync(path)) return [];
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    const exists = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'outbox'").get();
    if (!exists) return [];
    return db
      .prepare<[], OutboxDbRow>('SELECT command_id, lease_id, state, status, error, executions, note FROM outbox')
      .all()
      .map((r) => ({
        commandId: r.command_id,
        leaseId: r.lease_id,
        state: r.state,
        status: r.status,
        error: r.error,
        executions: r.executions,
        note: r.note,
      }));
  } finally {
    db.close();
  }
}

interface CommandDbRow {
  id: string;
  idempotency_key: string | null;
  type: CommandType;
  status: Status;
  error: string | null;
  attempts: number;
  max_attempts: number;
  agent_id: string | null;
  result: string | null;
}

interface EventDbRow {
  seq: number;
  command_id: string;
  transition: string;
  data: string;
  created_at: number;
}

export interface ServerRecords {
  commands: CommandRecord[];
  events: Map<string, EventRecord[]>;
  /** Every event id in the log, ascending. */
  eventIds: number[];
}

const COMMANDS_SQL = 'SELECT id, idempotency_key, type, status, error, attempts, max_attempts, agent_id, result FROM commands ORDER BY seq';
const EVENTS_SQL = 'SELECT seq, command_id, transition, data, created_at FROM events ORDER BY seq';

/** The server's SQLite file, read-only, after the server stopped. */
export function readServerDb(path: string): ServerRecords {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    return toRecords(db.prepare<[], CommandDbRow>(COMMANDS_SQL).all(), db.prepare<[], EventDbRow>(EVENTS_SQL).iterate());
  } finally {
    db.close();
  }
}

/** The same tables on PostgreSQL (the schemas agree column for column; bigints come as text). */
export async function readServerPg(url: string): Promise<ServerRecords> {
  const { default: pg } = await import('pg');
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const commands = await client.query<CommandDbRow>(COMMANDS_SQL);
    const events = await client.query<EventDbRow>(EVENTS_SQL);
    return toRecords(
      commands.rows,
      events.rows.map((r) => ({ ...r, seq: Number(r.seq), created_at: Number(r.created_at) })),
    );
  } finally {
    await client.end();
  }
}

/** The last event id in the log now, read while the servers run (SQLite in WAL mode allows a reader). */
export async function lastEventId(database: { path: string } | { url: string }): Promise<number> {
  const sql = 'SELECT coalesce(max(seq), 0) AS last FROM events';
  if ('path' in database) {
    const db = new Database(database.path, { readonly: true, fileMustExist: true });
    try {
      return db.prepare<[], { last: number }>(sql).get()?.last ?? 0;
    } finally {
      db.close();
    }
  }
  const { default: pg } = await import('pg');
  const client = new pg.Client({ connectionString: database.url });
  await client.connect();
  try {
    return Number((await client.query<{ last: string }>(sql)).rows[0]?.last ?? 0);
  } finally {
    await client.end();
  }
}

function toRecords(commandRows: CommandDbRow[], eventRows: Iterable<EventDbRow>): ServerRecords {
  const commands = commandRows.map((r) => ({
    id: r.id,
    key: r.idempotency_key,
    type: r.type,
    status: r.status,
    error: r.error,
    attempts: r.attempts,
    maxAttempts: r.max_attempts,
    agentId: r.agent_id,
    resultKey: r.type === 'HTTP_GET_JSON' && r.result !== null ? resultKey(r.result) : null,
  }));
  const events = new Map<string, EventRecord[]>();
  const eventIds: number[] = [];
  for (const r of eventRows) {
    eventIds.push(r.seq);
    const c = JSON.parse(r.data) as {
      status: Status;
      agentId: string | null;
      attempts: number;
      error: string | null;
      concurrencyKey?: string | null;
      concurrencyLimit?: number | null;
    };
    const list = events.get(r.command_id) ?? [];
    list.push({
      seq: r.seq,
      transition: r.transition,
      status: c.status,
      agentId: c.agentId,
      attempts: c.attempts,
      error: c.error,
      at: r.created_at,
      concurrencyKey: c.concurrencyKey ?? null,
      concurrencyLimit: c.concurrencyLimit ?? null,
    });
    events.set(r.command_id, list);
  }
  return { commands, events, eventIds };
}

function resultKey(json: string): string | null {
  const result = JSON.parse(json) as { body?: { key?: unknown } } | null;
  return typeof result?.body?.key === 'string' ? result.body.key : null;
}
