import { z } from 'zod';
import {
  ClaimedCommand,
  Command,
  CommandStatus,
  CommandType,
  DelayPayload,
  HttpGetJsonPayload,
  MAX_DELAY_MS,
  Progress,
  SubmittedCommand,
} from './command.js';

export const MAX_RESULT_BYTES = 256 * 1024;
export const MAX_BODY_BYTES = 1024 * 1024;
export const MAX_IDEMPOTENCY_KEY_LENGTH = 255;
export const MAX_LONG_POLL_WAIT_S = 60;

const maxAttempts = z.int().min(1).max(20).optional();
const timeoutMs = z.int().min(1).max(MAX_DELAY_MS).optional();

export const SubmitBody = z
  .discriminatedUnion('type', [
    z.strictObject({ type: z.literal('DELAY'), payload: DelayPayload, maxAttempts, timeoutMs }),
    z.strictObject({
      type: z.literal('HTTP_GET_JSON'),
      payload: HttpGetJsonPayload,
      maxAttempts,
      timeoutMs,
    }),
  ])
  .superRefine((body, ctx) => {
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

export const NextQuery = z.strictObject({
  agentId: AgentId,
  wait: z.coerce.number().int().min(0).max(MAX_LONG_POLL_WAIT_S).optional(),
});
export type NextQuery = z.infer<typeof NextQuery>;

export const ListQuery = z.strictObject({
  status: CommandStatus.optional(),
  type: CommandType.optional(),
  agentId: AgentId.optional(),
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

export const BatchResultBody = z.strictObject({
  reports: z.array(BatchReport).min(1).max(MAX_BATCH_REPORT),
}).meta({ id: 'BatchResultBody' });
export type BatchResultBody = z.infer<typeof BatchResultBody>;

/** One answer per report, in order: what the single-report route would have answered. */
export const BatchResultResponse = z.object({
  results: z.array(
    z.object({
      id: z.string(),
      statusCode: z.int(),
      command: Command.optional(),
      message: z.string().optional(),
    }),
  ),
}).meta({ id: 'BatchResultResponse' });
export type BatchResultResponse = z.infer<typeof BatchResultResponse>;
