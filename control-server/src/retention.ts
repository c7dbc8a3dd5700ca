import type { FastifyBaseLogger } from 'fastify';
import type { CommandStore, StoredEvent } from './store/store.js';

export interface RetentionOptions {
  /** Finished commands older than this are deleted; 0 keeps them forever (nothing is started). */
  retentionMs: number;
  log: FastifyBaseLogger;
  /** Injected for tests. */
  now?: () => number;
}

/**
 * At most this many commands per transaction: ~2–3 ms of the event loop at 1 M rows
 * (README, "What is kept"), so a server deleting a large backlog still answers in between.
 */
export const RETENTION_BATCH = 500;
const MAX_TIMER_MS = 2 ** 31 - 1;
const RETRY_AFTER_ERROR_MS = 10_000;

/**
 * Deletes COMPLETED and FAILED commands once their finishedAt is older than RETENTION (SPEC §7).
 * Like the lease reaper, one timer armed for the moment the oldest finished command comes due,
 * re-armed by events when a command finishes and none is armed, so an idle server does no work.
 * While a batch comes back full there is more due: the next batch runs after the event loop has
 * served what waits (setImmediate), never in a loop that holds it.
 */
export class Retention {
  private timer: NodeJS.Timeout | undefined;
  private immediate: NodeJS.Immediate | undefined;
  private armedAt: number | undefined;
  private stopped = false;
  private running: Promise<void> | undefined;
  private readonly now: () => number;

  constructor(
    private readonly store: CommandStore,
    private readonly options: RetentionOptions,
  ) {
    this.now = options.now ?? Date.now;
  }

  start(): void {
    if (this.options.retentionMs === 0) return;
    this.store.events.on('event', this.onEvent);
    void this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.store.events.off('event', this.onEvent);
    clearTimeout(this.timer);
    clearImmediate(this.immediate);
    await this.running;
  }

  private readonly onEvent = ({ command }: StoredEvent): void => {
    if (this.armedAt !== undefined || this.running || command.finishedAt === null) return;
    if (command.status !== 'COMPLETED' && command.status !== 'FAILED') return;
    this.arm(Date.parse(command.finishedAt) + this.options.retentionMs);
  };

  private arm(at: number): void {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.armedAt = at;
    // A far date (RETENTION=30d) wakes at the timer's limit and re-arms from the database.
    const delay = Math.min(MAX_TIMER_MS, Math.max(0, at - this.now()) + 1);
    this.timer = setTimeout(() => void this.run(), delay);
  }

  private async run(): Promise<void> {
    this.immediate = undefined;
    if (this.stopped || this.running) return;
    this.armedAt = undefined;
    this.running = this.deleteAndRearm().finally(() => (this.running = undefined));
    await this.running;
  }

  private async deleteAndRearm(): Promise<void> {
    try {
      // `+ 1`: a command finished exactly RETENTION ago is due. The timer is armed for that very
      // millisecond (+1), and Date.now() may read it a millisecond early: with a strict bound such
      // a pass deleted nothing and armed itself again at once (two passes for one command).
      const deleted = await this.store.deleteFinishedBefore(this.now() - this.options.retentionMs + 1, RETENTION_BATCH);
      if (deleted > 0) this.options.log.debug({ deleted }, 'retention: deleted finished commands');
      if (deleted === RETENTION_BATCH) {
        if (!this.stopped) this.immediate = setImmediate(() => void this.run());
        return;
      }
      const oldest = await this.store.oldestFinishedAt();
      if (oldest !== undefined) this.arm(oldest + this.options.retentionMs);
    } catch (err) {
      this.options.log.error({ err }, `retention failed; trying again in ${RETRY_AFTER_ERROR_MS / 1000} s`);
      this.arm(this.now() + RETRY_AFTER_ERROR_MS);
    }
  }
}
