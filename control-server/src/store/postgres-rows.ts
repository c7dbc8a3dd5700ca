import pg from 'pg';
import type { CommandRow } from './command-rows.js';

const INT8_OID = 20;

/**
 * node-postgres reads bigint as a string (it may exceed 2^53). Every bigint here is an epoch-ms
 * time or a seq, far below 2^53, so they are read as numbers and the rows are exactly the
 * CommandRow and EventRow the SQLite store reads: one `rowToCommand` for both stores.
 */
export const pgTypes: pg.CustomTypesConfig = {
  // Asked for every column of every result (node-postgres reads the row description each time):
  // one parser for all bigint columns, not a new function each time.
  getTypeParser: ((oid: number, format?: string) =>
    oid === INT8_OID ? parseInt8 : pg.types.getTypeParser(oid, format as 'text')) as pg.CustomTypesConfig['getTypeParser'],
};

function parseInt8(value: string): number {
  return Number(value);
}

/** The columns of `commands` in the order the insert statement binds them. */
export function insertValues(row: CommandRow): unknown[] {
  return [
    row.id,
    row.type,
    row.payload,
    row.status,
    row.attempts,
    row.max_attempts,
    row.timeout_ms,
    row.available_at,
    row.created_at,
    row.idempotency_key,
    row.request_hash,
    row.queue,
    row.priority,
    row.run_at,
    row.concurrency_key,
    row.concurrency_limit,
  ];
}

/** The values of a report for sql.reportMany (one row of its columns), from the row report() built. */
export function reportValues(row: CommandRow, agentId: string, leaseId: string | null): unknown[] {
  return [
    row.id,
    agentId,
    leaseId,
    row.status,
    row.result,
    row.error,
    row.available_at,
    row.finished_at,
    row.cancel_requested,
    row.report_hash,
    row.updated_at,
  ];
}
