import type { Logger } from 'pino';

/**
 * What the agent did lately, as one `info` line every `everyMs` (per-command lines are `debug`):
 * commands claimed, completed, failed, outcomes replayed from the outbox and leases lost since the
 * last line, with totals. One timer for the whole agent (unref'd: it keeps nothing alive), and no
 * line for an interval in which nothing happened, so an idle agent stays quiet.
 */
export class ActivitySummary {
  claimed = 0;
  completed = 0;
  failed = 0;
  replayed = 0;
  leaseLost = 0;
  private readonly totals = { claimed: 0, completed: 0, failed: 0, replayed: 0, leaseLost: 0 };
  private timer: NodeJS.Timeout | undefined;
  private since = Date.now();

  constructor(
    private readonly log: Logger,
    private readonly everyMs: number,
  ) {}

  start(): void {
    if (this.timer) return;
    this.since = Date.now();
    this.timer = setInterval(() => this.flush(), this.everyMs);
    this.timer.unref();
  }

  /** Stops the timer and logs what the last interval held, if anything. */
  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.flush();
  }

  private flush(): void {
    const now = { claimed: this.claimed, completed: this.completed, failed: this.failed, replayed: this.replayed, leaseLost: this.leaseLost };
    this.claimed = this.completed = this.failed = this.replayed = this.leaseLost = 0;
    const seconds = Math.max(1, Math.round((Date.now() - this.since) / 1000));
    this.since = Date.now();
    if (Object.values(now).every((n) => n === 0)) return;
    for (const key of Object.keys(now) as Array<keyof typeof now>) this.totals[key] += now[key];
    const extra = [now.replayed > 0 ? `, replayed ${now.replayed}` : '', now.leaseLost > 0 ? `, lease lost ${now.leaseLost}` : ''].join('');
    this.log.info(
      { last: { seconds, ...now }, total: { ...this.totals } },
      `last ${seconds} s: claimed ${now.claimed}, completed ${now.completed}, failed ${now.failed}${extra}`,
    );
  }
}
