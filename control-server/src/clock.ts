import { performance } from 'node:perf_hooks';

/**
 * The two clocks the server reads. Leases and backoffs are stored as wall-clock times (they must
 * survive a restart and mean the same to every reader of the database); the monotonic clock only
 * ever moves forward at the rate of real time, so comparing the two reveals a step of the wall
 * clock (NTP correcting a wrong time, a VM resumed after a pause). Injected in tests.
 */
export interface Clock {
  /** Milliseconds since the epoch, as Date.now(). */
  wall(): number;
  /** Milliseconds from an arbitrary origin that never jumps, as performance.now(). */
  monotonic(): number;
}

export const systemClock: Clock = {
  wall: () => Date.now(),
  monotonic: () => performance.now(),
};

/**
 * Measures how far the wall clock has stepped forward, beyond the time that really passed, since
 * the last reading. A step smaller than `thresholdMs` is ignored: the two clocks drift apart by a
 * few ms between readings (NTP slews the wall clock by up to 0.05 %).
 */
export class ClockJumpDetector {
  private lastWall: number;
  private lastMonotonic: number;

  constructor(
    private readonly clock: Clock,
    private readonly thresholdMs: number,
  ) {
    this.lastWall = clock.wall();
    this.lastMonotonic = clock.monotonic();
  }

  /** The forward step of the wall clock since the previous call, or 0 when there was none. */
  forwardJump(): number {
    const wall = this.clock.wall();
    const monotonic = this.clock.monotonic();
    const step = wall - this.lastWall - (monotonic - this.lastMonotonic);
    this.lastWall = wall;
    this.lastMonotonic = monotonic;
    return step > this.thresholdMs ? step : 0;
  }
}
