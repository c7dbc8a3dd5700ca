-- Running for months (SPEC §7): what keeps the cost of a statement independent of table size.

-- Retention deletes finished commands oldest first; the reaper-like timer asks for the oldest.
-- Partial: PENDING and RUNNING rows (finished_at NULL or stale) are never candidates.
CREATE INDEX commands_finished ON commands (finished_at) WHERE status IN ('COMPLETED', 'FAILED');

-- The event-log prune finds the first event it keeps by time in O(log n) instead of walking the
-- log from its head filtering on created_at.
CREATE INDEX events_created ON events (created_at);

-- Counts by status, kept as they change by each write in its own transaction (the store adds
-- its moves between statuses), so /metrics reads four rows instead of counting the table
-- (GROUP BY status: 42 ms at 1 M rows per scrape). Not triggers: a trigger on INSERT cost
-- 8.7 µs per submitted command. The store counts once more when it opens, for rows written by
-- plain SQL while it was not running.
CREATE TABLE command_counts (
  status TEXT    PRIMARY KEY CHECK (status IN ('PENDING', 'RUNNING', 'COMPLETED', 'FAILED')),
  n      INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO command_counts (status, n)
  SELECT s.status, (SELECT count(*) FROM commands WHERE commands.status = s.status)
  FROM (SELECT 'PENDING' AS status UNION ALL SELECT 'RUNNING' UNION ALL SELECT 'COMPLETED' UNION ALL SELECT 'FAILED') AS s;

-- One page-sized row written and deleted by the health check while the database is full: it
-- succeeds again once space has returned, so the server notices without waiting for a client.
CREATE TABLE space_probe (id INTEGER PRIMARY KEY, filler BLOB NOT NULL);
