/**
 * `JSON.stringify(rowToCommand(row))` (command-rows.ts), written in SQL: the text of a command
 * as an event carries it, built by PostgreSQL inside the statement that changed the row. The claim
 * uses it to log its events in the same statement that leases (postgres-statements.ts), so that
 * BEGIN, the claim and COMMIT go out together: one round trip where building the events here
 * first took a second one.
 *
 * The same keys in the same order, the same value formats (ISO 8601 in UTC with milliseconds,
 * JSON columns embedded as stored, `cancelRequested` a boolean): the text is the one
 * rowToCommand and JSON.stringify give, byte for byte, as claim-events-postgres.test.ts
 * checks for every field, null or not. A field added to rowToCommand must be added here too.
 */

/** Epoch milliseconds (bigint) as `YYYY-MM-DDTHH:MM:SS.sssZ`, as Date.prototype.toISOString. */
const iso = (column: string) => `to_char(TIMESTAMP 'epoch' + ${column} * INTERVAL '1 millisecond', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;

/** An SQL expression: the JSON text of the command in the row `alias` (of `commands`). */
export function commandJsonSql(alias: string): string {
  const c = (column: string) => `${alias}.${column}`;
  const fields: Array<[string, string]> = [
    ['id', c('id')],
    ['type', c('type')],
    ['payload', `${c('payload')}::json`],
    ['status', c('status')],
    ['result', `${c('result')}::json`],
    ['error', c('error')],
    ['agentId', c('agent_id')],
    ['attempts', c('attempts')],
    ['maxAttempts', c('max_attempts')],
    ['timeoutMs', c('timeout_ms')],
    ['leaseExpiresAt', iso(c('lease_expires_at'))],
    ['availableAt', iso(c('available_at'))],
    ['cancelRequested', `${c('cancel_requested')} = 1`],
    ['progress', `${c('progress')}::json`],
    ['createdAt', iso(c('created_at'))],
    ['updatedAt', iso(c('updated_at'))],
    ['startedAt', iso(c('started_at'))],
    ['finishedAt', iso(c('finished_at'))],
    ['queue', c('queue')],
    ['priority', c('priority')],
    ['runAt', iso(c('run_at'))],
    ['concurrencyKey', c('concurrency_key')],
    ['concurrencyLimit', c('concurrency_limit')],
  ];
  // row_to_json writes no spaces and keeps the select list's order, as JSON.stringify does.
  return `(SELECT row_to_json(j)::text FROM (SELECT ${fields.map(([key, value]) => `${value} AS "${key}"`).join(', ')}) j)`;
}

/**
 * An SQL expression: the length of `text` in UTF-16 code units, as JavaScript counts a string
 * (what the notification's header gives for each event: postgres-notice.ts). A character
 * outside the Basic Multilingual Plane counts twice; ASCII text is not searched for one.
 */
export function utf16LengthSql(text: string): string {
  return `CASE WHEN octet_length(${text}) = char_length(${text}) THEN char_length(${text})
    ELSE char_length(${text}) + char_length(regexp_replace(${text}, '[\\u0001-\\uFFFF]', '', 'g')) END`;
}
