/**
 * Every statement of the PostgreSQL store, as named (prepared) statements: node-postgres parses
 * and plans each once per connection. As in sqlite-statements.ts each transition is one guarded
 * statement: its WHERE states the precondition, and zero rows changed means the command was no
 * longer in the state the caller expected.
 */
export interface Statement {
  name: string;
  text: string;
}

const statement = (name: string, text: string): Statement => ({ name: `ae_${name}`, text });

// Plans. Write transactions use generic plans (postgres-group-commit.ts), kept for a connection's
// life and often made before a table had statistics (a fresh database: autovacuum's first ANALYZE
// comes a minute or more later). Made then, a guard such as `status = 'RUNNING'` beside `id = $1`
// led the planner to walk a status index (commands_active_queue, commands_status_seq) and filter
// by id: a cancel read the whole backlog, a heartbeat every RUNNING command, a retry every FAILED
// one (measured: 3 000 rows for one cancel). So a statement that finds rows by key writes the rest
// of its guard in a form no index serves — `IS NOT DISTINCT FROM`, `NOT IN` (the same test on
// these NOT NULL columns) — and the key is the only way in. Tested in store-postgres.test.ts.

/**
 * The transaction-local setting that tells the claim statement whether its transaction got the
 * keyed-claim turn: set by the query that begins the transaction (postgres-group-commit.ts).
 */
export const KEYED_TURN_SETTING = 'agent_executor.keyed_turn';

/**
 * Set on each connection of a replica's pool when it opens: no plan of this store reads a whole
 * table where an index would do (see the pool's 'connect' handler in postgres.ts). A statement
 * without an index to follow still scans; the setting only tells the planner never to prefer it.
 */
export const SESSION_SETTINGS = 'SET enable_seqscan = off';

/** The channel of LISTEN/NOTIFY: one notification per committed write that logged events. */
export const CHANNEL = 'agent_executor';

const COMMAND_COLUMNS =
  'id, type, payload, status, attempts, max_attempts, timeout_ms, available_at, created_at, updated_at, idempotency_key, request_hash, ' +
  'queue, priority, run_at, concurrency_key, concurrency_limit';

