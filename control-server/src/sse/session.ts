import { isTerminal, type Command } from '@agent-executor/common';
import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyReply } from 'fastify';
import type { StoredEvent } from '../store/store.js';
import { eventFrame, httpChunk, PING_FRAME, resetFrame, unloggedFrame } from './frame.js';
import type { LiveLog, LiveRun } from './hub.js';

/**
 * How much a live session hands its socket at a time. More than the socket's 16 KiB high-water
 * mark, so a client that keeps up (or a kernel buffer that is filling) costs a system call and a
 * 'drain' per 64 KiB, not per 16.
 */
const WRITE_AHEAD = 64 * 1024;

export interface SessionOptions {
  /** Which events this client asked for; undefined: every one. */
  accepts: ((event: StoredEvent) => boolean) | undefined;
  /** Close the stream after a terminal status event (the one-command stream). */
  endAfterTerminal: boolean;
  /** A client this many live events behind is dropped; it resumes with Last-Event-ID. */
  maxQueued: number;
  /** A client this many bytes behind (live events not written, plus what its socket holds unsent) is dropped. */
  maxQueuedBytes: number;
}

/**
 * One SSE client. Events are taken in sequence order, each at most once: while the backlog is
 * replayed from the log, live events wait in the hub's shared log, and anything at or below the
 * last sequence already taken is skipped.
 *
 * The session holds no queue: it writes live events while its socket takes them (up to
 * WRITE_AHEAD bytes at a time), and when the socket asks to wait it keeps only its position in
 * the hub's log until 'drain'. How far behind it is, in events and in bytes (the hub's entries
 * past its position plus `writableLength`, what Node holds for the socket), is what the limits
 * bound: past either one the client is dropped, and resumes from the log when it reconnects.
 */
export class SseSession {
  private lastSeq = 0;
  private replaying = true;
  /** The next entry of the live log to consider. */
  private cursor: number;
  /** The socket asked us to wait for 'drain'. */
  private blocked = false;
  private ending = false;
  private closed = false;
  private readonly raw: ServerResponse;
  /** Kept: a response lets go of its socket when it ends, and the 'drain' listener must come off it. */
  private readonly socket: Socket | null;
  private readonly closeListeners: Array<() => void> = [];
  private readonly drainWaiters: Array<() => void> = [];

