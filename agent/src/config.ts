import { fileURLToPath } from 'node:url';
import { AgentId, DEFAULT_QUEUE, MAX_ADVERTISED, MAX_LONG_POLL_WAIT_S, QUEUE_PATTERN } from '@agent-executor/common';
import { z } from 'zod';
import { DRILL_POINTS, type DrillPoint } from './crash-drill.js';
import { HttpAllow, type AllowEntry } from './http-allow.js';
import { SsrfGuard } from './ssrf-guard.js';

const DEFAULT_DB_PATH = fileURLToPath(new URL('../data/idempotency.db', import.meta.url));

const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
/** Only the two words: `HTTP_BLOCK_PRIVATE=yes` is a mistake worth stopping for, not a silent false. */
const bool = (fallback: 'true' | 'false') => z.enum(['true', 'false']).default(fallback).transform((v) => v === 'true');

const HttpUrl = z.url({ protocol: /^https?$/ });

/**
 * One or more http(s) URLs, comma-separated: replicas of one store to fail over between (SPEC §8).
 * Each entry is checked; one that is not an http(s) URL, or one listed twice, stops the agent.
 */
const ServerUrls = z
  .string()
  .transform((text, ctx) => {
    const urls = text
      .split(',')
      .map((entry) => entry.trim())
      .filter((entry) => entry !== '');
    if (urls.length === 0) ctx.addIssue({ code: 'custom', message: 'lists no URL' });
    const seen = new Set<string>();
    for (const url of urls) {
      if (!HttpUrl.safeParse(url).success) ctx.addIssue({ code: 'custom', message: `"${url}" is not an http(s) URL` });
      const key = url.replace(/\/+$/, '');
      if (seen.has(key)) ctx.addIssue({ code: 'custom', message: `lists ${url} twice` });
      seen.add(key);
    }
    return [...seen];
  });

const Env = z.object({
  SERVER_URL: ServerUrls.default(['http://localhost:3000']),
  POLL_INTERVAL: int(10, 3_600_000).default(2000),
  LONG_POLL_WAIT: int(0, MAX_LONG_POLL_WAIT_S).default(25),
  AGENT_ID: AgentId.optional(),
  CONCURRENCY: int(1, 256).default(1),
  /** The queues this agent serves (SPEC §9), comma-separated. */
  AGENT_QUEUES: z
    .string()
    .default(DEFAULT_QUEUE)
    .transform((text) => [...new Set(text.split(',').map((q) => q.trim()).filter(Boolean))])
    .refine((queues) => queues.length >= 1 && queues.length <= MAX_ADVERTISED, `name 1 to ${MAX_ADVERTISED} queues`)
    // Checked as a whole, so the message names AGENT_QUEUES and not AGENT_QUEUES.0.
    .refine((queues) => queues.every((queue) => QUEUE_PATTERN.test(queue)), 'each queue: [a-z0-9][a-z0-9._-]{0,63}'),
  IDEMPOTENCY_DB_PATH: z.string().default(DEFAULT_DB_PATH),
  AGENT_TOKEN: z.string().optional(),
  /** Secure by default: anyone who may submit could otherwise read the agents' internal network. */
  HTTP_BLOCK_PRIVATE: bool('true'),
  /**
   * Internal targets allowed anyway. An entry naming a link-local or metadata address stops the
   * agent: it could never take effect, and a silent no-op would hide the operator's mistake.
   */
  HTTP_ALLOW: HttpAllow.superRefine((entries, ctx) => {
    for (const entry of entries) {
      const why = SsrfGuard.pointless(entry);
      if (why !== undefined) ctx.addIssue({ code: 'custom', message: why });
    }
  }).default([]),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** After SIGTERM, how long running commands may take before they are aborted. */
  DRAIN_MS: int(0, 3_600_000).default(10_000),
  /** Crash-drill hook for tests: SIGKILL at this point of the first command that reaches it. */
  AGENT_CRASH_AT: z.enum(DRILL_POINTS).optional(),
  /** When set, the agent serves its Prometheus metrics on this port (GET /metrics). */
  METRICS_PORT: int(1, 65_535).optional(),
});

export interface AgentConfig {
  /** At least one; without a trailing slash. */
  serverUrls: string[];
  pollIntervalMs: number;
  longPollWaitS: number;
  agentId: string | undefined;
  concurrency: number;
  queues: string[];
  dbPath: string;
  agentToken: string | undefined;
  blockPrivate: boolean;
  httpAllow: AllowEntry[];
  logLevel: string;
  drainMs: number;
  crashAt: DrillPoint | undefined;
  metricsPort: number | undefined;
}

export class ConfigError extends Error {}

/** Parses the environment once. A bad value throws a ConfigError naming the variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): AgentConfig {
  // An empty variable counts as unset, so `POLL_INTERVAL=` means "the default", not 0.
  const parsed = Env.safeParse(Object.fromEntries(Object.entries(env).filter(([, value]) => value !== '')));
  if (!parsed.success) {
    const lines = parsed.error.issues.map((issue) => `  ${issue.path.join('.')}: ${issue.message}`);
    throw new ConfigError(`invalid configuration:\n${lines.join('\n')}`);
  }
  const e = parsed.data;
  return {
    serverUrls: e.SERVER_URL,
    pollIntervalMs: e.POLL_INTERVAL,
    longPollWaitS: e.LONG_POLL_WAIT,
    agentId: e.AGENT_ID,
    concurrency: e.CONCURRENCY,
    queues: e.AGENT_QUEUES,
    dbPath: e.IDEMPOTENCY_DB_PATH,
    agentToken: e.AGENT_TOKEN,
    blockPrivate: e.HTTP_BLOCK_PRIVATE,
    httpAllow: e.HTTP_ALLOW,
    logLevel: e.LOG_LEVEL,
    drainMs: e.DRAIN_MS,
    crashAt: e.AGENT_CRASH_AT,
    metricsPort: e.METRICS_PORT,
  };
}
