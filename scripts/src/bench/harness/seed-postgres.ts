/**
 * seed.ts for the PostgreSQL store: fills a database the server itself migrated with the same
 * shapes — `n` finished commands (COMPLETED, every 20th FAILED; every 10th HTTP_GET_JSON) and the
 * event log's tail, a share of them PENDING behind concurrency keys at their limit, and a backlog
 * of `pending` PENDING commands after them — with set-based statements (`INSERT … SELECT … FROM
 * generate_series`), 1 million rows per statement, so 1 M rows take seconds, not a round trip each.
 * As in seed.ts the secondary indexes are dropped first and rebuilt from their own stored
 * definitions afterwards (a build sorts once; an insert updates every index row by row); the
 * indexes that back constraints (seq, id, idempotency_key) stay. Then the counts by status are recounted
 * from the rows as migration 005 counts them, and VACUUM (ANALYZE) gives the planner its statistics
 * and sets the visibility map, as autovacuum would have on a table that grew over months (and it
 * keeps autovacuum from starting on the fresh rows while the scenario times requests).
 */
import pg from 'pg';
import { processTreeCpuSeconds } from '../peers/cpu.js';

const EVENT_TAIL = 100_000;
const ROWS_PER_STATEMENT = 1_000_000;
/** Seeded commands held behind one concurrency key at its limit (as seed.ts). */
const HELD_PER_KEY = 100;
/** A key's one RUNNING command holds its lease this long: the reaper never expires it during a run. */
const HOLDER_LEASE_MS = 10 * 365 * 24 * 3_600_000;

/** `ms` is wall time; `cpuMs` PostgreSQL's CPU time (postmaster and backends), where the seeding runs. */
export interface PgSeeded {
  ids: string[];
  ms: number;
  cpuMs: number;
}