  constructor(
    private readonly reply: FastifyReply,
    private readonly live: LiveLog,
    private readonly options: SessionOptions,
  ) {
    this.raw = reply.raw;
    this.socket = reply.raw.socket;
    this.cursor = live.end;
    reply.sse.onClose(() => this.markClosed());
    // One listener for the session's life, not one per blocked write. The socket's own: a run
    // written to it directly (writeRun) makes it, not the response, ask for 'drain'.
    this.raw.on('drain', this.onDrain);
    this.socket?.on('drain', this.onDrain);
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** The next live entry this session needs: the hub keeps entries from the lowest one. */
  get position(): number {
    return this.cursor;
  }

  onClose(listener: () => void): void {
    this.closeListeners.push(listener);
  }

  /** New live events (from the hub) or a drained socket: write what the socket takes, drop a client too far behind. */
  catchUp(): void {
    if (!this.closed && !this.replaying && !this.blocked) this.writeLive();
    if (!this.closed && this.tooFarBehind()) this.drop();
    if (this.closed || !this.blocked) this.resolveDrained();
  }

  /**
   * Resolves once the socket has taken what was written (or the client is gone), on a later turn
   * of the event loop. The catch-up reads its next page only then, so a long backlog neither piles
   * up in memory nor holds the event loop, and a client far behind is not mistaken for a slow one.
   */
  drained(): Promise<void> {
    return new Promise((resolve) => {
      this.drainWaiters.push(resolve);
      if (this.closed || !this.blocked) this.live.resumeSoon(this);
    });
  }

  /** Events read from the log while catching up: written at once, a page is bounded by its reader. */
  replay(events: readonly StoredEvent[]): void {
    if (this.closed) return;
    this.raw.cork();
    for (const event of events) {
      if (this.ending) break;
      if (this.take(event)) this.write(eventFrame(event));
    }
    this.raw.uncork();
    if (this.ending) this.close();
  }

  /** Events after the client's id were pruned from the log: it must reload what it shows. */
  sendReset(oldestEventId: number): void {
    if (!this.closed) this.write(resetFrame(oldestEventId));
  }

  /** Sends the current state of a command when its log entries have been pruned: no id to resume from. */
  sendUnlogged(command: Command): void {
    if (this.closed) return;
    this.write(unloggedFrame(command));
    if (this.options.endAfterTerminal && isTerminal(command.status)) this.close();
  }

  /** Ends the catch-up: the live events since the stream opened follow, without a gap or a duplicate. */
  goLive(): void {
    this.replaying = false;
    this.catchUp();
  }

  /** A comment line keeps proxies from closing an idle stream. */
  ping(): void {
    if (!this.closed && !this.blocked) this.write(PING_FRAME);
  }

  close(): void {
    if (this.closed) return;
    this.reply.sse.close();
    this.markClosed();
  }

  /**
   * Writes live entries until the socket holds WRITE_AHEAD bytes; one write (one system call) for
   * all of them. Past its high-water mark the socket asks for 'drain', which resumes the writing.
   */
  private writeLive(): void {
    const raw = this.raw;
    raw.cork();
    const takesAll = this.options.accepts === undefined && !this.options.endAfterTerminal;
    for (let entry = this.live.at(this.cursor); entry && !this.ending && raw.writableLength < WRITE_AHEAD; entry = this.live.at(this.cursor)) {
      if (takesAll && entry.run && entry.event.seq > this.lastSeq) {
        // The whole run in one Buffer, shared with every client that takes every event.
        this.writeRun(entry.run);
        this.cursor = entry.run.end;
        this.lastSeq = entry.run.lastSeq;
        continue;
      }
      this.cursor++;
      if (this.take(entry.event)) this.write(entry.frame);
    }
    raw.uncork();
    if (this.ending) this.close();
  }

  /** Takes each event once, in sequence order; answers whether this client wants it. */
  private take(event: StoredEvent): boolean {
    if (event.seq <= this.lastSeq) return false;
    this.lastSeq = event.seq;
    if (this.options.accepts && !this.options.accepts(event)) return false;
    if (this.options.endAfterTerminal && event.kind === 'status' && isTerminal(event.command.status)) {
      this.ending = true;
    }
    return true;
  }

  private write(frame: Buffer): void {
    if (!this.raw.write(frame)) this.blocked = true;
  }

  /**
   * A run of live events, on a chunked response whose head is out and which holds nothing back:
   * straight to the socket, as the one chunk ServerResponse would have made of it. For 10 000
   * clients of one event this is one `write` each of a shared Buffer, where `raw.write` formats
   * a chunk header and sends header, frame and CRLF through `writev`, per client.
   */
  private writeRun(run: LiveRun): void {
    const raw = this.raw;
    const socket = this.socket;
    if (!socket || raw.socket !== socket || !raw.headersSent || !raw.chunkedEncoding || raw.writableEnded || raw.writableLength !== socket.writableLength) {
      this.write(run.bytes);
      return;
    }
    run.chunk ??= httpChunk(run.bytes);
    if (!socket.write(run.chunk)) this.blocked = true;
  }

  private tooFarBehind(): boolean {
    const entry = this.live.at(this.cursor);
    const unwritten = entry ? this.live.endOffset - entry.offset : 0;
    // While replaying, the socket holds a page of the log: bounded by the reader, not a sign of slowness.
    const bytes = unwritten + (this.replaying ? 0 : this.raw.writableLength);
    return this.live.end - this.cursor > this.options.maxQueued || bytes > this.options.maxQueuedBytes;
  }

  private drop(): void {
    const entry = this.live.at(this.cursor);
    this.reply.log.warn(
      {
        behindEvents: this.live.end - this.cursor,
        behindBytes: (entry ? this.live.endOffset - entry.offset : 0) + this.raw.writableLength,
      },
      'SSE client too slow; dropping it (it can resume)',
    );
    this.live.noteDropped();
    this.close();
    // Ending the response is not enough: the unread bytes (megabytes of socket buffers) and the
    // connection would be held until the client reads or the server stops.
    this.raw.destroy();
  }

  private readonly onDrain = (): void => {
    this.blocked = false;
    this.live.resumeSoon(this);
  };

  private markClosed(): void {
    if (this.closed) return;
    this.closed = true;
    this.raw.off('drain', this.onDrain);
    this.socket?.off('drain', this.onDrain);
    this.resolveDrained();
    for (const listener of this.closeListeners.splice(0)) listener();
  }

  private resolveDrained(): void {
    for (const resolve of this.drainWaiters.splice(0)) resolve();
  }
}
