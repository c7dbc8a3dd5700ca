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
 * Opens the agent's SQLite file: WAL, `synchronous = FULL` (a write is on disk before the agent
 * goes on, so neither SIGKILL nor a power cut loses it), and an exclusive lock held for the life
 * of the process. Two agents sharing one file would share one identity and one log, and the
 * second one's start-up recovery would fail the first one's running work; the lock makes the
 * second one stop at once instead.
 */
export function openDatabase(path: string): Database.Database {
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
  const db = new Database(path, { timeout: 250 });
  try {
    db.pragma('locking_mode = EXCLUSIVE');
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
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
