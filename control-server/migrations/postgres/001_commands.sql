-- Commands and their event log, as in migrations/sqlite/001_commands.sql: times are milliseconds
-- since the Unix epoch (UTC) and JSON is kept as text, so both stores read the same rows.
CREATE TABLE commands (
  seq              bigint  GENERATED ALWAYS AS IDENTITY PRIMARY KEY, -- list cursor and claim tie-break
  id               text    NOT NULL UNIQUE,
  type             text    NOT NULL CHECK (type IN ('DELAY', 'HTTP_GET_JSON')),
  payload          text    NOT NULL,
  status           text    NOT NULL CHECK (status IN ('PENDING', 'RUNNING', 'COMPLETED', 'FAILED')),
  result           text,
  error            text,
  agent_id         text,
  -- The lease whose holder may still report (see the SQLite schema).
  lease_id         text,
  lease_expires_at bigint,
  attempts         integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  max_attempts     integer NOT NULL CHECK (max_attempts BETWEEN 1 AND 20),
  timeout_ms       integer NOT NULL CHECK (timeout_ms > 0),
  available_at     bigint  NOT NULL,
  cancel_requested smallint NOT NULL DEFAULT 0 CHECK (cancel_requested IN (0, 1)),
  progress         text,
  created_at       bigint  NOT NULL,
  updated_at       bigint  NOT NULL,
  started_at       bigint,
  finished_at      bigint,
  -- Unique: two replicas submitting one key at once make one command (ON CONFLICT DO NOTHING).
  idempotency_key  text    UNIQUE,
  request_hash     text,
  report_hash      text,
  CHECK ((status = 'RUNNING') = (lease_expires_at IS NOT NULL))
);

CREATE INDEX commands_claim ON commands (available_at, seq) WHERE status = 'PENDING';
CREATE INDEX commands_lease ON commands (lease_expires_at) WHERE status = 'RUNNING';
CREATE INDEX commands_status_seq ON commands (status, seq);
CREATE INDEX commands_type_seq ON commands (type, seq);
CREATE INDEX commands_agent_seq ON commands (agent_id, seq);

-- The SSE event ids. Not a sequence: sequence values are handed out in call order, not commit
-- order, so a reader could see id n+1 committed while n is still in flight and skip n for good.
-- A writing transaction takes this row last, just before it commits, and keeps its lock until the
-- commit is visible; the next writer reads the value after it. Ids are thus in commit order.
CREATE TABLE event_counter (
  only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
  last_seq bigint  NOT NULL
);
INSERT INTO event_counter (last_seq) VALUES (0);

CREATE TABLE events (
  seq        bigint  PRIMARY KEY, -- the SSE event id, from event_counter
  command_id text    NOT NULL,
  kind       text    NOT NULL CHECK (kind IN ('status', 'progress')),
  transition text    NOT NULL CHECK (transition IN
               ('submit', 'claim', 'release', 'report', 'progress', 'cancel', 'retry', 'expire')),
  data       text    NOT NULL, -- the whole command, as JSON, after the change
  created_at bigint  NOT NULL
);

CREATE INDEX events_command ON events (command_id, seq);
