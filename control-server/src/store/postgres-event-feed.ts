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
 * wrote it. This replica's own events come straight from its commits, another replica's with its
 * notification when they fit in it (postgres-notice.ts); a gap before them (events committed
 * first elsewhere) and whatever a notification does not carry is read from the log. Reading up
 * to any committed id is safe because ids are in commit order: everything below it is visible.
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
    return this.heard(last, () => events);
  }

  /**
   * A notification (or a re-check) says the log holds events up to `lastSeq`; `carried`, when
   * given, answers the consecutive events ending at `lastSeq` that came with it (undefined: none
   * did), asked only if some of them are still to deliver. Never rejects.
   */
  heard(lastSeq: number, carried?: () => readonly StoredEvent[] | undefined): Promise<void> {
    if (lastSeq <= this.delivered) return this.chain;
    return this.enqueue(async () => {
      const events = lastSeq > this.delivered ? carried?.() : undefined;
      const first = events?.[0]?.seq;
      if (events && first !== undefined) {
        if (first > this.delivered + 1) await this.readUpTo(first - 1);
        for (const event of events) this.emitNext(event);
      }
      await this.readUpTo(lastSeq);
    });
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
