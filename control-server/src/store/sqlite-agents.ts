import type Database from 'better-sqlite3';
import type { AgentRecord, QueueCounts } from './store.js';

interface AgentRow {
  id: string;
  hostname: string | null;
  version: string | null;
  queues: string;
  types: string;
  concurrency: number | null;
  last_seen_at: number;
  draining: 0 | 1;
}

/** The `agents` table and the fleet's counts (GET /agents, GET /queues, drain). */
export class SqliteAgents {
  private readonly upsert: Database.Statement;
  private readonly seenSince: Database.Statement<[number], AgentRow>;
  private readonly drain: Database.Statement<[string]>;
  private readonly running: Database.Statement<[], { agent_id: string; n: number }>;
  private readonly queues: Database.Statement<[], { queue: string; status: 'PENDING' | 'RUNNING'; n: number; oldest: number }>;

  constructor(db: Database.Database) {
    // A drain is never undone by an agent's own update: only the operator sets it.
    this.upsert = db.prepare(`INSERT INTO agents (id, hostname, version, queues, types, concurrency, last_seen_at)
      VALUES (@id, @hostname, @version, @queues, @types, @concurrency, @lastSeenAt)
      ON CONFLICT (id) DO UPDATE SET hostname = excluded.hostname, version = excluded.version,
        queues = excluded.queues, types = excluded.types, concurrency = excluded.concurrency,
        last_seen_at = max(last_seen_at, excluded.last_seen_at)`);
    this.seenSince = db.prepare<[number], AgentRow>('SELECT * FROM agents INDEXED BY agents_seen WHERE last_seen_at >= ? ORDER BY id');
    this.drain = db.prepare<[string]>('UPDATE agents SET draining = 1 WHERE id = ?');
    // Through the partial index of RUNNING commands: costs what runs, not the table.
    this.running = db.prepare<[], { agent_id: string; n: number }>(
      `SELECT agent_id, count(*) AS n FROM commands INDEXED BY commands_lease WHERE status = 'RUNNING' GROUP BY agent_id`,
    );
    this.queues = db.prepare(
      `SELECT queue, status, count(*) AS n, min(created_at) AS oldest FROM commands INDEXED BY commands_active_queue
       WHERE status IN ('PENDING', 'RUNNING') GROUP BY status, queue`,
    );
  }

  save(records: readonly AgentRecord[]): void {
    for (const r of records) {
      this.upsert.run({
        id: r.id,
        hostname: r.hostname,
        version: r.version,
        queues: JSON.stringify(r.queues),
        types: JSON.stringify(r.types),
        concurrency: r.concurrency,
        lastSeenAt: r.lastSeenAt,
      });
    }
  }

  load(seenSince: number): AgentRecord[] {
    return this.seenSince.all(seenSince).map((row) => ({
      id: row.id,
      hostname: row.hostname,
      version: row.version,
      queues: JSON.parse(row.queues) as string[],
      types: JSON.parse(row.types) as string[],
      concurrency: row.concurrency,
      lastSeenAt: row.last_seen_at,
      draining: row.draining === 1,
    }));
  }

  setDraining(id: string): boolean {
    return this.drain.run(id).changes === 1;
  }

  runningByAgent(): Map<string, number> {
    return new Map(this.running.all().map((row) => [row.agent_id, row.n]));
  }

  queueCounts(): QueueCounts[] {
    const byQueue = new Map<string, QueueCounts>();
    for (const row of this.queues.all()) {
      const counts = byQueue.get(row.queue) ?? { queue: row.queue, pending: 0, running: 0, oldestPendingAt: null };
      if (row.status === 'PENDING') {
        counts.pending = row.n;
        counts.oldestPendingAt = row.oldest;
      } else counts.running = row.n;
      byQueue.set(row.queue, counts);
    }
    return [...byQueue.values()];
  }
}
