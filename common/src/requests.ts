import { z } from 'zod';
import {
  ClaimedCommand,
  Command,
  CommandStatus,
  CommandType,
  DelayPayload,
  HttpGetJsonPayload,
  MAX_CONCURRENCY_KEY_LENGTH,
  MAX_CONCURRENCY_LIMIT,
  MAX_DELAY_MS,
  MAX_PRIORITY,
  MAX_RUN_AT_AHEAD_MS,
  MIN_PRIORITY,
  QueueName,
  Progress,
  SubmittedCommand,
} from './command.js';

export const MAX_RESULT_BYTES = 256 * 1024;
export const MAX_BODY_BYTES = 1024 * 1024;
export const MAX_IDEMPOTENCY_KEY_LENGTH = 255;
export const MAX_LONG_POLL_WAIT_S = 60;

const maxAttempts = z.int().min(1).max(20).optional();
const timeoutMs = z.int().min(1).max(MAX_DELAY_MS).optional();

/** Routing and flow control (SPEC §9): the same optional fields on every command type. */
const routing = {
  queue: QueueName.optional(),
  priority: z.int().min(MIN_PRIORITY).max(MAX_PRIORITY).optional(),
  runAt: z.iso.datetime({ offset: true }).optional(),
  concurrencyKey: z.string().min(1).max(MAX_CONCURRENCY_KEY_LENGTH).optional(),
  concurrencyLimit: z.int().min(1).max(MAX_CONCURRENCY_LIMIT).optional(),
};

export const SubmitBody = z
  .discriminatedUnion('type', [
    z.strictObject({ type: z.literal('DELAY'), payload: DelayPayload, maxAttempts, timeoutMs, ...routing }),
    z.strictObject({
      type: z.literal('HTTP_GET_JSON'),
      payload: HttpGetJsonPayload,
      maxAttempts,
      timeoutMs,
      ...routing,
    }),
  ])
  .superRefine((body, ctx) => {
    // Both or neither: a key without a limit would mean nothing, a limit without a key neither.
    if ((body.concurrencyKey === undefined) !== (body.concurrencyLimit === undefined)) {
      ctx.addIssue({
        code: 'custom',
        path: [body.concurrencyKey === undefined ? 'concurrencyKey' : 'concurrencyLimit'],
        message: 'concurrencyKey and concurrencyLimit go together: give both or neither',
      });
    }
    if (body.runAt !== undefined && Date.parse(body.runAt) > Date.now() + MAX_RUN_AT_AHEAD_MS) {
      ctx.addIssue({ code: 'custom', path: ['runAt'], message: 'must be at most one year ahead' });
    }
    if (body.type === 'DELAY' && body.timeoutMs !== undefined && body.payload.ms >= body.timeoutMs) {
      ctx.addIssue({
        code: 'custom',
        path: ['timeoutMs'],
        message: 'must be greater than payload.ms, or the delay could never finish in time',
      });
    }
  }).meta({ id: 'SubmitBody' });
export type SubmitBody = z.infer<typeof SubmitBody>;

/** Agent ids appear in URLs, logs and metrics labels: keep them short and plain. */
export const AgentId = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[A-Za-z0-9._:@-]+$/, 'may hold only letters, digits and . _ : @ -');

export const ResultBody = z.strictObject({
  agentId: AgentId,
  leaseId: z.string().min(1).max(128).optional(),
  status: z.enum(['COMPLETED', 'FAILED']).optional(),
  result: z.unknown().optional(),
  error: z.string().max(4096).nullable().optional(),
  retryable: z.boolean().optional(),
}).meta({ id: 'ResultBody' });
export type ResultBody = z.infer<typeof ResultBody>;

export const ResultResponse = z.object({ success: z.literal(true), command: Command }).meta({ id: 'ResultResponse' });

export const HeartbeatBody = z.strictObject({
  agentId: AgentId,
  leaseId: z.string().min(1).max(128),
  progress: Progress.optional(),
}).meta({ id: 'HeartbeatBody' });
export type HeartbeatBody = z.infer<typeof HeartbeatBody>;

