-- Routing (SPEC §9), as in migrations/sqlite/003_routing.sql where the two agree. The PostgreSQL
-- store stores every routing field and claims by queue, type, priority and availability
-- (available_at holds runAt). `ready` stays 1: it keeps no held state; the claim itself skips a
-- key at its limit (postgres-statements.ts), counting the key's RUNNING commands.
ALTER TABLE commands
  ADD COLUMN queue             text     NOT NULL DEFAULT 'default',
  ADD COLUMN priority          integer  NOT NULL DEFAULT 0,
  ADD COLUMN run_at            bigint,
  ADD COLUMN concurrency_key   text,
  ADD COLUMN concurrency_limit integer,
  ADD COLUMN ready             smallint NOT NULL DEFAULT 1 CHECK (ready IN (0, 1, 2));

-- Any type an agent may advertise (the SQLite rule): a command of a type no built-in executor
-- runs waits for an agent that names it.
ALTER TABLE commands DROP CONSTRAINT commands_type_check;
ALTER TABLE commands ADD CONSTRAINT commands_type_check CHECK (type ~ '^[A-Z0-9_]{1,64}$');

-- The claim: per (queue, type), PENDING commands in claim order.
CREATE INDEX commands_route ON commands (queue, type, priority DESC, seq) WHERE status = 'PENDING';
CREATE INDEX commands_queue_seq ON commands (queue, seq);
-- Per-key concurrency: a key's RUNNING count, and its limit (its newest command's).
CREATE INDEX commands_key_running ON commands (concurrency_key) WHERE status = 'RUNNING' AND concurrency_key IS NOT NULL;
CREATE INDEX commands_key_seq ON commands (concurrency_key, seq) WHERE concurrency_key IS NOT NULL;
-- GET /queues: counts and the oldest PENDING per queue, over active commands only.
CREATE INDEX commands_active_queue ON commands (status, queue, created_at) WHERE status IN ('PENDING', 'RUNNING');

-- Agents seen polling or heartbeating (GET /agents, drain); see the SQLite migration.
CREATE TABLE agents (
  id           text    PRIMARY KEY,
  hostname     text,
  version      text,
  queues       text    NOT NULL, -- JSON array
  types        text    NOT NULL, -- JSON array
  concurrency  integer,
  in_flight    integer NOT NULL DEFAULT 0,
  last_seen_at bigint  NOT NULL,
  draining     smallint NOT NULL DEFAULT 0 CHECK (draining IN (0, 1))
);
CREATE INDEX agents_seen ON agents (last_seen_at);
