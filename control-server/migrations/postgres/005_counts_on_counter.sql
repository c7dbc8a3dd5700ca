-- Counts by status move onto the event counter's row. Every writer takes that row anyway (it gives
-- event ids in commit order), so keeping the counts there is one row updated per commit instead
-- of two, and one lock fewer: measured ~0.1 ms off every write transaction here (the separate
-- update of command_counts, with its own lock and WAL record, in the statement that logs events).
-- command_counts is left in place and no longer written: a replica of an older version still
-- running during an upgrade keeps working (its writes are not counted; upgrade every replica together).
ALTER TABLE event_counter
  ADD COLUMN pending   bigint NOT NULL DEFAULT 0,
  ADD COLUMN running   bigint NOT NULL DEFAULT 0,
  ADD COLUMN completed bigint NOT NULL DEFAULT 0,
  ADD COLUMN failed    bigint NOT NULL DEFAULT 0;
LOCK TABLE commands IN SHARE MODE;
UPDATE event_counter SET
  pending   = (SELECT count(*) FROM commands WHERE status = 'PENDING'),
  running   = (SELECT count(*) FROM commands WHERE status = 'RUNNING'),
  completed = (SELECT count(*) FROM commands WHERE status = 'COMPLETED'),
  failed    = (SELECT count(*) FROM commands WHERE status = 'FAILED');
