/** A callback due at a moment of the monotonic clock; cancel it with SharedTimer.cancel. */
export interface Due {
  at: number;
  fire: () => void;
}

/**
 * One timer for many deadlines: every running attempt has a timeout, a heartbeat due and a lease
 * deadline, and almost every attempt ends long before any of them (a DELAY 0 ends in the turn it
 * starts). Arming and clearing three Node timers per command cost more than the command; here a
 * deadline is an entry in a set and the one timer is re-armed only for an earlier deadline.
 * Cancelling leaves the timer as it is: when it fires with nothing due it re-arms for the earliest
 * entry left, or stops. Each fire scans the entries (at most the commands running).
 *
 * Times are `performance.now()` (monotonic): a step of the wall clock moves no deadline. The timer
 * is unref'd: what runs (executors, polls) keeps the process alive, not a pending deadline.
 */
export class SharedTimer {
  private readonly entries = new Set<Due>();
  private timer: NodeJS.Timeout | undefined;
  private armedAt = Number.POSITIVE_INFINITY;

  /** Calls `fire` in `ms` (at the earliest), unless cancelled first. */
  after(ms: number, fire: () => void): Due {
    const due = { at: performance.now() + Math.max(0, ms), fire };
    this.entries.add(due);
    if (due.at < this.armedAt) this.arm(due.at);
    return due;
  }

  cancel(due: Due | undefined): void {
    if (due) this.entries.delete(due);
  }

  /** Entries not yet due nor cancelled (for tests). */
  get size(): number {
    return this.entries.size;
  }

  private arm(at: number): void {
    clearTimeout(this.timer);
    this.armedAt = at;
    // +1: a timer may fire a fraction of a millisecond early by performance.now().
    this.timer = setTimeout(() => this.run(), Math.max(0, Math.ceil(at - performance.now())) + 1);
    this.timer.unref();
  }

  private run(): void {
    this.timer = undefined;
    this.armedAt = Number.POSITIVE_INFINITY;
    const now = performance.now();
    const due: Due[] = [];
    let next = Number.POSITIVE_INFINITY;
    for (const entry of this.entries) {
      if (entry.at <= now) due.push(entry);
      else if (entry.at < next) next = entry.at;
    }
    for (const entry of due) this.entries.delete(entry);
    if (next < this.armedAt) this.arm(next);
    // After re-arming: a callback may add entries (a heartbeat's next beat). One that throws
    // still crashes the process, as a throw in its own timer would, but after the others ran.
    for (const entry of due) {
      try {
        entry.fire();
      } catch (err) {
        queueMicrotask(() => {
          throw err;
        });
      }
    }
  }
}

/** The agent's one timer for attempt timeouts, heartbeats and lease deadlines. */
export const attemptTimers = new SharedTimer();
