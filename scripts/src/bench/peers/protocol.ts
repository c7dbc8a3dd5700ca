/**
 * What a peer's worker process and the bench say to each other over IPC. Both sides time events on
 * the wall clock with sub-millisecond resolution (`wallNow`), so an add timed in the bench and a
 * start timed in a worker can be subtracted.
 */

/** Job data: throughput jobs carry no id; a latency job carries its sample number. */
export interface PeerJobData {
  ms: 0;
  sample?: number;
}

export type FromPeerWorker =
  | { type: 'ready' }
  /** Completions so far, and when the last one was written back (wallNow ms). Sent at most every 20 ms. */
  | { type: 'progress'; completed: number; lastAt: number }
  /** A latency job's handler began (wallNow ms). */
  | { type: 'started'; sample: number; at: number }
  | { type: 'error'; message: string };

export type ToPeerWorker = { type: 'stop' };

/** Milliseconds on the wall clock, comparable between processes, with performance.now()'s resolution. */
export function wallNow(): number {
  return performance.timeOrigin + performance.now();
}
