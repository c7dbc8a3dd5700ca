import type { CommandStore, StoredEvent } from '../store/store.js';
import type { SseSession } from './session.js';

/**
 * Every open SSE stream. One store listener fans each event out to all sessions, and one timer
 * pings them all, so 10 000 clients cost 10 000 sockets, not 10 000 listeners and timers.
 */
export class SseHub {
  private readonly sessions = new Set<SseSession>();
  private readonly pinger: NodeJS.Timeout;

  constructor(
    private readonly store: CommandStore,
    pingMs: number,
  ) {
    store.events.on('event', this.fanOut);
    this.pinger = setInterval(() => {
      for (const session of this.sessions) session.ping();
    }, pingMs);
    this.pinger.unref();
  }

  get size(): number {
    return this.sessions.size;
  }

  add(session: SseSession): void {
    this.sessions.add(session);
    session.onClose(() => this.sessions.delete(session));
  }

  /** Closes every stream (on shutdown): clients reconnect elsewhere with Last-Event-ID. */
  close(): void {
    clearInterval(this.pinger);
    this.store.events.off('event', this.fanOut);
    for (const session of [...this.sessions]) session.close();
  }

  private readonly fanOut = (event: StoredEvent): void => {
    for (const session of this.sessions) session.offer(event);
  };
}
