import type { ClaimedCommand, Command, CommandStatus, CommandType } from '@agent-executor/common';

/** A row of the `commands` table, as both stores read it (times in epoch ms, JSON as text). */
export interface CommandRow {
  seq: number;
  id: string;
  type: CommandType;
  payload: string;
  status: CommandStatus;
  result: string | null;
  error: string | null;
  agent_id: string | null;
  lease_id: string | null;
  lease_expires_at: number | null;
  attempts: number;
  max_attempts: number;
  timeout_ms: number;
  available_at: number;
  cancel_requested: 0 | 1;
  progress: string | null;
  created_at: number;
  updated_at: number;
  started_at: number | null;
  finished_at: number | null;
  idempotency_key: string | null;
  request_hash: string | null;
  report_hash: string | null;
  queue: string;
  priority: number;
  run_at: number | null;
  concurrency_key: string | null;
  concurrency_limit: number | null;
  /** For a PENDING row: 0 scheduled, 1 ready, 2 held (migration 003). */
  ready: 0 | 1 | 2;
}

let lastMs = Number.NaN;
let lastIso = '';
/**
 * Epoch ms → ISO 8601. Remembers the last conversion: a row's times are often the same moment
 * (created, updated and available at submit; started and updated at a claim), and so are the rows
 * of one batch.
 */
const iso = (ms: number): string => {
  if (ms !== lastMs) {
    lastMs = ms;
    lastIso = new Date(ms).toISOString();
  }
  return lastIso;
};
const isoOrNull = (ms: number | null): string | null => (ms === null ? null : iso(ms));

export function rowToCommand(row: CommandRow): Command {
  return {
    id: row.id,
    type: row.type,
    payload: JSON.parse(row.payload) as Record<string, unknown>,
    status: row.status,
    result: row.result === null ? null : (JSON.parse(row.result) as unknown),
    error: row.error,
    agentId: row.agent_id,
    attempts: row.attempts,
    maxAttempts: row.max_attempts,
    timeoutMs: row.timeout_ms,
    leaseExpiresAt: isoOrNull(row.lease_expires_at),
    availableAt: iso(row.available_at),
    cancelRequested: row.cancel_requested === 1,
    progress: row.progress === null ? null : (JSON.parse(row.progress) as Command['progress']),
    createdAt: iso(row.created_at),
    updatedAt: iso(row.updated_at),
    startedAt: isoOrNull(row.started_at),
    finishedAt: isoOrNull(row.finished_at),
    queue: row.queue,
    priority: row.priority,
    runAt: isoOrNull(row.run_at),
    concurrencyKey: row.concurrency_key,
    concurrencyLimit: row.concurrency_limit,
  };
}

/** The command a claim hands out: `command` is `rowToCommand(row)`, built once by the caller. */
export function withLease(command: Command, row: CommandRow): ClaimedCommand {
  if (row.lease_id === null || command.leaseExpiresAt === null) {
    throw new Error(`command ${row.id} was claimed without a lease`);
  }
  return { ...command, leaseId: row.lease_id, leaseExpiresAt: command.leaseExpiresAt };
}
