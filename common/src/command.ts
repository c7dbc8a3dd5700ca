import { z } from 'zod';

/** Lifecycle: PENDING → RUNNING → COMPLETED | FAILED. A retryable failure goes back to PENDING. */
export const CommandStatus = z.enum(['PENDING', 'RUNNING', 'COMPLETED', 'FAILED']).meta({ id: 'CommandStatus' });
export type CommandStatus = z.infer<typeof CommandStatus>;

export const TERMINAL_STATUSES: readonly CommandStatus[] = ['COMPLETED', 'FAILED'];

export const CommandType = z.enum(['DELAY', 'HTTP_GET_JSON']).meta({ id: 'CommandType' });
export type CommandType = z.infer<typeof CommandType>;

export const MAX_DELAY_MS = 86_400_000;
export const MAX_URL_LENGTH = 2048;
export const DEFAULT_MAX_ATTEMPTS = 3;
export const DEFAULT_HTTP_TIMEOUT_MS = 30_000;
/** A DELAY's default timeout is its own length plus this margin. */
export const DELAY_TIMEOUT_MARGIN_MS = 30_000;

export const DelayPayload = z.strictObject({
  ms: z.int().min(0).max(MAX_DELAY_MS),
}).meta({ id: 'DelayPayload' });
export type DelayPayload = z.infer<typeof DelayPayload>;

export const HttpGetJsonPayload = z.strictObject({
  url: z
    .string()
    .max(MAX_URL_LENGTH)
    .refine(isHttpUrl, { message: 'must be an absolute http(s) URL' }),
}).meta({ id: 'HttpGetJsonPayload' });
export type HttpGetJsonPayload = z.infer<typeof HttpGetJsonPayload>;

function isHttpUrl(value: string): boolean {
  if (!URL.canParse(value)) return false;
  const { protocol, hostname } = new URL(value);
  return (protocol === 'http:' || protocol === 'https:') && hostname !== '';
}

export const Progress = z.strictObject({
  percent: z.number().min(0).max(100),
  message: z.string().max(1024).optional(),
}).meta({ id: 'Progress' });
export type Progress = z.infer<typeof Progress>;

const isoTime = z.iso.datetime();

// Routing and flow control (SPEC §9).
export const DEFAULT_QUEUE = 'default';
export const QUEUE_PATTERN = /^[a-z0-9][a-z0-9._-]{0,63}$/;
export const QueueName = z
  .string()
  .regex(QUEUE_PATTERN, 'a queue name: 1 to 64 of a-z 0-9 . _ -, starting with a letter or digit')
  .meta({ id: 'QueueName' });
export const MIN_PRIORITY = -100;
export const MAX_PRIORITY = 100;
export const MAX_CONCURRENCY_KEY_LENGTH = 128;
export const MAX_CONCURRENCY_LIMIT = 1000;
/** `runAt` may be at most this far ahead. */
export const MAX_RUN_AT_AHEAD_MS = 366 * 24 * 60 * 60 * 1000;

/**
 * Why a PENDING command has not started (SPEC §9), computed when `GET /commands/:id` asks:
 * `schedule` (its runAt or retry backoff is ahead: `until`), `concurrency` (its key has `limit`
 * RUNNING or about to start: `running`), `agent` (no live agent serves its queue and type),
 * `capacity` (some do, but they are busy).
 */
export const WaitingFor = z.object({
  reason: z.enum(['agent', 'concurrency', 'schedule', 'capacity']),
  until: isoTime.optional(),
  running: z.int().optional(),
  limit: z.int().optional(),
}).meta({ id: 'WaitingFor' });
export type WaitingFor = z.infer<typeof WaitingFor>;

/** A command as every client sees it. The lease id is never part of it (see ClaimedCommand). */
export const Command = z.object({
  id: z.string(),
  type: CommandType,
  payload: z.record(z.string(), z.unknown()),
  status: CommandStatus,
  result: z.unknown().nullable(),
  error: z.string().nullable(),
  agentId: z.string().nullable(),
  attempts: z.int(),
  maxAttempts: z.int(),
  timeoutMs: z.int(),
  leaseExpiresAt: isoTime.nullable(),
  /** When a PENDING command may next be claimed (later than now during a retry backoff). */
  availableAt: isoTime,
  cancelRequested: z.boolean(),
  progress: Progress.nullable(),
  createdAt: isoTime,
  updatedAt: isoTime,
  startedAt: isoTime.nullable(),
  finishedAt: isoTime.nullable(),
  queue: z.string(),
  priority: z.int(),
  /** The start time asked at submit, if any (availableAt says when it may next be claimed). */
  runAt: isoTime.nullable(),
  concurrencyKey: z.string().nullable(),
  concurrencyLimit: z.int().nullable(),
  /** Only in `GET /commands/:id` of a PENDING command. */
  waitingFor: WaitingFor.optional(),
}).meta({ id: 'Command' });
export type Command = z.infer<typeof Command>;

/** What `GET /commands/next` hands to the agent that claimed the command. */
export const ClaimedCommand = Command.extend({
  leaseId: z.string(),
  leaseExpiresAt: isoTime,
}).meta({ id: 'ClaimedCommand' });
export type ClaimedCommand = z.infer<typeof ClaimedCommand>;

/**
 * What an agent reads of a command it claimed: what it runs, heartbeats and reports with. Agents
 * parse the server's claims with this, not the whole ClaimedCommand: checking all seven of its
 * timestamps against the date-time pattern, and fields it never reads, took ~0.15 ms of every
 * dispatch on an idle agent (CPU profile, latency scenario), on the way to the executor.
 */
export const AgentClaim = ClaimedCommand.pick({
  id: true,
  type: true,
  payload: true,
  attempts: true,
  maxAttempts: true,
  timeoutMs: true,
  leaseId: true,
  leaseExpiresAt: true,
  startedAt: true,
});
export type AgentClaim = z.infer<typeof AgentClaim>;

export const SubmittedCommand = Command.extend({ commandId: z.string() }).meta({ id: 'SubmittedCommand' });
export type SubmittedCommand = z.infer<typeof SubmittedCommand>;

export function isTerminal(status: CommandStatus): boolean {
  return TERMINAL_STATUSES.includes(status);
}
