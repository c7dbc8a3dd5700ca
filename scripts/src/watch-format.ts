import type { Command, WaitingFor } from '@agent-executor/common';

const SUMMARY_CHARS = 80;

/**
 * One change as one line:
 * `2026-11-24T10:00:03.120Z  #1044  3f0c…  DELAY  COMPLETED  attempt 1/3  result {"ok":true,"tookMs":3001}`
 * (time of the change, event id, command id, type, status, attempts, then whatever the change is about:
 * progress, result, error, a pending retry or a cancel request).
 */
export function formatChange(eventId: string, kind: string, command: Command): string {
  const parts = [
    command.updatedAt,
    `#${eventId || '-'}`,
    command.id,
    command.type,
    command.status.padEnd(9),
    `attempt ${command.attempts}/${command.maxAttempts}`,
  ];
  if (command.progress && (kind === 'progress' || command.status === 'RUNNING')) {
    parts.push(`progress ${Math.round(command.progress.percent)}%${command.progress.message ? ` ${short(command.progress.message)}` : ''}`);
  }
  if (command.queue !== undefined && command.queue !== 'default') parts.push(`queue ${command.queue}`);
  if (command.priority) parts.push(`priority ${command.priority}`);
  if (command.status === 'RUNNING' && command.cancelRequested) parts.push('cancel requested');
  if (command.status === 'PENDING' && command.availableAt > command.updatedAt) {
    parts.push(`${command.attempts === 0 ? 'starts at' : 'retry at'} ${command.availableAt}`);
  }
  if (command.waitingFor) parts.push(formatWaitingFor(command.waitingFor));
  if (command.result !== null && command.result !== undefined && command.status !== 'RUNNING') {
    parts.push(`result ${summary(command.result)}`);
  }
  if (command.error !== null) parts.push(`error ${short(command.error)}`);
  return parts.join('  ');
}

/**
 * Why a PENDING command waits (SPEC §9): `waiting for an agent serving its queue and type`,
 * `waiting for concurrency key slot (2/2 running)`, `waiting for its start time 2030-…`,
 * `waiting for a free agent`.
 */
export function formatWaitingFor(waiting: WaitingFor): string {
  switch (waiting.reason) {
    case 'agent':
      return 'waiting for an agent serving its queue and type';
    case 'concurrency':
      return `waiting for a slot of its concurrency key (${waiting.running ?? '?'}/${waiting.limit ?? '?'} running)`;
    case 'schedule':
      return `waiting for its start time ${waiting.until ?? ''}`.trimEnd();
    case 'capacity':
      return 'waiting for a free agent';
  }
}

/** JSON, cut to one short line. */
export function summary(value: unknown): string {
  return short(JSON.stringify(value) ?? String(value));
}

function short(text: string): string {
  const line = text.replace(/\s+/g, ' ');
  return line.length <= SUMMARY_CHARS ? line : `${line.slice(0, SUMMARY_CHARS - 1)}…`;
}
