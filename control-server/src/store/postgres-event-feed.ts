import type { StoredEvent } from './store.js';

export interface EventFeedOptions {
  /** Reads the log: events after `afterSeq`, in seq order. */
  read: (afterSeq: number, limit: number) => Promise<StoredEvent[]>;
  emit: (event: StoredEvent) => void;
  onError: (err: unknown) => void;
}

const PAGE = 500;

/**
 * Hands this replica's 'event' listeners every logged event once, in seq order, whichever replica
 * wrote it. This replica's own events come straight from its commits; a gap before them (events
 * another replica committed first) and everything announced by a notification is read from the
 * log. Reading up to any committed id is safe because ids are in commit order: everything below
 * it is already visible.
 */
export class EventFeed {
  private chain: Promise<void> = Promise.resolve();

  /** `delivered`: the last id already in the log when the feed starts; it delivers what follows. */
  constructor(
    private delivered: number,
    private readonly options: EventFeedOptions,
  ) {}

  get lastDelivered(): number {
    return this.delivered;
  }

  /** Events this replica just committed (consecutive ids). Never rejects. */
  deliver(events: readonly StoredEvent[]): Promise<void> {
    const last = events.at(-1)?.seq;
    if (last === undefined) return this.chain;
    return this.enqueue(async () => {
      const first = events[0]!.seq;
      if (first > this.delivered + 1) await this.readUpTo(first - 1);
      for (const event of events) this.emitNext(event);
    });
  }

  /** A notification (or a re-check) says the log holds events up to `lastSeq`. Never rejects. */
  heard(lastSeq: number): Promise<void> {
    if (lastSeq <= this.delivered) return this.chain;
    return this.enqueue(() => this.readUpTo(lastSeq));
  }

  /** Resolves once everything asked so far has been delivered (or has failed). */
  settled(): Promise<void> {
    return this.chain;
  }

  private enqueue(task: () => Promise<void>): Promise<void> {
    this.chain = this.chain.then(task).catch((err: unknown) => this.options.onError(err));
    return this.chain;
  }

  private async readUpTo(target: number): Promise<void> {
    while (this.delivered < target) {
      const events = await this.options.read(this.delivered, PAGE);
      // Nothing there any more (pruned): go on after the gap.
      if (events.length === 0) this.delivered = target;
      for (const event of events) this.emitNext(event);
    }
  }

  private emitNext(event: StoredEvent): void {
    if (event.seq <= this.delivered) return; // already delivered through the log
    this.delivered = event.seq;
    try {
      this.options.emit(event);
    } catch (err) {
      this.options.onError(err);
    }
  }
}
