import type { CommandStore, StoredEvent } from '../store/store.js';
import { eventFrame } from './frame.js';
import type { SseSession } from './session.js';

/** One live event as every session sees it: encoded once, the same bytes for all. */
export interface LiveEntry {
  readonly event: StoredEvent;
  readonly frame: Buffer;
  /** The bytes of every entry before this one: a session's distance behind is a subtraction. */
  readonly offset: number;
  /** On the first entry of a run: the frames of the whole run in one Buffer, for a client that takes every event. */
  readonly run?: LiveRun;
}

/** Consecutive entries whose frames sit back to back in one Buffer (the frames are views into it). */
export interface LiveRun {
  readonly bytes: Buffer;
  /** `bytes` as one HTTP/1.1 chunk, made by the first session that writes the run to its socket directly. */
  chunk?: Buffer;
  /** The position after the run's last entry. */
  readonly end: number;
  readonly lastSeq: number;
}

/** The live events, by position; what a session reads instead of keeping a queue of its own. */
export interface LiveLog {
  /** The position after the newest entry. */
  readonly end: number;
  /** The bytes of every entry so far (the offset `end` will have). */
  readonly endOffset: number;
  /** The entry at a position, while some session still needs it. */
  at(position: number): LiveEntry | undefined;
  /** Has a session (whose socket drained) write on a later turn of the event loop. */
  resumeSoon(session: SseSession): void;
  /** Counts a session dropped for being too far behind (a metric for operators). */
  noteDropped(): void;
}

/** A run of frames is cut at about this size: one write of a session takes whole runs. */
const RUN_BYTES = 64 * 1024;
/**
 * Writing to thousands of sockets is done in slices of about this long, so other requests are
 * answered in between: a burst to 2 000 clients that do not read (whose kernel buffers take
 * megabytes each before they push back) is seconds of system calls.
 */
const SLICE_MS = 5;

/**
 * Every open SSE stream. One store listener fans each event out to all sessions, and one timer
 * pings them all, so 10 000 clients cost 10 000 sockets, not 10 000 listeners and timers.
 *
 * Live events go into one shared log, each encoded once, consecutive frames into one Buffer; each
 * session keeps only its position in it. A client that does not read costs a number, not a copy
 * or a reference per event, and a client that takes every event writes a run of events as one
 * shared Buffer. The log keeps an entry only until every session has passed it; a session too
 * far behind is dropped, so the log is bounded by the sessions' limits. Events of one commit are
 * delivered together, in a microtask, and sessions are written to in time slices.
 */
export class SseHub implements LiveLog {
  private readonly sessions = new Set<SseSession>();
  private readonly pinger: NodeJS.Timeout;
  /** Emitted by the store, not yet encoded: delivered together once the emitting turn is over. */
  private incoming: StoredEvent[] = [];
  private entries: LiveEntry[] = [];
  /** The position of entries[0]. */
  private first = 0;
  private bytes = 0;
  /** Sessions to write to (or check) next, in order; a Set so each is in it once. */
  private readonly ready = new Set<SseSession>();
  private writeQueued = false;
  private droppedCount = 0;

  constructor(
    private readonly store: CommandStore,
    pingMs: number,
  ) {
    store.events.on('event', this.append);
    this.pinger = setInterval(() => {
      for (const session of this.sessions) session.ping();
    }, pingMs);
    this.pinger.unref();
  }

  get size(): number {
    return this.sessions.size;
  }

  /** Sessions dropped for being too far behind, since the start. */
  get dropped(): number {
    return this.droppedCount;
  }

  noteDropped(): void {
    this.droppedCount++;
  }

  get end(): number {
    return this.first + this.entries.length;
  }

  get endOffset(): number {
    return this.bytes;
  }

  at(position: number): LiveEntry | undefined {
    return position >= this.first ? this.entries[position - this.first] : undefined;
  }

  /**
   * Not from the socket's 'drain' handler: there the next write's completion runs in the same
   * tick queue, and thousands of sockets that keep taking bytes would hold the event loop.
   */
  resumeSoon(session: SseSession): void {
    this.ready.add(session);
    this.writeLater();
  }

  add(session: SseSession): void {
    this.sessions.add(session);
    session.onClose(() => {
      this.sessions.delete(session);
      this.ready.delete(session);
      if (this.sessions.size === 0) this.forgetBefore(this.end);
    });
  }

  /** Closes every stream (on shutdown): clients reconnect elsewhere with Last-Event-ID. */
  close(): void {
    clearInterval(this.pinger);
    this.store.events.off('event', this.append);
    for (const session of [...this.sessions]) session.close();
    this.incoming = [];
    this.entries = [];
  }

  private readonly append = (event: StoredEvent): void => {
    // A session opened later starts at the end: with no session, there is nobody to keep it for.
    if (this.sessions.size === 0) return;
    if (this.incoming.push(event) === 1) queueMicrotask(this.deliver);
  };

  private readonly deliver = (): void => {
    this.encode(this.incoming);
    this.incoming = [];
    let oldest = this.end;
    for (const session of this.sessions) {
      this.ready.add(session);
      oldest = Math.min(oldest, session.position);
    }
    this.forgetBefore(oldest);
    this.writeSome();
  };

  /** Appends events to the log, their frames cut into runs of about RUN_BYTES. */
  private encode(events: readonly StoredEvent[]): void {
    let start = 0;
    while (start < events.length) {
      const frames: Buffer[] = [];
      let size = 0;
      while (start + frames.length < events.length && size < RUN_BYTES) {
        const frame = eventFrame(events[start + frames.length] as StoredEvent);
        frames.push(frame);
        size += frame.length;
      }
      const bytes = frames.length === 1 ? (frames[0] as Buffer) : Buffer.concat(frames, size);
      const run: LiveRun = { bytes, end: this.end + frames.length, lastSeq: (events[start + frames.length - 1] as StoredEvent).seq };
      let at = 0;
      frames.forEach((frame, i) => {
        const event = events[start + i] as StoredEvent;
        this.entries.push({ event, frame: bytes.subarray(at, at + frame.length), offset: this.bytes, ...(i === 0 ? { run } : {}) });
        at += frame.length;
        this.bytes += frame.length;
      });
      start += frames.length;
    }
  }

  /** Writes to the ready sessions for one slice of time; the rest on the next turn. */
  private writeSome(): void {
    const stopAt = performance.now() + SLICE_MS;
    for (const session of this.ready) {
      this.ready.delete(session);
      session.catchUp();
      if (performance.now() >= stopAt) break;
    }
    if (this.ready.size > 0) this.writeLater();
  }

  private writeLater(): void {
    if (this.writeQueued) return;
    this.writeQueued = true;
    setImmediate(() => {
      this.writeQueued = false;
      this.writeSome();
    });
  }

  /** Lets go of the entries every session has passed. */
  private forgetBefore(position: number): void {
    const passed = position - this.first;
    if (passed <= 0) return;
    if (passed >= this.entries.length) this.entries = [];
    else this.entries.splice(0, passed);
    this.first = position;
  }
}
