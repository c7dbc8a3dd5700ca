-- Routing and flow control (SPEC §9): queues, priorities, scheduled starts, per-key concurrency.
--
-- The commands table is rebuilt (SQLite cannot drop a CHECK): 001 allowed only the two built-in
-- types, and a type is now whatever agents advertise (`types=` on their polls), so the check keeps
-- only the shape of a type name. A one-time copy; the new columns come with it.
CREATE TABLE commands_new (
  seq              INTEGER PRIMARY KEY AUTOINCREMENT,
  id               TEXT    NOT NULL UNIQUE,
  type             TEXT    NOT NULL CHECK (length(type) BETWEEN 1 AND 64 AND type NOT GLOB '*[^A-Z0-9_]*'),
  payload          TEXT    NOT NULL,
  status           TEXT    NOT NULL CHECK (status IN ('PENDING', 'RUNNING', 'COMPLETED', 'FAILED')),
  result           TEXT,
  error            TEXT,
  agent_id         TEXT,
  lease_id         TEXT,
  lease_expires_at INTEGER,
  attempts         INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  max_attempts     INTEGER NOT NULL CHECK (max_attempts BETWEEN 1 AND 20),
  timeout_ms       INTEGER NOT NULL CHECK (timeout_ms > 0),
  available_at     INTEGER NOT NULL,
  cancel_requested INTEGER NOT NULL DEFAULT 0 CHECK (cancel_requested IN (0, 1)),
  progress         TEXT,
  created_at       INTEGER NOT NULL,
  updated_at       INTEGER NOT NULL,
  started_at       INTEGER,
  finished_at      INTEGER,
  idempotency_key  TEXT    UNIQUE,
  request_hash     TEXT,
  report_hash      TEXT,
  queue            TEXT    NOT NULL DEFAULT 'default',
  priority         INTEGER NOT NULL DEFAULT 0 CHECK (priority BETWEEN -100 AND 100),
  run_at           INTEGER,
  concurrency_key  TEXT,
  concurrency_limit INTEGER CHECK (concurrency_limit BETWEEN 1 AND 1000),
  -- Where a PENDING command stands (meaningless otherwise):
  --   1 ready:     may start now; the only PENDING rows in the claim index.
  --   0 scheduled: its available_at (runAt or retry backoff) is ahead; the reaper promotes it.
  --   2 held:      due, but its concurrency key has `limit` commands running or ready.
  -- A row written by plain SQL gets 1: ready, as before this migration.
  ready            INTEGER NOT NULL DEFAULT 1 CHECK (ready IN (0, 1, 2)),
  CHECK ((status = 'RUNNING') = (lease_expires_at IS NOT NULL)),
  CHECK ((concurrency_key IS NULL) = (concurrency_limit IS NULL))
);

INSERT INTO commands_new
  (seq, id, type, payload, status, result, error, agent_id, lease_id, lease_expires_at, attempts,
   max_attempts, timeout_ms, available_at, cancel_requested, progress, created_at, updated_at,
   started_at, finished_at, idempotency_key, request_hash, report_hash, ready)
SELECT seq, id, type, payload, status, result, error, agent_id, lease_id, lease_expires_at, attempts,
   max_attempts, timeout_ms, available_at, cancel_requested, progress, created_at, updated_at,
   started_at, finished_at, idempotency_key, request_hash, report_hash,
   -- A backoff still running: scheduled (the reaper promotes it when due, and at start).
   CASE WHEN status = 'PENDING' AND available_at > CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)
        THEN 0 ELSE 1 END
FROM commands;

DROP TABLE commands;
ALTER TABLE commands_new RENAME TO commands;

CREATE INDEX commands_lease ON commands (lease_expires_at) WHERE status = 'RUNNING';
CREATE INDEX commands_status_seq ON commands (status, seq);
CREATE INDEX commands_type_seq ON commands (type, seq);
CREATE INDEX commands_agent_seq ON commands (agent_id, seq);
CREATE INDEX commands_finished ON commands (finished_at) WHERE status IN ('COMPLETED', 'FAILED');
CREATE INDEX commands_queue_seq ON commands (queue, seq);

-- The claim reads only commands that may start now, in the order it hands them out: one range
-- per (queue, type) the agent serves. A key at its limit has its backlog held (ready = 2) outside
-- this index, so no claim ever walks it.
CREATE INDEX commands_ready ON commands (queue, type, priority DESC, seq) WHERE status = 'PENDING' AND ready = 1;
-- Scheduled commands by due time: the reaper's next wake-up and its promotion of the due ones.
CREATE INDEX commands_scheduled ON commands (available_at) WHERE status = 'PENDING' AND ready = 0;
-- A key's held commands in claim order: the next one to promote when a slot frees.
CREATE INDEX commands_held ON commands (concurrency_key, priority DESC, seq) WHERE status = 'PENDING' AND ready = 2;
-- A key's running count for waitingFor and the limit check when a command leaves RUNNING.
CREATE INDEX commands_key_running ON commands (concurrency_key) WHERE status = 'RUNNING' AND concurrency_key IS NOT NULL;

-- Per concurrency key: its limit (the most recent submit's) and `active`, its commands RUNNING or
-- ready (PENDING, ready = 1). Kept by each transition in its own transaction; a command becomes
-- ready only while active < lim, so at most lim of the key can ever be RUNNING.
CREATE TABLE concurrency_keys (
  key    TEXT    PRIMARY KEY,
  lim    INTEGER NOT NULL CHECK (lim BETWEEN 1 AND 1000),
  active INTEGER NOT NULL DEFAULT 0 CHECK (active >= 0)
) WITHOUT ROWID;

-- Agents seen polling or heartbeating (GET /agents, drain). Written when something changes and at
-- most every few seconds otherwise (agent-registry.ts), not on every poll.
CREATE TABLE agents (
  id           TEXT    PRIMARY KEY,
  hostname     TEXT,
  version      TEXT,
  queues       TEXT    NOT NULL, -- JSON array
  types        TEXT    NOT NULL, -- JSON array
  concurrency  INTEGER,
  in_flight    INTEGER NOT NULL DEFAULT 0,
  last_seen_at INTEGER NOT NULL,
  draining     INTEGER NOT NULL DEFAULT 0 CHECK (draining IN (0, 1))
) WITHOUT ROWID;
CREATE INDEX agents_seen ON agents (last_seen_at);
-- GET /queues: counts and the oldest PENDING per queue, over active commands only.
CREATE INDEX commands_active_queue ON commands (status, queue, created_at) WHERE status IN ('PENDING', 'RUNNING');
