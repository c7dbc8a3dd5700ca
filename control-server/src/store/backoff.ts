const BASE_MS = 1_000;
const CAP_MS = 60_000;

/**
 * Delay before attempt `attempts + 1`: 1 s, 2 s, 4 s …, each scaled by a jitter factor in
 * [0.75, 1.25) so that commands failed together do not retry together, and capped at 60 s after
 * the jitter, so no delay is ever longer than the cap.
 */
export function retryBackoffMs(attempts: number, random: () => number = Math.random): number {
  const exponential = Math.min(CAP_MS, BASE_MS * 2 ** Math.max(0, attempts - 1));
  return Math.min(CAP_MS, Math.round(exponential * (0.75 + random() * 0.5)));
}