export const HeartbeatResponse = z.object({
  leaseExpiresAt: z.iso.datetime(),
  cancelRequested: z.boolean(),
}).meta({ id: 'HeartbeatResponse' });
export type HeartbeatResponse = z.infer<typeof HeartbeatResponse>;

/** A command type as an agent names it: a newer agent may advertise types this server does not know. */
export const TYPE_NAME_PATTERN = /^[A-Z][A-Z0-9_]{0,63}$/;
/** 16 queues × 16 types: the claim merges one index range per pair (SQLite allows 500 per statement). */
export const MAX_ADVERTISED = 16;

/** `a,b,c` → a list of unique items, each checked by `item`. */
const commaList = (item: z.ZodString, what: string) =>
  z
    .string()
    .max(2048)
    .transform((text) => [...new Set(text.split(',').map((part) => part.trim()).filter(Boolean))])
    .pipe(z.array(item).min(1, `at least one ${what}`).max(MAX_ADVERTISED));

export const NextQuery = z.strictObject({
  agentId: AgentId,
  wait: z.coerce.number().int().min(0).max(MAX_LONG_POLL_WAIT_S).optional(),
  /** The queues this agent serves; `default` when absent. */
  queues: commaList(QueueName, 'queue').optional(),
  /** The command types this agent can run; every type this server knows when absent. */
  types: commaList(z.string().regex(TYPE_NAME_PATTERN, 'a command type: A-Z 0-9 _'), 'type').optional(),
  /** Shown in GET /agents. */
  hostname: z.string().max(255).optional(),
  version: z.string().max(64).optional(),
  concurrency: z.coerce.number().int().min(1).max(10_000).optional(),
});
export type NextQuery = z.infer<typeof NextQuery>;

export const ListQuery = z.strictObject({
  status: CommandStatus.optional(),
  type: CommandType.optional(),
  agentId: AgentId.optional(),
  queue: QueueName.optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  cursor: z.string().max(64).optional(),
});
export type ListQuery = z.infer<typeof ListQuery>;

export const CommandIdParams = z.strictObject({ id: z.string().min(1).max(64) });

export const ErrorResponse = z.object({
  statusCode: z.int(),
  error: z.string(),
  message: z.string(),
  issues: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
}).meta({ id: 'ErrorResponse' });
export type ErrorResponse = z.infer<typeof ErrorResponse>;

export const HealthResponse = z.object({ status: z.literal('ok') }).meta({ id: 'HealthResponse' });

// Batched forms, for throughput: one HTTP request (and one commit) for many commands.
export const MAX_BATCH_SUBMIT = 1000;
export const MAX_BATCH_CLAIM = 100;
export const MAX_BATCH_REPORT = 1000;

export const BatchSubmitBody = z.strictObject({
  commands: z.array(SubmitBody).min(1).max(MAX_BATCH_SUBMIT),
}).meta({ id: 'BatchSubmitBody' });
export type BatchSubmitBody = z.infer<typeof BatchSubmitBody>;

export const BatchSubmitResponse = z.object({ commands: z.array(SubmittedCommand) }).meta({ id: 'BatchSubmitResponse' });

export const NextBatchQuery = NextQuery.extend({
  max: z.coerce.number().int().min(1).max(MAX_BATCH_CLAIM).default(10),
});
export type NextBatchQuery = z.infer<typeof NextBatchQuery>;

export const BatchClaimResponse = z.object({ commands: z.array(ClaimedCommand) }).meta({ id: 'BatchClaimResponse' });
export type BatchClaimResponse = z.infer<typeof BatchClaimResponse>;

export const BatchReport = ResultBody.extend({ id: z.string().min(1).max(64) }).meta({ id: 'BatchReport' });
export type BatchReport = z.infer<typeof BatchReport>;

