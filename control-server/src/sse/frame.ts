import type { Command } from '@agent-executor/common';
import type { StoredEvent } from '../store/store.js';

/**
 * SSE frames as bytes. A live event is encoded once, by the hub, and that one Buffer is written
 * to every socket: Node queues a Buffer by reference, where a string would be copied per client.
 * The headers (and the `retry:` line) went out through @fastify/sse when the stream opened.
 * `data` is JSON from JSON.stringify, which never contains a line break, so it is always a single
 * `data:` line.
 */
export function eventFrame(event: StoredEvent): Buffer {
  return Buffer.from(`id: ${event.seq}\nevent: ${event.kind}\ndata: ${event.data}\n\n`);
}

/** A command's current state when the log no longer holds an event of it: no id to resume from. */
export function unloggedFrame(command: Command): Buffer {
  return Buffer.from(`event: status\ndata: ${JSON.stringify(command)}\n\n`);
}

/**
 * Events after the client's id were pruned from the log (SPEC §4). The id is the one just before
 * the oldest event kept: a client that reconnects after this frame has been told already and
 * resumes without a second reset, unless the log is pruned past it again.
 */
export function resetFrame(oldestEventId: number): Buffer {
  return Buffer.from(`id: ${oldestEventId - 1}\nevent: reset\ndata: ${JSON.stringify({ oldestEventId })}\n\n`);
}

/** A comment line keeps proxies from closing an idle stream. */
export const PING_FRAME = Buffer.from(': ping\n\n');
