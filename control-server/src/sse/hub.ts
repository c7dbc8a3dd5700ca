import type { CommandStore, StoredEvent } from '../store/store.js';
import { eventFrame } from './frame.js';
import type { SseSession } from './session.js';

/** One live event as every session sees it: encoded once, the same bytes for all. */
export interface LiveEntry {
  readonly event: StoredEvent;
  readonly frame: Buffer;
  /** The bytes of every entry before this one: a session's distance behind is a subtraction. */
  readonly offset: number;
}

/** The live events, by position; what a session reads instead of keeping a queue of its own. */
export interface LiveLog {
  /** The position after the newest entry. */
  readonly end: number;
  /** The bytes of every entry so far (the offset `end` will have). */
  readonly endOffset: number;
  /** The entry at a position, while some session still needs it. */
  at(position: number): LiveEntry | undefined;
}

/**
 * Every open SSE stream. One store listener fans each event out to all sessions, and one timer
 * pings them all, so 10 000 clients cost 10 000 sockets, not 10 000 listeners and timers.
 *
 * Live events go into one shared log, each encoded once; each session keeps only its position in
 * it. A client that does not read costs a number, not a copy or a reference per event, and the
 * log keeps an entry only until every session has passed it (a session too far behind is
 * dropped, so the log is bounded by the sessions' limits). Events of one commit are delivered
 * together, in a microtask: one pass over the sessions and one write per socket per commit.
 */
export class SseHub implements LiveLog {
  private readonly sessions = new Set<SseSession>();
  private readonly pinger: NodeJS.Timeout;
  private entries: LiveEntry[] = [];
  /** The position of entries[0]. */
  private first = 0;
  private bytes = 0;
  private deliveryQueued = false;

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

  get end(): number {
    return this.first + this.entries.length;
  }

  get endOffset(): number {
    return this.bytes;
  }

  at(position: number): LiveEntry | undefined {
    return position >= this.first ? this.entries[position - this.first] : undefined;
  }

  add(session: SseSession): void {
    this.sessions.add(session);
    session.onClose(() => {
      this.sessions.delete(session);
      if (this.sessions.size === 0) this.forgetBefore(this.end);
    });
  }

  /** Closes every stream (on shutdown): clients reconnect elsewhere with Last-Event-ID. */
  close(): void {
    clearInterval(this.pinger);
    this.store.events.off('event', this.append);
    for (const session of [...this.sessions]) session.close();
    this.entries = [];
  }

  private readonly append = (event: StoredEvent): void => {
    // A session opened later starts at the end: with no session, there is nobody to keep it for.
    if (this.sessions.size === 0) return;
    const frame = eventFrame(event);
    this.entries.push({ event, frame, offset: this.bytes });
    this.bytes += frame.length;
    if (this.deliveryQueued) return;
    this.deliveryQueued = true;
    queueMicrotask(this.deliver);
  };

  private readonly deliver = (): void => {
    this.deliveryQueued = false;
    let oldest = this.end;
    for (const session of this.sessions) {
      session.catchUp();
      // A session that closed here has left the set; one dropped is not waited for.
      if (!session.isClosed) oldest = Math.min(oldest, session.position);
    }
    this.forgetBefore(oldest);
  };

  /** Lets go of the entries every session has passed. */
  private forgetBefore(position: number): void {
    const passed = position - this.first;
    if (passed <= 0) return;
    if (passed >= this.entries.length) this.entries = [];
    else this.entries.splice(0, passed);
    this.first = position;
  }
}
