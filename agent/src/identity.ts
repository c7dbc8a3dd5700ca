import { randomUUID } from 'node:crypto';
import type Database from 'better-sqlite3';

/**
 * The agent's id: `AGENT_ID` when set, else a UUID generated on first start and kept in the
 * agent's database. A restarted agent must be the same agent, or the server would refuse the
 * reports of the work it finished before the restart.
 */
export function agentIdentity(db: Database.Database, configured: string | undefined): string {
  if (configured !== undefined) return configured;
  db.prepare(`INSERT OR IGNORE INTO meta (key, value) VALUES ('agent_id', ?)`).run(randomUUID());
  const row = db.prepare<[], { value: string }>(`SELECT value FROM meta WHERE key = 'agent_id'`).get();
  if (!row) throw new Error('agent id missing from the database right after it was written');
  return row.value;
}
