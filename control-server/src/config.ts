import { fileURLToPath } from 'node:url';
import { z } from 'zod';

const DEFAULT_DB_PATH = fileURLToPath(new URL('../data/commands.db', import.meta.url));

/** An empty variable counts as unset, so `PORT=` means "use the default", not "port 0". */
const unsetIfEmpty = (value: unknown) => (value === '' ? undefined : value);
const int = (min: number, max: number) => z.preprocess(unsetIfEmpty, z.coerce.number().int().min(min).max(max));
const optionalSecret = z.preprocess(unsetIfEmpty, z.string().min(16, 'use at least 16 characters').optional());

const DURATION_UNIT_MS = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
/** `0`, or a whole number of seconds, minutes, hours or days: `90m`, `12h`, `7d`. Answers ms. */
const duration = z.preprocess(
  unsetIfEmpty,
  z
    .string()
    .regex(/^(0|[1-9][0-9]{0,5}[smhd])$/, 'a duration such as 90m, 12h, 7d or 0 (keep forever)')
    .transform((text) => (text === '0' ? 0 : Number(text.slice(0, -1)) * DURATION_UNIT_MS[text.at(-1) as keyof typeof DURATION_UNIT_MS])),
);

const Env = z.object({
  PORT: int(0, 65_535).default(3000),
  HOST: z.preprocess(unsetIfEmpty, z.string()).default('0.0.0.0'),
  DB_PATH: z.preprocess(unsetIfEmpty, z.string()).default(DEFAULT_DB_PATH),
  LEASE_MS: int(100, 3_600_000).default(30_000),
  API_TOKEN: optionalSecret,
  AGENT_TOKEN: optionalSecret,
  /** A token for /metrics alone, so a Prometheus scraper does not hold the client token. */
  METRICS_TOKEN: optionalSecret,
  LOG_LEVEL: z
    .preprocess(unsetIfEmpty, z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']))
    .default('info'),
  CORS_ORIGIN: z.preprocess(unsetIfEmpty, z.string()).default('*'),
  /** Interval of the `: ping` comment on SSE streams. */
  SSE_PING_MS: int(10, 3_600_000).default(15_000),
  /** An SSE client this many events behind is dropped; it resumes from the log with Last-Event-ID. */
  SSE_MAX_QUEUED: int(1, 1_000_000).default(10_000),
  /**
   * An SSE client this many bytes behind (events not yet written to it, plus what its socket holds
   * unsent) is dropped: what bounds memory, since one event may carry a 256 KiB result.
   */
  SSE_MAX_QUEUED_BYTES: int(1024 * 1024, 1024 * 1024 * 1024).default(4 * 1024 * 1024),
  /** FULL: a 201 survives a power cut too. NORMAL: it survives a killed process, not a power cut. */
  SQLITE_SYNCHRONOUS: z
    .preprocess((value) => (typeof value === 'string' ? value.toUpperCase() : value), z.enum(['FULL', 'NORMAL']))
    .default('FULL'),
  /** Set: PostgreSQL instead of SQLite (DB_PATH and SQLITE_SYNCHRONOUS are then unused). */
  DATABASE_URL: z.preprocess(
    unsetIfEmpty,
    z
      .string()
      .regex(/^postgres(ql)?:\/\/\S+$/, 'expected a PostgreSQL URL: postgres://user:password@host:5432/database')
      .optional(),
  ),
  /** Connections of the PostgreSQL pool, per replica (one more listens for notifications). */
  PG_POOL_SIZE: int(1, 1000).default(10),
  /** Time allowed to receive a whole request (headers and body); a stalled upload is cut off. */
  REQUEST_TIMEOUT_MS: int(100, 3_600_000).default(30_000),
  /** Finished commands older than this are deleted (SPEC §7); 0 keeps them forever. */
  RETENTION: duration.prefault('7d'),
});

export interface ServerConfig {
  port: number;
  host: string;
  dbPath: string;
  sqliteSynchronous: 'FULL' | 'NORMAL';
  leaseMs: number;
  apiToken: string | undefined;
  agentToken: string | undefined;
  metricsToken: string | undefined;
  logLevel: string;
  corsOrigin: string | string[];
  ssePingMs: number;
  sseMaxQueued: number;
  sseMaxQueuedBytes: number;
  databaseUrl: string | undefined;
  pgPoolSize: number;
  requestTimeoutMs: number;
  /** ms; 0 = keep finished commands forever. */
  retentionMs: number;
}

export class ConfigError extends Error {}

/** Parses the environment once. A bad value throws a ConfigError naming the variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): ServerConfig {
  // Drop empty variables before parsing: `.default()` only applies to a value that is undefined
  // on the way in, so an empty string turned into undefined by a preprocess never got it.
  const parsed = Env.safeParse(Object.fromEntries(Object.entries(env).filter(([, value]) => value !== '')));
  if (!parsed.success) {
    const lines = parsed.error.issues.map((issue) => `  ${issue.path.join('.')}: ${issue.message}`);
    throw new ConfigError(`invalid configuration:\n${lines.join('\n')}`);
  }
  const e = parsed.data;
  const origins = e.CORS_ORIGIN.split(',').map((o) => o.trim()).filter(Boolean);
  return {
    port: e.PORT,
    host: e.HOST,
    dbPath: e.DB_PATH,
    sqliteSynchronous: e.SQLITE_SYNCHRONOUS,
    leaseMs: e.LEASE_MS,
    apiToken: e.API_TOKEN,
    agentToken: e.AGENT_TOKEN,
    metricsToken: e.METRICS_TOKEN,
    logLevel: e.LOG_LEVEL,
    corsOrigin: origins.length === 1 && origins[0] === '*' ? '*' : origins,
    ssePingMs: e.SSE_PING_MS,
    sseMaxQueued: e.SSE_MAX_QUEUED,
    sseMaxQueuedBytes: e.SSE_MAX_QUEUED_BYTES,
    databaseUrl: e.DATABASE_URL,
    pgPoolSize: e.PG_POOL_SIZE,
    requestTimeoutMs: e.REQUEST_TIMEOUT_MS,
    retentionMs: e.RETENTION,
  };
}
