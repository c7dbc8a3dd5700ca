/** The SSE frames byte for byte: what an EventSource parses (id, event, one data line, blank line). */
import { describe, expect, test } from 'vitest';
import type { Command } from '@agent-executor/common';
import { eventFrame, PING_FRAME, resetFrame, unloggedFrame } from '../src/sse/frame.js';
import type { StoredEvent } from '../src/store/store.js';

const command = { id: 'c1', status: 'COMPLETED' } as unknown as Command;

describe('SSE frames', () => {
  test('a logged event: its seq as the id, its kind as the event, the stored JSON as is', () => {
    const event = { seq: 42, kind: 'progress', transition: 'progress', command, data: '{"id":"c1"}', createdAt: 0 } satisfies StoredEvent;
    expect(eventFrame(event).toString()).toBe('id: 42\nevent: progress\ndata: {"id":"c1"}\n\n');
  });

  test('an unlogged state: no id (nothing to resume from), a status event with the command', () => {
    expect(unloggedFrame(command).toString()).toBe('event: status\ndata: {"id":"c1","status":"COMPLETED"}\n\n');
  });

  test('a reset: the id just before the oldest kept event, which the data names', () => {
    expect(resetFrame(100).toString()).toBe('id: 99\nevent: reset\ndata: {"oldestEventId":100}\n\n');
  });

  test('a ping is a comment line', () => {
    expect(PING_FRAME.toString()).toBe(': ping\n\n');
  });
});
