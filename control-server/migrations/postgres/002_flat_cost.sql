-- Running for months (SPEC §7), as migrations/sqlite/002_flat_cost.sql: what keeps the cost of a
-- statement independent of table size. Forward-only, like 001.

-- Retention deletes finished commands oldest first; its timer asks for the oldest. Partial:
-- PENDING and RUNNING rows (finished_at NULL or stale) are never candidates.
CREATE INDEX commands_finished ON commands (finished_at) WHERE status IN ('COMPLETED', 'FAILED');

-- The event-log prune finds the first event it keeps by time in O(log n) instead of walking the
-- log from its head filtering on created_at; seq breaks ties in the same index.
CREATE INDEX events_created ON events (created_at, seq);

-- Counts by status, kept by each write in its own transaction (the store adds its moves between
-- statuses in the statement that logs its events, after it took event_counter), so /metrics reads
-- four rows instead of counting the table. Writers are serialised on event_counter already, so
-- these four rows add no contention of their own. Counted here once, with writers held off.
-- Replicas older than this migration do not keep them: upgrade every replica together.
CREATE TABLE command_counts (
  status text   PRIMARY KEY CHECK (status IN ('PENDING', 'RUNNING', 'COMPLETED', 'FAILED')),
  n      bigint NOT NULL
);
LOCK TABLE commands IN SHARE MODE;
INSERT INTO command_counts (status, n)
  SELECT s.status, (SELECT count(*) FROM commands WHERE commands.status = s.status)
  FROM (VALUES ('PENDING'), ('RUNNING'), ('COMPLETED'), ('FAILED')) AS s(status);

-- A row written and deleted by the health check while the database is full: it succeeds again
-- once space has returned, so the server notices without waiting for a client. EXTERNAL: stored
-- uncompressed, so it really takes the bytes it is given.
CREATE TABLE space_probe (id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY, filler text NOT NULL);
ALTER TABLE space_probe ALTER COLUMN filler SET STORAGE EXTERNAL;
