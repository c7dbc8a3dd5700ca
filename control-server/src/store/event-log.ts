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
