import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (
  key   TEXT PRIMARY KEY,
  value TEXT NOT NULL
);

-- The idempotency log: one row per command this agent has worked on, in its latest attempt.
-- Times are milliseconds since the Unix epoch.
CREATE TABLE IF NOT EXISTS outbox (
  command_id  TEXT    PRIMARY KEY,
  lease_id    TEXT    NOT NULL, -- the lease the row's state belongs to; every transition checks it
  type        TEXT    NOT NULL,
  state       TEXT    NOT NULL CHECK (state IN ('started', 'finished', 'reported', 'dropped')),
  status      TEXT    CHECK (status IN ('COMPLETED', 'FAILED')), -- the outcome, once finished
  result      TEXT,   -- JSON
  error       TEXT,
  retryable   INTEGER CHECK (retryable IN (0, 1)),
  executions  INTEGER NOT NULL DEFAULT 0, -- how often this agent has started its executor for it
  note        TEXT,   -- why a row was dropped
  updated_at  INTEGER NOT NULL,
  CHECK ((state = 'started') = (status IS NULL) OR state = 'dropped')
);
CREATE INDEX IF NOT EXISTS outbox_state ON outbox (state, updated_at);
`;

export class DatabaseInUse extends Error {}

/**
 * WAL with synchronous=NORMAL: a commit has written its WAL frames to the file (the OS has them)
 * before it returns, so a SIGKILL of the agent, at any moment, loses nothing committed; only an
 * OS crash or a power cut can lose the last commits (the WAL is fsynced at checkpoints only).
 * FULL would add an fsync to every commit. Measured on the 2-core box, loaded (Nov 2026):
 * a commit costs 0.24–1.1 ms with FULL against 0.03–0.05 ms with NORMAL, and the main thread
 * waits for it (better-sqlite3 is synchronous); with group commit (group-commit.ts) an agent
 * at CONCURRENCY 8 against an instant fake server ran DELAY 0 at 0.5–0.8k/s with FULL against
 * 1.1–2.3k/s with NORMAL, interleaved runs, and 2 agents × 8 end to end did 630–790/s against
 * 1 000–1 100/s. What a power cut could then cost: a `started` row lost is a crash before
 * `started` (the lease runs out, the server retries: at-least-once, as for any unfinished
 * work); a `finished` outcome lost before the server took its report means the command may run
 * again after its lease runs out; a lost `reported`/`dropped` mark only sends a report again,
 * which the server answers 200 (or 409) without changing anything. Every old row names its
 * lease, so a stale outcome can never overwrite a newer attempt on the server.
 */
const DURABILITY = 'synchronous = NORMAL';

/**
 * Opens the agent's SQLite file: WAL with `synchronous = NORMAL` (see DURABILITY below), and an
 * exclusive lock held for the life of the process. Two agents sharing one file would share one identity and one log, and the
 * second one's start-up recovery would fail the first one's running work; the lock makes the
 * second one stop at once instead.
 */
export function openDatabase(path: string): Database.Database {
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
  const db = new Database(path, { timeout: 250 });
  try {
    db.pragma('locking_mode = EXCLUSIVE');
    db.pragma('journal_mode = WAL');
    db.pragma(DURABILITY);
    // The first write takes the exclusive lock, and EXCLUSIVE mode never gives it back.
    db.exec(SCHEMA);
    db.exec('BEGIN IMMEDIATE; COMMIT');
  } catch (err) {
    db.close();
    if ((err as { code?: string }).code === 'SQLITE_BUSY') {
      throw new DatabaseInUse(
        `${path} is in use by another agent process; give each agent its own IDEMPOTENCY_DB_PATH`,
      );
    }
    throw err;
  }
  return db;
}
