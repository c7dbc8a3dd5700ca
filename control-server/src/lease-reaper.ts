import type { FastifyBaseLogger } from 'fastify';
import { ClockJumpDetector, systemClock, type Clock } from './clock.js';
import type { CommandStore, StoredEvent } from './store/store.js';

export interface LeaseReaperOptions {
  leaseMs: number;
  /** Called when commands may have become available (a lease expired, a backoff ended). */
  onAvailable: () => void;
  log: FastifyBaseLogger;
  /** The store must read the same wall clock. Injected in tests. */
  clock?: Clock;
}

const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Requeues commands whose lease ran out and wakes waiting polls when a retry backoff ends.
 * One timer, armed for the next moment something is due and re-armed by events, so an idle
 * server does no work. For one LEASE_MS after start it expires nothing, so that agents which
 * kept working while the server was down can reconnect and renew; the same after a forward step
 * of the wall clock (SPEC §7): leases are stored as wall-clock times, so a step of 10 minutes
 * would otherwise expire every live lease at once and hand their commands to a second agent
 * while the first still runs them.
 */
export class LeaseReaper {
  private timer: NodeJS.Timeout | undefined;
  private armedAt: number | undefined;
  private graceUntil: number;
  private readonly clock: Clock;
  private readonly jumps: ClockJumpDetector;
  private stopped = false;
  private running: Promise<void> | undefined;

  constructor(
    private readonly store: CommandStore,
    private readonly options: LeaseReaperOptions,
  ) {
    this.clock = options.clock ?? systemClock;
    // A step smaller than this shortens leases by less than a quarter of a lease: let it pass.
    this.jumps = new ClockJumpDetector(this.clock, Math.min(1000, options.leaseMs / 4));
    this.graceUntil = this.clock.wall() + options.leaseMs;
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
    if (due !== undefined && due > this.clock.wall() && (this.armedAt === undefined || due < this.armedAt)) {
      this.arm(due);
    }
  };

  private arm(at: number): void {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.armedAt = at;
    const delay = Math.min(MAX_TIMER_MS, Math.max(0, at - this.clock.wall()) + 1);
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
      this.noticeClockJump();
      // runAt and backoffs that have come: their commands become claimable (a bounded batch each).
      while (await this.store.promoteDue());
      if (this.clock.wall() >= this.graceUntil) {
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
      this.arm(this.clock.wall() + 1000);
    }
  }

  /**
   * Checked before every expiry pass, the only place leases are expired: a jump that happened
   * since the previous pass is noticed before it can expire anything. Timers run on the
   * monotonic clock, so the pass due next still comes on time.
   */
  private noticeClockJump(): void {
    const jump = this.jumps.forwardJump();
    if (jump === 0) return;
    this.graceUntil = Math.max(this.graceUntil, this.clock.wall() + this.options.leaseMs);
    this.options.log.warn(
      { jumpMs: Math.round(jump), graceUntil: new Date(this.graceUntil).toISOString() },
      'the wall clock stepped forward; no lease expires for one LEASE_MS so agents can renew',
    );
  }
}