/**
 * Report-and-claim: a batched report may ask, in the same exchange, for up to `max` more commands
 * (the agent's free slots). They are leased exactly as `GET /commands/next-batch` would lease them
 * (same routing, same lease fields), but never waited for: no work answers `commands: []`.
 * The same details as a poll's query, as JSON.
 */
export const ReportClaim = z.strictObject({
  agentId: AgentId,
  max: z.int().min(1).max(MAX_BATCH_CLAIM),
  /** The queues this agent serves; `default` when absent. */
  queues: z.array(QueueName).min(1).max(MAX_ADVERTISED).optional(),
  /** The command types this agent can run; every type this server knows when absent. */
  types: z.array(z.string().regex(TYPE_NAME_PATTERN, 'a command type: A-Z 0-9 _')).min(1).max(MAX_ADVERTISED).optional(),
  /** Shown in GET /agents. */
  hostname: z.string().max(255).optional(),
  version: z.string().max(64).optional(),
  concurrency: z.int().min(1).max(10_000).optional(),
}).meta({ id: 'ReportClaim' });
export type ReportClaim = z.infer<typeof ReportClaim>;

export const BatchResultBody = z.strictObject({
  reports: z.array(BatchReport).min(1).max(MAX_BATCH_REPORT),
  /** Optional: lease up to `claim.max` more commands in the same answer (`commands`). */
  claim: ReportClaim.optional(),
}).meta({ id: 'BatchResultBody' });
export type BatchResultBody = z.infer<typeof BatchResultBody>;

/**
 * `PUT /commands/results?brief=true`: each accepted report is answered with the command's `status`
 * instead of the whole command (the agent reads nothing else of it), so the server serialises
 * and the agent parses a fraction of the bytes. Absent or `false`: the whole command, as before.
 * A query, not a body field: a server older than it ignores it and answers in full, which the
 * agent reads as well.
 */
export const BatchResultQuery = z.strictObject({
  brief: z
    .enum(['true', 'false'])
    .optional()
    .transform((value) => value === 'true'),
});
export type BatchResultQuery = z.infer<typeof BatchResultQuery>;

/** One answer per report, in order: what the single-report route would have answered. */
export const BatchResultResponse = z.object({
  results: z.array(
    z.object({
      id: z.string(),
      statusCode: z.int(),
      /** The whole command after the report (200), unless the request asked for `brief`. */
      command: Command.optional(),
      /** `brief` answers only: the command's status after the report (200). */
      status: CommandStatus.optional(),
      message: z.string().optional(),
    }),
  ),
  /**
   * Present when the body had `claim`: the commands leased to `claim.agentId` (empty when there
   * is no work, or the agent is draining), each with its `leaseId` and `leaseExpiresAt`.
   */
  commands: z.array(ClaimedCommand).optional(),
}).meta({ id: 'BatchResultResponse' });
export type BatchResultResponse = z.infer<typeof BatchResultResponse>;

/**
 * Bulk actions (`POST /commands/retry-failed`, `POST /commands/cancel-pending`): which commands,
 * besides the status the action implies. `{}` means every command of that status.
 */
export const BulkActionBody = z.strictObject({
  type: CommandType.optional(),
  queue: QueueName.optional(),
  agentId: AgentId.optional(),
  createdBefore: z.iso.datetime().optional(),
}).meta({ id: 'BulkActionBody' });
export type BulkActionBody = z.infer<typeof BulkActionBody>;

export const BulkActionResponse = z.object({
  /** How many commands the action changed. */
  count: z.int(),
}).meta({ id: 'BulkActionResponse' });
export type BulkActionResponse = z.infer<typeof BulkActionResponse>;

/** `GET /stats`: what a dashboard shows first, and the event id to stream from so it misses nothing. */
export const StatsResponse = z.object({
  counts: z.object({ PENDING: z.int(), RUNNING: z.int(), COMPLETED: z.int(), FAILED: z.int() }),
  /** The newest event id when the counts were read: stream `/events?lastEventId=` from it. */
  lastEventId: z.int(),
}).meta({ id: 'Stats' });
export type StatsResponse = z.infer<typeof StatsResponse>;
