import type { Command as WireCommand, StatsResponse } from '@agent-executor/common';

/** A command as the API sends it; `queue`, `priority` and `waitingFor` come with routing (SPEC §9). */
export type Command = WireCommand & {
  queue?: string;
  priority?: number;
  waitingFor?: unknown;
};

export type Stats = StatsResponse;
export type Status = Command['status'];
export const STATUSES: readonly Status[] = ['PENDING', 'RUNNING', 'COMPLETED', 'FAILED'];
export const TYPES: readonly Command['type'][] = ['DELAY', 'HTTP_GET_JSON'];
