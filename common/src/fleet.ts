import { z } from 'zod';
import { AgentId } from './requests.js';

/** The header on a poll or heartbeat answer that tells an agent to drain: stop claiming, finish, exit. */
export const AGENT_DRAIN_HEADER = 'agent-drain';

/** One agent as `GET /agents` shows it (SPEC §9). */
export const AgentView = z.object({
  id: z.string(),
  hostname: z.string().nullable(),
  version: z.string().nullable(),
  queues: z.array(z.string()),
  types: z.array(z.string()),
  concurrency: z.int().nullable(),
  /** Its commands RUNNING now. */
  inFlight: z.int(),
  lastSeenAt: z.iso.datetime(),
  /** gone: not seen polling or heartbeating for 3 × max(longest poll wait, LEASE_MS). */
  state: z.enum(['active', 'draining', 'gone']),
}).meta({ id: 'AgentView' });
export type AgentView = z.infer<typeof AgentView>;

/** `GET /agents` answers a bare array, like `GET /commands`. */
export const AgentsResponse = z.array(AgentView).meta({ id: 'AgentsResponse' });
export type AgentsResponse = z.infer<typeof AgentsResponse>;

export const AgentIdParams = z.strictObject({ id: AgentId });

/** One queue as `GET /queues` shows it. */
export const QueueView = z.object({
  queue: z.string(),
  pending: z.int(),
  running: z.int(),
  /** Age in ms of its oldest PENDING command; null when none is pending. */
  oldestPendingAgeMs: z.int().nullable(),
  /** Live agents (not gone) that serve it. */
  agents: z.array(z.string()),
}).meta({ id: 'QueueView' });
export type QueueView = z.infer<typeof QueueView>;

export const QueuesResponse = z.array(QueueView).meta({ id: 'QueuesResponse' });
export type QueuesResponse = z.infer<typeof QueuesResponse>;
