import { streamUrl } from './api.js';
import type { Command } from './types.js';

export type StreamState = 'connecting' | 'live' | 'reconnecting';

export interface StreamListener {
  /** One change, in event-id order, each id once. */
  change?: (command: Command, kind: 'status' | 'progress', id: number) => void;
  /** Events were lost (the log was pruned past our last id): reload what is shown. */
  reset?: () => void;
}

/** The browser retries a dropped stream itself; after a refused one, we open it again after this. */
const REOPEN_MS = 2000;

/**
 * The one `GET /events` stream of the page, from an event id on. Every event is handed on once:
 * a resume (the browser's own, with Last-Event-ID, or ours after the server was down) replays from
 * the last id seen, and an id at or below it is dropped, so there is no duplicate and no gap.
 */
export class LiveStream {
  lastEventId = 0;
  /** Every id handed on, for the browser tests' duplicate/gap check (bounded). */
  readonly seenIds: number[] = [];
  private source: EventSource | undefined;
  private readonly listeners = new Set<StreamListener>();
  private reopenTimer: number | undefined;
  private stateListener: (state: StreamState) => void = () => {};

  start(fromId: number, onState: (state: StreamState) => void): void {
    this.lastEventId = fromId;
    this.stateListener = onState;
    this.open();
  }

  subscribe(listener: StreamListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  stop(): void {
    this.source?.close();
    this.source = undefined;
    clearTimeout(this.reopenTimer);
  }

  private open(): void {
    this.stateListener('connecting');
    const source = new EventSource(streamUrl('/events', { lastEventId: String(this.lastEventId) }));
    this.source = source;
    source.onopen = () => this.stateListener('live');
    source.onerror = () => {
      if (source.readyState === EventSource.CLOSED) {
        // A refused reconnect (the server answered an error page while starting): try again.
        this.reopenTimer = window.setTimeout(() => this.open(), REOPEN_MS);
      }
      this.stateListener('reconnecting');
    };
    const onChange = (kind: 'status' | 'progress') => (event: MessageEvent<string>) => {
      const id = Number(event.lastEventId);
      if (!(id > this.lastEventId)) return;
      this.lastEventId = id;
      if (this.seenIds.length < 1_000_000) this.seenIds.push(id);
      const command = JSON.parse(event.data) as Command;
      for (const listener of this.listeners) listener.change?.(command, kind, id);
    };
    source.addEventListener('status', onChange('status'));
    source.addEventListener('progress', onChange('progress'));
    source.addEventListener('reset', (event: MessageEvent<string>) => {
      const { oldestEventId } = JSON.parse(event.data) as { oldestEventId: number };
      this.lastEventId = Math.max(this.lastEventId, oldestEventId - 1);
      for (const listener of this.listeners) listener.reset?.();
    });
  }
}
