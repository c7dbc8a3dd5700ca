/**
 * Fills a control-server database (already migrated by the server itself, so the schema is the
 * real one) with `n` finished commands and the tail of their event log, and optionally a backlog
 * of `pending` PENDING commands after them, 100 000 rows per transaction (10 million rows take a
 * few minutes, not hours: one prepared statement, no per-row commit).
 * Durability does not matter while seeding, so the journal and syncs are off; WAL is restored
 * before the server opens the file. The secondary indexes are dropped during the insert and
 * recreated from their own stored definitions afterwards (building an index by sorting is far
 * faster than updating it row by row), so the schema the server sees is exactly the migrated one.
 */
import { randomUUID } from 'node:crypto';
import Database from 'better-sqlite3';

const EVENT_TAIL = 100_000;
const ROWS_PER_TRANSACTION = 100_000;

/** `ms` is wall time; `cpuMs` this process's CPU time (the wall time stretches on a shared machine). */
/** Seeded commands held behind concurrency keys at their limit (SPEC §9), per key. */
const HELD_PER_KEY = 100;

/**
 * `heldShare` (0…1) of the `n` commands are seeded PENDING behind concurrency keys at their limit
 * (`HELD_PER_KEY` per key, so 10 000 keys at 1 M) instead of finished: a claim must pass them
 * without reading them.
 */
export function seedCommands(dbPath: string, n: number, pending = 0, heldShare = 0): { ids: string[]; ms: number; cpuMs: number } {
  const started = performance.now();
  const cpuStarted = process.cpuUsage();
  const db = new Database(dbPath);
  db.pragma('journal_mode = OFF');
  db.pragma('synchronous = OFF');
  db.pragma('cache_size = -1000000');
  const insert = db.prepare(`INSERT INTO commands
    (id, type, payload, status, result, error, agent_id, attempts, max_attempts, timeout_ms, available_at,
     cancel_requested, created_at, updated_at, started_at, finished_at, report_hash)
    VALUES (?, ?, ?, ?, ?, ?, ?, 1, 3, ?, ?, 0, ?, ?, ?, ?, ?)`);
  const insertPending = db.prepare(`INSERT INTO commands
    (id, type, payload, status, max_attempts, timeout_ms, available_at, created_at, updated_at)
    VALUES (?, 'DELAY', '{"ms":0}', 'PENDING', 3, 30000, ?, ?, ?)`);
  // Held (ready = 2, migration 003): their key's one slot is taken, so none of them may start.
  const insertHeld = db.prepare(`INSERT INTO commands
    (id, type, payload, status, max_attempts, timeout_ms, available_at, created_at, updated_at, concurrency_key, concurrency_limit, ready)
    VALUES (?, 'DELAY', '{"ms":0}', 'PENDING', 3, 30000, ?, ?, ?, ?, 1, 2)`);
  const insertKey = db.prepare('INSERT OR IGNORE INTO concurrency_keys (key, lim, active) VALUES (?, 1, 1)');
  const held = Math.floor(n * heldShare);
  const insertEvent = db.prepare(`INSERT INTO events (command_id, kind, transition, data, created_at)
    VALUES (?, 'status', 'report', ?, ?)`);
  const base = Date.now() - 3_600_000 - n * 10;
  const iso = (ms: number) => new Date(ms).toISOString();
  const sampleEvery = Math.max(1, Math.floor(n / 1000));
  const ids: string[] = [];
  const indexes = db
    .prepare<[], { name: string; sql: string }>(
      "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name IN ('commands', 'events') AND sql IS NOT NULL",
    )
    .all();
  db.transaction(() => {
    for (const { name } of indexes) db.exec(`DROP INDEX "${name}"`);
  })();
  const insertRows = db.transaction((from: number, to: number) => {
    for (let i = from; i < to; i++) {
      const id = randomUUID();
      if (i < held) {
        const key = `held-key-${Math.floor(i / HELD_PER_KEY)}`;
        insertHeld.run(id, base + i * 10, base + i * 10, base + i * 10, key);
        if (i % HELD_PER_KEY === 0) insertKey.run(key);
        if (i % sampleEvery === 0) ids.push(id);
        continue;
      }
      const http = i % 10 === 9;
      const failed = i % 20 === 19;
      const created = base + i * 10;
      const started = created + 2;
      const finished = started + 3;
      const type = http ? 'HTTP_GET_JSON' : 'DELAY';
      const payload = http ? '{"url":"http://example.test/data.json"}' : '{"ms":3}';
      const result = failed ? '{"status":503,"ok":false,"body":null,"tookMs":3}' : '{"ok":true,"tookMs":3}';
      const status = failed ? 'FAILED' : 'COMPLETED';
      const error = failed ? 'status 503' : null;
      const agentId = `agent-${i % 8}`;
      const timeoutMs = http ? 30_000 : 30_003;
      insert.run(id, type, payload, status, result, error, agentId, timeoutMs, created, created, finished, started, finished, 'seeded');
      if (i % sampleEvery === 0) ids.push(id);
      if (i >= n - EVENT_TAIL) {
        // The command after its report, as the server logs it (built as text: this runs 100 000 times).
        const data =
          `{"id":"${id}","type":"${type}","payload":${payload},"status":"${status}","result":${result},` +
          `"error":${error === null ? 'null' : `"${error}"`},"agentId":"${agentId}","attempts":1,"maxAttempts":3,` +
          `"timeoutMs":${timeoutMs},"leaseExpiresAt":null,"availableAt":"${iso(created)}","cancelRequested":false,` +
          `"progress":null,"createdAt":"${iso(created)}","updatedAt":"${iso(finished)}","startedAt":"${iso(started)}",` +
          `"finishedAt":"${iso(finished)}"}`;
        insertEvent.run(id, data, finished);
      }
    }
  });
  const reportEvery = n >= 2_000_000 ? 1_000_000 : Number.POSITIVE_INFINITY;
  for (let from = 0; from < n; from += ROWS_PER_TRANSACTION) {
    const to = Math.min(n, from + ROWS_PER_TRANSACTION);
    insertRows(from, to);
    if (to % reportEvery === 0) {
      console.log(`  seeded ${to.toLocaleString('en-US')} of ${n.toLocaleString('en-US')} (${((performance.now() - started) / 1000).toFixed(0)} s)`);
    }
  }
  db.transaction(() => {
    const now = Date.now();
    for (let i = 0; i < pending; i++) insertPending.run(randomUUID(), now - pending + i, now - pending + i, now - pending + i);
  })();
  // Each index built by sorting all rows at once, far faster than updating it row by row.
  const indexStarted = performance.now();
  for (const { sql } of indexes) db.exec(sql);
  if (n >= 2_000_000) console.log(`  indexes rebuilt in ${((performance.now() - indexStarted) / 1000).toFixed(0)} s`);
  db.pragma('journal_mode = WAL');
  db.close();
  const cpu = process.cpuUsage(cpuStarted);
  return { ids, ms: performance.now() - started, cpuMs: (cpu.user + cpu.system) / 1000 };
}