/** Milliseconds since the epoch (a bigint column) as the ISO text the server writes. */
const iso = (column: string) => `to_char(to_timestamp(${column} / 1000.0) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;

/**
 * On PostgreSQL the store keeps no held state (`ready` stays 1): a key is at its limit when its
 * RUNNING count equals the limit of its newest command. So each key gets one RUNNING command of
 * limit 1 (with a lease far in the future, which the reaper leaves alone), seeded before the
 * key's `HELD_PER_KEY` PENDING commands of limit 1.
 */
export async function seedPostgresCommands(url: string, postgresPid: number, n: number, pending = 0, heldShare = 0): Promise<PgSeeded> {
  const started = performance.now();
  const cpuStarted = processTreeCpuSeconds(postgresPid);
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    // Durability does not matter while seeding; a lost seed is simply run again.
    await client.query("SET synchronous_commit = off; SET maintenance_work_mem = '256MB'");
    const { rows: indexes } = await client.query<{ name: string; definition: string }>(
      `SELECT c.relname AS name, pg_get_indexdef(x.indexrelid) AS definition
       FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid
       WHERE x.indrelid IN ('commands'::regclass, 'events'::regclass)
         AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = x.indexrelid)`,
    );
    for (const { name } of indexes) await client.query(`DROP INDEX ${client.escapeIdentifier(name)}`);

    const now = Date.now();
    const base = now - 3_600_000 - n * 10;
    const held = Math.floor(n * heldShare);
    const keys = Math.ceil(held / HELD_PER_KEY);
    // One statement each; generate_series yields i in order, so seq (an identity) follows i.
    if (keys > 0) {
      await client.query(
        `INSERT INTO commands (id, type, payload, status, agent_id, lease_id, lease_expires_at, attempts, max_attempts, timeout_ms,
                               available_at, created_at, updated_at, started_at, concurrency_key, concurrency_limit)
         SELECT gen_random_uuid()::text, 'DELAY', '{"ms":0}', 'RUNNING', 'held-key-holder', replace(gen_random_uuid()::text, '-', ''),
                $3::bigint, 1, 3, 30000, $1::bigint + k * $2::bigint * 10, $1::bigint + k * $2::bigint * 10,
                $1::bigint + k * $2::bigint * 10, $1::bigint + k * $2::bigint * 10, 'held-key-' || k, 1
         FROM generate_series(0, $4::integer - 1) AS k`,
        [base - 1, HELD_PER_KEY, now + HOLDER_LEASE_MS, keys],
      );
    }
    for (let from = 0; from < held; from += ROWS_PER_STATEMENT) {
      await client.query(
        `INSERT INTO commands (id, type, payload, status, max_attempts, timeout_ms, available_at, created_at, updated_at,
                               concurrency_key, concurrency_limit)
         SELECT gen_random_uuid()::text, 'DELAY', '{"ms":0}', 'PENDING', 3, 30000, $1::bigint + i * 10, $1::bigint + i * 10,
                $1::bigint + i * 10, 'held-key-' || (i / $2::integer), 1
         FROM generate_series($3::integer, $4::integer - 1) AS i`,
        [base, HELD_PER_KEY, from, Math.min(held, from + ROWS_PER_STATEMENT)],
      );
    }
    const reportEvery = n >= 2_000_000;
    for (let from = held; from < n; from += ROWS_PER_STATEMENT) {
      const to = Math.min(n, from + ROWS_PER_STATEMENT);
      // The values of seed.ts: created at base + 10 i, started 2 ms later, finished 3 ms after that.
      await client.query(
        `INSERT INTO commands (id, type, payload, status, result, error, agent_id, attempts, max_attempts, timeout_ms,
                               available_at, cancel_requested, created_at, updated_at, started_at, finished_at, report_hash)
         SELECT gen_random_uuid()::text,
                CASE WHEN i % 10 = 9 THEN 'HTTP_GET_JSON' ELSE 'DELAY' END,
                CASE WHEN i % 10 = 9 THEN '{"url":"http://example.test/data.json"}' ELSE '{"ms":3}' END,
                CASE WHEN i % 20 = 19 THEN 'FAILED' ELSE 'COMPLETED' END,
                CASE WHEN i % 20 = 19 THEN '{"status":503,"ok":false,"body":null,"tookMs":3}' ELSE '{"ok":true,"tookMs":3}' END,
                CASE WHEN i % 20 = 19 THEN 'status 503' END,
                'agent-' || (i % 8), 1, 3,
                CASE WHEN i % 10 = 9 THEN 30000 ELSE 30003 END,
                $1::bigint + i * 10, 0, $1::bigint + i * 10, $1::bigint + i * 10 + 5, $1::bigint + i * 10 + 2,
                $1::bigint + i * 10 + 5, 'seeded'
         FROM generate_series($2::integer, $3::integer - 1) AS i`,
        [base, from, to],
      );
      if (reportEvery && to % 1_000_000 === 0) {
        console.log(`  seeded ${to.toLocaleString('en-US')} of ${n.toLocaleString('en-US')} (${((performance.now() - started) / 1000).toFixed(0)} s)`);
      }
    }
    const { rows: bounds } = await client.query<{ last: string | null }>('SELECT max(seq) AS last FROM commands');
    const lastSeeded = Number(bounds[0]?.last ?? 0);
    if (pending > 0) {
      await client.query(
        `INSERT INTO commands (id, type, payload, status, max_attempts, timeout_ms, available_at, created_at, updated_at)
         SELECT gen_random_uuid()::text, 'DELAY', '{"ms":0}', 'PENDING', 3, 30000, $1::bigint + j, $1::bigint + j, $1::bigint + j
         FROM generate_series(0, $2::integer - 1) AS j`,
        [now - pending, pending],
      );
    }
    // The newest finished commands' report events, as the server logs them; ids after any logged
    // so far, and event_counter (the next id's source) moved past them.
    await client.query(
      `WITH tail AS (
         SELECT * FROM commands WHERE status IN ('COMPLETED', 'FAILED') ORDER BY seq DESC LIMIT $1),
       counter AS (SELECT last_seq FROM event_counter)
       INSERT INTO events (seq, command_id, kind, transition, data, created_at)
       SELECT counter.last_seq + row_number() OVER (ORDER BY t.seq), t.id, 'status', 'report',
              '{"id":"' || t.id || '","type":"' || t.type || '","payload":' || t.payload || ',"status":"' || t.status ||
              '","result":' || t.result || ',"error":' || coalesce('"' || t.error || '"', 'null') || ',"agentId":"' || t.agent_id ||
              '","attempts":1,"maxAttempts":3,"timeoutMs":' || t.timeout_ms || ',"leaseExpiresAt":null,"availableAt":"' ||
              ${iso('t.available_at')} || '","cancelRequested":false,"progress":null,"createdAt":"' || ${iso('t.created_at')} ||
              '","updatedAt":"' || ${iso('t.updated_at')} || '","startedAt":"' || ${iso('t.started_at')} ||
              '","finishedAt":"' || ${iso('t.finished_at')} || '"}',
              t.finished_at
       FROM tail t, counter`,
      [EVENT_TAIL],
    );
    await client.query('UPDATE event_counter SET last_seq = greatest(last_seq, (SELECT coalesce(max(seq), 0) FROM events))');
    const indexStarted = performance.now();
    for (const { definition } of indexes) await client.query(definition);
    if (n >= 2_000_000) console.log(`  indexes rebuilt in ${((performance.now() - indexStarted) / 1000).toFixed(0)} s`);
    // As migration 005 counts them, now from the seeded rows.
    await client.query(`UPDATE event_counter SET
      pending = (SELECT count(*) FROM commands WHERE status = 'PENDING'), running = (SELECT count(*) FROM commands WHERE status = 'RUNNING'),
      completed = (SELECT count(*) FROM commands WHERE status = 'COMPLETED'), failed = (SELECT count(*) FROM commands WHERE status = 'FAILED')`);
    await client.query('VACUUM (ANALYZE) commands, events');
    const sampleEvery = Math.max(1, Math.floor(n / 1000));
    const { rows: sampled } = await client.query<{ id: string }>(
      `SELECT id FROM commands WHERE seq <= $1 AND seq % $2 = 0 AND status <> 'RUNNING' ORDER BY seq`,
      [lastSeeded, sampleEvery],
    );
    const cpuMs = (processTreeCpuSeconds(postgresPid) - cpuStarted) * 1000;
    return { ids: sampled.map((r) => r.id), ms: performance.now() - started, cpuMs };
  } finally {
    await client.end();
  }
}

/** The database's size on disk (tables, indexes, TOAST), in MiB. */
export async function databaseMiB(url: string): Promise<number> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<{ bytes: string }>('SELECT pg_database_size(current_database()) AS bytes');
    return Number(rows[0]?.bytes ?? 0) / 2 ** 20;
  } finally {
    await client.end();
  }
}
