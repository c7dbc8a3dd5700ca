import type { FastifyBaseLogger } from 'fastify';
import type { CommandStore, StoredEvent } from './store/store.js';

export interface LeaseReaperOptions {
  leaseMs: number;
  /** Called when commands may have become available (a lease expired, a backoff ended). */
  onAvailable: () => void;
  log: FastifyBaseLogger;
}

const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Requeues commands whose lease ran out and wakes waiting polls when a retry backoff ends.
 * One timer, armed for the next moment something is due and re-armed by events, so an idle
 * server does no work. For one LEASE_MS after start it expires nothing, so that agents which
 * kept working while the server was down can reconnect and renew.
 */
export class LeaseReaper {
  private timer: NodeJS.Timeout | undefined;
  private armedAt: number | undefined;
  private readonly graceUntil: number;
  private stopped = false;
  private running: Promise<void> | undefined;

  constructor(
    private readonly store: CommandStore,
    private readonly options: LeaseReaperOptions,
  ) {
    this.graceUntil = Date.now() + options.leaseMs;
  }

  start(): void {
    this.store.events.on('event', this.onEvent);
    void this.tick();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.store.events.off('event', this.onEvent);
    clearTimeout(this.timer);
    await this.running;
  }

  private readonly onEvent = (event: StoredEvent): void => {
    const { status, leaseExpiresAt, availableAt } = event.command;
    const due =
      status === 'RUNNING' && leaseExpiresAt !== null
        ? Math.max(Date.parse(leaseExpiresAt), this.graceUntil)
        : status === 'PENDING'
          ? Date.parse(availableAt)
          : undefined;
    if (due !== undefined && due > Date.now() && (this.armedAt === undefined || due < this.armedAt)) {
      this.arm(due);
    }
  };

  private arm(at: number): void {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.armedAt = at;
    const delay = Math.min(MAX_TIMER_MS, Math.max(0, at - Date.now()) + 1);
    this.timer = setTimeout(() => void this.tick(), delay);
  }

  private async tick(): Promise<void> {
    if (this.stopped || this.running) return;
    this.armedAt = undefined;
    this.running = this.reapAndRearm().finally(() => (this.running = undefined));
    await this.running;
  }

  private async reapAndRearm(): Promise<void> {
    try {
      if (Date.now() >= this.graceUntil) {
        const changed = await this.store.requeueExpired();
        for (const command of changed) {
          this.options.log.warn(
            { commandId: command.id, agentId: command.agentId, status: command.status },
            'lease expired',
          );
        }
      }
      this.options.onAvailable();
      const next = await this.store.nextWakeAt();
      const lease = next.leaseExpiresAt === undefined ? undefined : Math.max(next.leaseExpiresAt, this.graceUntil);
      const candidates = [lease, next.availableAt].filter((t): t is number => t !== undefined);
      if (candidates.length) this.arm(Math.min(...candidates));
    } catch (err) {
      // The database may be briefly unusable; try again soon rather than never.
      this.options.log.error({ err }, 'lease reaper failed; retrying in 1 s');
      this.arm(Date.now() + 1000);
    }
  }
}
