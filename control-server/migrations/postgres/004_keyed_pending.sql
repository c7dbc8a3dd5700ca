-- Whether any keyed command waits to be claimed, in one index probe: a claim that missed the keyed
-- turn (another claim held it) asks, and wakes this replica's polls again shortly only if one does.
-- Without it, replicas claiming at once woke each other's polls every 20 ms, keyed commands or not.
CREATE INDEX commands_keyed_pending ON commands (available_at) WHERE status = 'PENDING' AND concurrency_key IS NOT NULL;
