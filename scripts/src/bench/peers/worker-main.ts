/**
 * The worker-process side shared by the peers' workers: reports readiness, throttled completion
 * counts and latency-job starts to the bench, and stops when asked. A worker file only plugs its
 * queue library in (`start`).
 */
import { wallNow, type FromPeerWorker, type PeerJobData, type ToPeerWorker } from './protocol.js';

export interface PeerHooks {
  /** Call first thing in the job handler. */
  jobStarted: (data: PeerJobData) => void;
  /** Call once the library has written the job's completion back. */
  jobCompleted: () => void;
  /** A job failed: the run is void, the bench is told and this worker exits. */
  jobFailed: (err: unknown) => void;
}

const PROGRESS_EVERY_MS = 20;

function send(message: FromPeerWorker): void {
  process.send?.(message);
}

export function runPeerWorker(start: (hooks: PeerHooks) => Promise<{ close: () => Promise<void> }>): void {
  let completed = 0;
  let lastAt = 0;
  let reported = 0;
  const fail = (err: unknown) => {
    send({ type: 'error', message: err instanceof Error ? (err.stack ?? err.message) : String(err) });
    setTimeout(() => process.exit(1), 100);
  };
  const hooks: PeerHooks = {
    jobStarted: (data) => {
      if (data.sample !== undefined) send({ type: 'started', sample: data.sample, at: wallNow() });
    },
    jobCompleted: () => {
      completed++;
      lastAt = wallNow();
    },
    jobFailed: fail,
  };
  // One message per 20 ms, not per job: the bench should not cost the worker what it measures.
  const timer = setInterval(() => {
    if (completed === reported) return;
    reported = completed;
    send({ type: 'progress', completed, lastAt });
  }, PROGRESS_EVERY_MS);
  start(hooks).then((library) => {
    send({ type: 'ready' });
    process.on('message', (message: ToPeerWorker) => {
      if (message.type !== 'stop') return;
      clearInterval(timer);
      library.close().then(() => process.exit(0), fail);
    });
  }, fail);
  // The bench went away: do not outlive it.
  process.on('disconnect', () => process.exit(0));
}

/** `--name=value` arguments of a worker. */
export function workerArgs(): Map<string, string> {
  const args = new Map<string, string>();
  for (const arg of process.argv.slice(2)) {
    const match = /^--([^=]+)=(.*)$/.exec(arg);
    if (match) args.set(match[1] as string, match[2] as string);
  }
  return args;
}

export function requiredArg(args: Map<string, string>, name: string): string {
  const value = args.get(name);
  if (value === undefined) throw new Error(`--${name} is required`);
  return value;
}
