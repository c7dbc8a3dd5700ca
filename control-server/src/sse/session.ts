import { isTerminal, type Command } from '@agent-executor/common';
import type { ServerResponse } from 'node:http';
import type { FastifyReply } from 'fastify';
import type { StoredEvent } from '../store/store.js';

export interface SessionOptions {
  /** Which events this client asked for. */
  accepts: (event: StoredEvent) => boolean;
  /** Close the stream after a terminal status event (the one-command stream). */
  endAfterTerminal: boolean;
  /** A client this many events behind is dropped; it resumes with Last-Event-ID. */
  maxQueued: number;
}

/**
 * One SSE client. Events are taken in sequence order, each at most once: while the backlog is
 * replayed, live events wait in a buffer, and anything at or below the last sequence already
 * taken is skipped. What is queued goes out in one write, honouring the socket's backpressure.
 */
export class SseSession {
  private lastSeq = 0;
  private replaying = true;
  private readonly live: StoredEvent[] = [];
  private readonly queue: StoredEvent[] = [];
  private pumping = false;
  private ending = false;
  private closed = false;
  private readonly closeListeners: Array<() => void> = [];
  private readonly drainWaiters: Array<() => void> = [];

  constructor(
    private readonly reply: FastifyReply,
    private readonly options: SessionOptions,
  ) {
    reply.sse.onClose(() => this.markClosed());
  }

  get isClosed(): boolean {
    return this.closed;
  }

  onClose(listener: () => void): void {
    this.closeListeners.push(listener);
  }

  /** A live event from the hub. */
  offer(event: StoredEvent): void {
    if (!this.replaying) return this.take(event);
    if (!this.options.accepts(event)) return;
    // Live events held back during a long catch-up count against the same limit as the queue.
    if (this.live.length >= this.options.maxQueued) return this.drop(this.live.length);
    this.live.push(event);
  }

  /**
   * Resolves once everything queued has been handed to the socket (or the client is gone). The
   * catch-up reads its next page only then, so a long backlog never piles up in memory and a
   * client far behind is not mistaken for a slow one.
   */
  drained(): Promise<void> {
    if (this.closed || (this.queue.length === 0 && !this.pumping)) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  /** An event read from the log while catching up. */
  replay(event: StoredEvent): void {
    this.take(event);
  }

  /** Ends the catch-up: the buffered live events follow, without a gap or a duplicate. */
  goLive(): void {
    this.replaying = false;
    for (const event of this.live.splice(0)) this.take(event);
  }

  /** A comment line keeps proxies from closing an idle stream. */
  ping(): void {
    if (!this.closed && this.queue.length === 0) this.reply.raw.write(': ping\n\n');
  }

  close(): void {
    if (this.closed) return;
    this.reply.sse.close();
    this.markClosed();
  }

  private take(event: StoredEvent): void {
    if (this.closed || this.ending || event.seq <= this.lastSeq) return;
    this.lastSeq = event.seq;
    if (!this.options.accepts(event)) return;
    if (this.queue.length >= this.options.maxQueued) return this.drop(this.queue.length);
    this.queue.push(event);
    if (this.options.endAfterTerminal && event.kind === 'status' && isTerminal(event.command.status)) {
      this.ending = true;
    }
    void this.pump();
  }

  /** Sends the current state of a command when its log entries have been pruned: no id to resume from. */
  sendUnlogged(command: Command): void {
    this.queue.push({
      seq: 0,
      kind: 'status',
      transition: 'submit',
      command,
      data: JSON.stringify(command),
      createdAt: Date.now(),
    });
    if (this.options.endAfterTerminal && isTerminal(command.status)) this.ending = true;
    void this.pump();
  }

  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    const raw = this.reply.raw;
    try {
      while (this.queue.length > 0 && !this.closed) {
        // What is queued goes out in one write: a burst of events (a batch of reports) costs one
        // system call, not one each, which on loopback in a VM is most of the cost of an event.
        const frames = this.queue.splice(0, FRAMES_PER_WRITE).map(frame).join('');
        if (!raw.write(frames)) await drained(raw);
      }
      if (this.ending && this.queue.length === 0) this.close();
    } catch {
      this.close();
    } finally {
      this.pumping = false;
      if (this.queue.length === 0) this.resolveDrained();
    }
  }

  private drop(queued: number): void {
    this.reply.log.warn({ queued }, 'SSE client too slow; dropping it (it can resume)');
    this.close();
    // Ending the response is not enough: the unread bytes (megabytes of socket buffers) and the
    // connection would be held until the client reads or the server stops.
    this.reply.raw.destroy();
  }

  private markClosed(): void {
    if (this.closed) return;
    this.closed = true;
    this.queue.length = 0;
    this.resolveDrained();
    for (const listener of this.closeListeners.splice(0)) listener();
  }

  private resolveDrained(): void {
    for (const resolve of this.drainWaiters.splice(0)) resolve();
  }
}

/** At most this many events in one write. */
const FRAMES_PER_WRITE = 256;

/**
 * One event as an SSE frame. The headers (and the `retry:` line) went out through @fastify/sse
 * when the stream opened. `data` is JSON from JSON.stringify, which never contains a line break,
 * so it is always a single `data:` line.
 */
function frame(event: StoredEvent): string {
  return `${event.seq > 0 ? `id: ${event.seq}\n` : ''}event: ${event.kind}\ndata: ${event.data}\n\n`;
}

/** Resolves when the socket takes writes again, or is gone; rejects on a socket error. */
function drained(raw: ServerResponse): Promise<void> {
  if (raw.destroyed) return Promise.resolve(); // a write to a gone client: 'close' has passed
  return new Promise((resolve, reject) => {
    const settle = (error?: Error) => {
      raw.off('drain', onDrain);
      raw.off('close', onClose);
      raw.off('error', settle);
      if (error) reject(error);
      else resolve();
    };
    const onDrain = () => settle();
    const onClose = () => settle();
    raw.on('drain', onDrain);
    raw.on('close', onClose);
    raw.on('error', settle);
  });
}