export const sql = {
  upsertAgent: statement(
    'upsert_agent',
    `INSERT INTO agents (id, hostname, version, queues, types, concurrency, last_seen_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7)
     ON CONFLICT (id) DO UPDATE SET hostname = excluded.hostname, version = excluded.version,
       queues = excluded.queues, types = excluded.types, concurrency = excluded.concurrency,
       last_seen_at = greatest(agents.last_seen_at, excluded.last_seen_at)`,
  ),
  agentsSeenSince: statement('agents_seen_since', 'SELECT * FROM agents WHERE last_seen_at >= $1 ORDER BY id'),
  drainAgent: statement('drain_agent', 'UPDATE agents SET draining = 1 WHERE id = $1'),
  runningByAgent: statement(
    'running_by_agent',
    `SELECT agent_id, count(*)::integer AS n FROM commands WHERE status = 'RUNNING' GROUP BY agent_id`,
  ),
  queueCounts: statement(
    'queue_counts',
    `SELECT queue, status, count(*)::integer AS n, min(created_at) AS oldest FROM commands
     WHERE status IN ('PENDING', 'RUNNING') GROUP BY status, queue`,
  ),
  // ON CONFLICT DO NOTHING: a submit racing another with the same key (on any replica) waits for
  // it, then inserts nothing; the caller then reads the command the other one stored.
  insert: statement(
    'insert',
    `INSERT INTO commands (${COMMAND_COLUMNS})
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10, $11, $12, $13, $14, $15, $16)
     ON CONFLICT (idempotency_key) DO NOTHING
     RETURNING seq`,
  ),
  // The submits of one transaction without an Idempotency-Key, in one statement (one round trip
  // instead of one each); seq follows their order.
  insertMany: statement(
    'insert_many',
    `INSERT INTO commands (${COMMAND_COLUMNS})
     SELECT r.id, r.type, r.payload, 'PENDING', 0, r.max_attempts, r.timeout_ms, r.available_at, r.created_at,
            r.created_at, NULL, NULL, r.queue, r.priority, r.run_at, r.concurrency_key, r.concurrency_limit
     FROM unnest($1::text[], $2::text[], $3::text[], $4::integer[], $5::integer[], $6::bigint[], $7::bigint[],
                 $8::text[], $9::integer[], $10::bigint[], $11::text[], $12::integer[])
          WITH ORDINALITY AS r(id, type, payload, max_attempts, timeout_ms, available_at, created_at,
                               queue, priority, run_at, concurrency_key, concurrency_limit, ord)
     ORDER BY r.ord`,
  ),
  byId: statement('by_id', 'SELECT * FROM commands WHERE id = $1'),
  /** The current row, locked until the transaction ends: what report/cancel/retry decide from. */
  byIdForUpdate: statement('by_id_for_update', 'SELECT * FROM commands WHERE id = $1 FOR UPDATE'),
  /** The rows of a run of writes that each lock one command (reports), locked in id order. */
  byIdsForUpdate: statement('by_ids_for_update', 'SELECT * FROM commands WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE'),
  byIdempotencyKey: statement('by_idempotency_key', 'SELECT * FROM commands WHERE idempotency_key = $1'),
  // One statement picks and leases, for several agents of one route ($4 queues × $5 types) at
  // once, highest priority first: $1 holds one agent id per command wanted, in the order of the requests; the n-th command in claim order goes to the n-th slot.
  // SKIP LOCKED: claims on other connections and replicas pass over rows another claim holds
  // instead of queueing behind it, and never take the same row.
  // Keyed commands only when the transaction got the keyed-claim turn (KEYED_TURN_SETTING).
  // Per (queue, type) pair ($4 × $5) a LATERAL read of commands_route in claim order, cut at the
  // number wanted: each pair's read stops after the rows it can give, so the cost does not grow
  // with the backlog (one ORDER BY over several pairs would sort every PENDING row of them).
  claim: statement(
    'claim',
    `WITH full_keys AS MATERIALIZED (
       -- Keys at their limit, from the RUNNING keyed commands (commands_key_running): the walk
       -- below passes their PENDING commands by one hash lookup each instead of two subqueries.
       SELECT r.concurrency_key AS key FROM commands r
       WHERE r.status = 'RUNNING' AND r.concurrency_key IS NOT NULL
       GROUP BY r.concurrency_key
       HAVING count(*) >= (SELECT l.concurrency_limit FROM commands l
                           WHERE l.concurrency_key = r.concurrency_key ORDER BY l.seq DESC LIMIT 1)),
     candidates AS (
       SELECT picked.seq, picked.priority, picked.concurrency_key, picked.free
       FROM unnest($4::text[]) AS q(queue) CROSS JOIN unnest($5::text[]) AS t(type)
       CROSS JOIN LATERAL (
         SELECT c.seq, c.priority, c.concurrency_key,
                CASE WHEN c.concurrency_key IS NULL THEN NULL ELSE
                  (SELECT l.concurrency_limit FROM commands l
                   WHERE l.concurrency_key = c.concurrency_key ORDER BY l.seq DESC LIMIT 1)
                  - (SELECT count(*) FROM commands r
                     WHERE r.status = 'RUNNING' AND r.concurrency_key = c.concurrency_key) END AS free
         FROM commands c
         WHERE c.status = 'PENDING' AND c.queue = q.queue AND c.type = t.type AND c.available_at <= $3
           -- A key at its limit is passed over here, so its backlog never fills the window.
           AND (c.concurrency_key IS NULL OR (current_setting('${KEYED_TURN_SETTING}', true) = 'true' AND
                c.concurrency_key NOT IN (SELECT key FROM full_keys)))
         ORDER BY c.priority DESC, c.seq LIMIT cardinality($1::text[])
         FOR UPDATE OF c SKIP LOCKED) AS picked
       ORDER BY picked.priority DESC, picked.seq LIMIT cardinality($1::text[])),
     allowed AS (
       SELECT seq, priority, concurrency_key, free,
              row_number() OVER (PARTITION BY concurrency_key ORDER BY priority DESC, seq) AS nth
       FROM candidates),
     picked AS (
       SELECT seq, row_number() OVER (ORDER BY priority DESC, seq) AS slot FROM allowed
       WHERE concurrency_key IS NULL OR nth <= free),
     slots AS (SELECT agent_id, slot FROM unnest($1::text[]) WITH ORDINALITY AS s(agent_id, slot))
     UPDATE commands c
     SET status = 'RUNNING', agent_id = slots.agent_id, lease_id = replace(gen_random_uuid()::text, '-', ''),
         lease_expires_at = $2, attempts = c.attempts + 1, started_at = $3, finished_at = NULL,
         progress = NULL, report_hash = NULL, updated_at = $3
     FROM picked JOIN slots USING (slot) WHERE c.seq = picked.seq
     RETURNING c.*`,
  ),
  // Keyed claims of all replicas take turns: a claim counts a key's RUNNING commands, and two
  // claims counting at once (each blind to the other's uncommitted rows) would both take the last
  // slot. The turn is an advisory lock the claim's transaction tries with its BEGIN (see
  // postgres-group-commit.ts): a try, so a claim never waits on it (no deadlock with the row locks
  // of the other writes of its batch); one that misses it leaves keyed commands for the next poll.
  /**
   * Tries the keyed-claim turn (advisory lock $1) and leaves the outcome in KEYED_TURN_SETTING; when
   * it missed, also whether a keyed command due by $2 waits (commands_keyed_pending): the claim then
   * leaves it for the next poll, and the replica wakes its polls again shortly only if one does.
   * Asked here, with BEGIN, rather than after the claims: a round trip fewer inside every claim
   * that missed the turn (~2 in 5 with two replicas under load).
   */
  tryKeyedTurn: statement(
    'try_keyed_turn',
    `SELECT t.got, NOT t.got AND EXISTS (
              SELECT 1 FROM commands WHERE status = 'PENDING' AND concurrency_key IS NOT NULL AND available_at <= $2) AS waiting
     FROM (SELECT set_config('${KEYED_TURN_SETTING}', pg_try_advisory_xact_lock($1)::text, true) = 'true' AS got) AS t`,
  ),
  /**
   * For waitingFor: a key's RUNNING count, its limit (its newest command's), and how many of its
   * PENDING commands due at $2 come before the one at priority $3, seq $4 in claim order (they
   * take the free slots first, as SQLite's ready ones do).
   */
  keyState: statement(
    'key_state',
    `SELECT (SELECT count(*)::integer FROM commands WHERE status = 'RUNNING' AND concurrency_key = $1) AS running,
            (SELECT concurrency_limit FROM commands WHERE concurrency_key = $1 ORDER BY seq DESC LIMIT 1) AS "limit",
            (SELECT count(*)::integer FROM commands
             WHERE status = 'PENDING' AND concurrency_key = $1 AND available_at <= $2
               AND (priority > $3 OR (priority = $3 AND seq < $4))) AS ahead`,
  ),
  // available_at is left alone: the command keeps its place at the head of the queue. A cancel
  // asked for while it was leased ends it instead: FAILED "canceled", as an expiry does.
  release: statement(
    'release',
    `UPDATE commands
     SET status = CASE WHEN cancel_requested = 1 THEN 'FAILED' ELSE 'PENDING' END,
         error = CASE WHEN cancel_requested = 1 THEN 'canceled' ELSE error END,
         finished_at = CASE WHEN cancel_requested = 1 THEN $3::bigint ELSE NULL END,
         lease_id = NULL, lease_expires_at = NULL, attempts = attempts - 1,
         started_at = NULL, updated_at = $3
     WHERE id = $1 AND status IS NOT DISTINCT FROM 'RUNNING' AND lease_id = $2
     RETURNING *`,
  ),
  // The reports of one transaction, in one statement. Each row is locked and checked against the
  // guard by then, so every row matches; otherwise the statement fails (division by zero) and the
  // transaction with it, as nothing is checked between it and COMMIT (sent together).
  // Only `c.id = r.id` can use an index (see "Plans" above): given `status IN (…)` the plan read
  // every PENDING and RUNNING command and hash-joined the reports to them (2.9 ms a statement
  // behind a backlog), and given `agent_id =`, once analysed, walked the agent's whole history.
  reportMany: statement(
    'report_many',
    `WITH written AS (
     UPDATE commands c
     SET status = r.status, result = r.result, error = r.error, available_at = r.available_at,
         finished_at = r.finished_at, lease_id = NULL, lease_expires_at = NULL,
         cancel_requested = r.cancel_requested, report_hash = r.report_hash, updated_at = r.updated_at
     FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[],
                 $8::bigint[], $9::smallint[], $10::text[], $11::bigint[])
          AS r(id, agent_id, lease_id, status, result, error, available_at, finished_at, cancel_requested,
               report_hash, updated_at)
     WHERE c.id = r.id AND c.agent_id IS NOT DISTINCT FROM r.agent_id AND c.lease_id = r.lease_id
       AND c.status NOT IN ('COMPLETED', 'FAILED')
     RETURNING 1)
     SELECT 1 / (count(*) = cardinality($1::text[]))::integer AS all_written FROM written`,
  ),
  heartbeat: statement(
    'heartbeat',
    `UPDATE commands
     SET lease_expires_at = $4, progress = coalesce($5, progress), updated_at = $6
     WHERE id = $1 AND status IS NOT DISTINCT FROM 'RUNNING' AND agent_id IS NOT DISTINCT FROM $2 AND lease_id = $3
     RETURNING *`,
  ),
  cancelPending: statement(
    'cancel_pending',
    `UPDATE commands
     SET status = 'FAILED', error = 'canceled', lease_id = NULL, finished_at = $2, updated_at = $2
     WHERE id = $1 AND status IS NOT DISTINCT FROM 'PENDING'
     RETURNING *`,
  ),
  cancelRunning: statement(
    'cancel_running',
    `UPDATE commands
     SET cancel_requested = 1, updated_at = $2
     WHERE id = $1 AND status IS NOT DISTINCT FROM 'RUNNING' AND cancel_requested = 0
     RETURNING *`,
  ),
  retry: statement(
    'retry',
    `UPDATE commands
     SET status = 'PENDING', attempts = 0, result = NULL, error = NULL, agent_id = NULL, lease_id = NULL,
         cancel_requested = 0, progress = NULL, started_at = NULL, finished_at = NULL,
         report_hash = NULL, available_at = $2, updated_at = $2
     WHERE id = $1 AND status IS NOT DISTINCT FROM 'FAILED'
     RETURNING *`,
  ),
  // SKIP LOCKED: reapers of every replica may run at once; each expires the rows it locked and
  // passes over the others' instead of doing them twice.
  expired: statement(
    'expired',
    `SELECT * FROM commands WHERE status = 'RUNNING' AND lease_expires_at <= $1
     ORDER BY lease_expires_at LIMIT 1000 FOR UPDATE SKIP LOCKED`,
  ),
  expire: statement(
    'expire',
    `UPDATE commands
     SET status = $3, error = $4, available_at = $5, finished_at = $6, lease_id = $7,
         lease_expires_at = NULL, updated_at = $8
     WHERE id = $1 AND status IS NOT DISTINCT FROM 'RUNNING' AND lease_id = $2 AND lease_expires_at <= $8
     RETURNING *`,
  ),
  nextLeaseExpiry: statement('next_lease_expiry', `SELECT min(lease_expires_at) AS at FROM commands WHERE status = 'RUNNING'`),
  nextAvailable: statement(
    'next_available',
    `SELECT min(available_at) AS at FROM commands WHERE status = 'PENDING' AND available_at > $1`,
  ),
  // The events of one transaction and its moves between statuses, written last: the counter row
  // is taken here and held until the commit, so event ids are in commit order (see
  // migrations/postgres/001_commands.sql), and the counts by status live on the same row
  // (005_counts_on_counter.sql): one row updated per commit. $8 holds the moves, in STATUS_ORDER.
  // The notification is sent at commit when there were events and $10 is true (a batch that made
  // no work available holds it for a later commit instead: notifyEach); it carries the last id,
  // and the events themselves when they fit ($9, null otherwise: postgres-notice.ts); listeners
  // read the log for those it does not carry.
  logEvents: statement(
    'log_events',
    `WITH counter AS (
       UPDATE event_counter
       SET last_seq = last_seq + cardinality($1::text[]), pending = pending + ($8::bigint[])[1], running = running + ($8::bigint[])[2],
           completed = completed + ($8::bigint[])[3], failed = failed + ($8::bigint[])[4]
       RETURNING last_seq),
     logged AS (
       INSERT INTO events (seq, command_id, kind, transition, data, created_at)
       SELECT counter.last_seq - cardinality($1::text[]) + e.ord, e.command_id, e.kind, e.transition, e.data, e.created_at
       FROM counter, unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[])
            WITH ORDINALITY AS e(command_id, kind, transition, data, created_at, ord))
     SELECT last_seq,
            CASE WHEN cardinality($1::text[]) > 0 AND $10::boolean
              THEN pg_notify('${CHANNEL}', $6 || ' ' || last_seq || ' ' || $7 || coalesce(' ' || $9::text, '')) END
     FROM counter`,
  ),
  /**
   * The held notifications of batches that made no work available (postgres-group-commit.ts), in
   * the order given: each element of `$1` is a whole payload, as logEvents would have sent it.
   * Inside a transaction they are delivered at its commit, before the ones its logEvents makes.
   */
  notifyEach: statement(
    'notify_each',
    `SELECT count(pg_notify('${CHANNEL}', p.payload)) FROM unnest($1::text[]) AS p(payload)`,
  ),
  eventsSince: statement(
    'events_since',
    'SELECT seq, kind, transition, data, created_at FROM events WHERE seq > $1 ORDER BY seq LIMIT $2',
  ),
  eventsSinceForCommand: statement(
    'events_since_for_command',
    'SELECT seq, kind, transition, data, created_at FROM events WHERE command_id = $1 AND seq > $2 ORDER BY seq LIMIT $3',
  ),
  lastEventFor: statement(
    'last_event_for',
    'SELECT seq, kind, transition, data, created_at FROM events WHERE command_id = $1 ORDER BY seq DESC LIMIT 1',
  ),
  lastCommandSeq: statement('last_command_seq', 'SELECT max(seq) AS seq FROM commands'),
  lastEventSeq: statement('last_event_seq', 'SELECT last_seq AS seq FROM event_counter'),
  eventLogHead: statement('event_log_head', 'SELECT min(seq) AS seq FROM events'),
  // Where the log is, for a prune: its head and end, and the first event young enough to keep by
  // time (through events_created), each one index lookup, so a prune costs what it deletes.
  eventLogBounds: statement(
    'event_log_bounds',
    `SELECT (SELECT min(seq) FROM events) AS head, (SELECT last_seq FROM event_counter) AS last,
            (SELECT seq FROM events WHERE created_at >= $1 ORDER BY created_at, seq LIMIT 1) AS kept`,
  ),
  /**
   * The first young event in seq order, among those below $2. `kept` above is the first young one
   * by created_at, which is not the first by seq: created_at is each replica's clock when the
   * write ran, and a write that ran earlier may commit (and take its id) later, on another replica
   * or in the other batch of this one. A young event below `kept` must stop the prune there. A
   * range of the primary key from the head, no longer than one prune deletes.
   */
  youngBelow: statement(
    'young_below',
    'SELECT min(seq) AS seq FROM events WHERE seq >= $1 AND seq < $2 AND created_at >= $3',
  ),
  // A range of seq from the head. Replicas pruning at once: the one holding the advisory lock for
  // this statement deletes, the others delete nothing instead of waiting on its rows.
  pruneEventsBefore: statement(
    'prune_events_before',
    `DELETE FROM events WHERE seq < $1 AND (SELECT pg_try_advisory_xact_lock($2))`,
  ),
  // Retention: finished commands oldest first, through the partial index commands_finished, so a
  // batch costs what it deletes; their idempotency keys live on the row and go with it. SKIP
  // LOCKED: replicas deleting at once take different rows instead of doing the same ones twice.
  // Deleted by an array of keys, not a join: once the table had statistics, a join's plan
  // merge-joined the whole primary key (23 050 entries read for 100 rows).
  deleteFinished: statement(
    'delete_finished',
    `WITH doomed AS (
       SELECT seq FROM commands WHERE status IN ('COMPLETED', 'FAILED') AND finished_at < $1
       ORDER BY finished_at LIMIT $2 FOR UPDATE SKIP LOCKED)
     DELETE FROM commands c WHERE c.seq = ANY (ARRAY(SELECT seq FROM doomed))
     RETURNING c.status`,
  ),
  oldestFinished: statement(
    'oldest_finished',
    `SELECT min(finished_at) AS at FROM commands WHERE status IN ('COMPLETED', 'FAILED')`,
  ),
  // Kept by each write in its own transaction (logEvents): one row, not a scan.
  countByStatus: statement('count_by_status', 'SELECT pending, running, completed, failed FROM event_counter'),
  ping: statement('ping', 'SELECT 1'),
  probeSpace: statement('probe_space', "INSERT INTO space_probe (filler) VALUES (repeat('x', $1))"),
  clearProbe: statement('clear_probe', 'DELETE FROM space_probe'),
};
