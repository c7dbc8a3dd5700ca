-- Commands and their event log. Times are milliseconds since the Unix epoch (UTC).
CREATE TABLE commands (
  seq              INTEGER PRIMARY KEY AUTOINCREMENT, -- insertion order: list cursor and claim tie-break
  id               TEXT    NOT NULL UNIQUE,
  type             TEXT    NOT NULL CHECK (type IN ('DELAY', 'HTTP_GET_JSON')),
  payload          TEXT    NOT NULL,
  status           TEXT    NOT NULL CHECK (status IN ('PENDING', 'RUNNING', 'COMPLETED', 'FAILED')),
  result           TEXT,
  error            TEXT,
  agent_id         TEXT,
  -- The lease whose holder may still report. Set by a claim; cleared once a report is taken,
  -- a pending command is canceled or a failed one retried. Kept when a lease expires, so the
  -- holder's late report is accepted until another agent claims the command.
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
  report_hash      TEXT,   -- the last report taken, so a repeated report answers 200 and changes nothing
  CHECK ((status = 'RUNNING') = (lease_expires_at IS NOT NULL))
);

CREATE INDEX commands_claim ON commands (available_at, seq) WHERE status = 'PENDING';
CREATE INDEX commands_lease ON commands (lease_expires_at) WHERE status = 'RUNNING';
CREATE INDEX commands_status_seq ON commands (status, seq);
CREATE INDEX commands_type_seq ON commands (type, seq);
CREATE INDEX commands_agent_seq ON commands (agent_id, seq);

CREATE TABLE events (
  seq        INTEGER PRIMARY KEY AUTOINCREMENT, -- the SSE event id; AUTOINCREMENT never reuses one
  command_id TEXT    NOT NULL,
  kind       TEXT    NOT NULL CHECK (kind IN ('status', 'progress')),
  transition TEXT    NOT NULL CHECK (transition IN
               ('submit', 'claim', 'release', 'report', 'progress', 'cancel', 'retry', 'expire')),
  data       TEXT    NOT NULL, -- the whole command, as JSON, after the change
  created_at INTEGER NOT NULL
);

CREATE INDEX events_command ON events (command_id, seq);
