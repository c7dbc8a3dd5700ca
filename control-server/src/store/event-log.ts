import type { Command } from '@agent-executor/common';
import { rowToCommand, type CommandRow } from './command-rows.js';
import type { StoredEvent, Transition } from './store.js';

/** A row of the `events` table, as both stores read it. */
export interface EventRow {
  seq: number;
  kind: 'status' | 'progress';
  transition: Transition;
  data: string;
  created_at: number;
}

/** An event as a transition builds it, before the log gives it its seq. */
export type NewEvent = Omit<StoredEvent, 'seq'> & { commandId: string };

/** The event a transition logs: the whole command after the change, serialised once for SSE. */
export function buildEvent(transition: Transition, row: CommandRow, createdAt: number): NewEvent {
  const command = rowToCommand(row);
  return {
    commandId: row.id,
    kind: transition === 'progress' ? 'progress' : 'status',
    transition,
    command,
    data: JSON.stringify(command),
    createdAt,
  };
}

/** True when the row is PENDING and claimable at `at`: a waiting poll may take it. */
export function isAvailable(row: CommandRow, at: number): boolean {
  return row.status === 'PENDING' && row.available_at <= at;
}

export function toStoredEvent(row: EventRow): StoredEvent {
  return {
    seq: row.seq,
    kind: row.kind,
    transition: row.transition,
    command: JSON.parse(row.data) as Command,
    data: row.data,
    createdAt: row.created_at,
  };
}

/**
 * The event log keeps the events younger than `ms`, at most the newest `count` of them: "at least
 * the last 24 h or 100 000 events" (SPEC §4), whichever is fewer, so its size is bounded at any
 * rate (24 h at 800 commands/s would be 200 million events, ~130 GB).
 */
export const DEFAULT_EVENT_RETENTION = { count: 100_000, ms: 24 * 60 * 60 * 1000 };

/** At most this many events deleted per prune: ~2 ms in SQLite. A full batch prunes again soon. */
export const PRUNE_BATCH = 2_000;

/**
 * Where a prune of the log stops (exclusive): events with seq below it go. `head` and `last` are
 * the oldest and newest ids the log holds, `keptByTime` the first one young enough to keep by
 * time (undefined: none is). Each store finds these by index lookups and deletes a range of seq,
 * so a prune costs what it deletes, at most PRUNE_BATCH events.
 */
export function pruneEnd(log: { head: number; last: number; keptByTime: number | undefined; keepCount: number }): number {
  const keptByTime = log.keptByTime ?? log.last + 1;
  return Math.min(Math.max(keptByTime, log.last - log.keepCount + 1), log.head + PRUNE_BATCH);
}
