import { setImmediate as nextTurn } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { Outbox } from './outbox.js';

export interface OutboxPrunerOptions {
  outbox: Outbox;
  /** Settled rows older than this are forgotten (SPEC §7: 7 days). */
  retentionMs: number;
  /** How often the log is pruned while the agent runs. */
  everyMs: number;
  /** Rows deleted per statement; the event loop gets a turn between statements. */
  batchSize?: number;
  log?: Logger;
}

/** 7 days (SPEC §7). */
export const OUTBOX_RETENTION_MS = 7 * 24 * 60 * 60 * 1000;
/** Hourly: an agent at 1 000 commands/s settles 3.6 M rows an hour; a day's delay would be 86 M. */
export const OUTBOX_PRUNE_EVERY_MS = 60 * 60 * 1000;
/** About 1–3 ms of the event loop per batch (an indexed delete of rows of a few hundred bytes). */
const DEFAULT_BATCH = 500;

/**
 * Keeps the agent's log bounded while it runs, not only at start: at start and then every
 * `everyMs`, settled rows older than the retention are deleted in small batches, each one
 * indexed statement (its cost is what it deletes), with a turn of the event loop between them so
 * polls, heartbeats and reports never wait behind a long delete. The timer is unref'd: it never
 * keeps the process alive. `stop()` before the database closes.
 */
export class OutboxPruner {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<number> | undefined;
  private stopped = false;

  constructor(private readonly options: OutboxPrunerOptions) {}

  start(): void {
    if (this.timer || this.stopped) return;
    void this.run();
    this.timer = setInterval(() => void this.run(), this.options.everyMs).unref();
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** One pass, batch by batch; answers how many rows went. A pass already under way is joined, not doubled. */
  run(): Promise<number> {
    this.running ??= this.pass().finally(() => (this.running = undefined));
    return this.running;
  }

  private async pass(): Promise<number> {
    const { outbox, retentionMs, batchSize = DEFAULT_BATCH, log } = this.options;
    let total = 0;
    try {
      while (!this.stopped) {
        const deleted = outbox.prune(retentionMs, batchSize);
        total += deleted;
        if (deleted < batchSize) break;
        await nextTurn();
      }
      if (total > 0) log?.info(`outbox: forgot ${total} reported outcome(s) older than ${Math.round(retentionMs / 3_600_000)} h`);
    } catch (err) {
      // A full disk or a busy file: the next pass tries again; nothing depends on these rows going.
      log?.warn({ err }, `outbox: pruning failed: ${(err as Error).message}`);
    }
    return total;
  }
}
