/**
 * Bench workers: load generators that run as their own processes (so the server's numbers are the
 * server's and the load does not share the bench's event loop), talking to the bench over IPC.
 */
import { spawnNode, type Started } from './processes.js';
import { workerMain } from './paths.js';

export interface WorkerMessage {
  type: string;
  [key: string]: unknown;
}

export interface Worker {
  proc: Started;
  send: (message: WorkerMessage) => void;
  /** Resolves with the next message of this type (messages that arrived earlier are kept). */
  next: <T extends { type: string } = WorkerMessage>(type: string, timeoutMs?: number) => Promise<T>;
}

export function startWorker(name: string, args: string[], nodeArgs: string[] = []): Worker {
  const proc = spawnNode(name, workerMain(name), args, { ipc: true, nodeArgs, env: { UV_THREADPOOL_SIZE: '4' } });
  const inbox: WorkerMessage[] = [];
  const wakers = new Set<() => void>();
  proc.child.on('message', (message: WorkerMessage) => {
    inbox.push(message);
    for (const wake of [...wakers]) wake();
  });
  const next = <T extends { type: string }>(type: string, timeoutMs = 120_000) =>
    new Promise<T>((resolve, reject) => {
      let done = false;
      const finish = (outcome: () => void) => {
        done = true;
        wakers.delete(wake);
        clearTimeout(timer);
        outcome();
      };
      const take = (): boolean => {
        if (done) return true;
        const index = inbox.findIndex((m) => m.type === type || m.type === 'error');
        if (index < 0) return false;
        const [message] = inbox.splice(index, 1) as [WorkerMessage];
        if (message.type === 'error') finish(() => reject(new Error(`${name}: ${String(message.message)}`)));
        else finish(() => resolve(message as T));
        return true;
      };
      const wake = () => void take();
      const timer = setTimeout(
        () => finish(() => reject(new Error(`${name}: no "${type}" within ${timeoutMs} ms\n${proc.output()}`))),
        timeoutMs,
      );
      if (take()) return;
      wakers.add(wake);
      // IPC messages sent just before exit arrive before 'exit'; give them a moment anyway.
      void proc.exited.then(() =>
        setTimeout(() => {
          if (!take()) finish(() => reject(new Error(`${name} exited before sending "${type}":\n${proc.output()}`)));
        }, 50),
      );
    });
  return {
    proc,
    send: (message) => {
      if (proc.child.connected) proc.child.send(message);
    },
    next,
  };
}

/** In a worker: sends a message to the bench. */
export function toBench(message: WorkerMessage): void {
  process.send?.(message);
}

/** In a worker: reports a crash to the bench and exits. */
export function workerFailed(err: unknown): never {
  toBench({ type: 'error', message: err instanceof Error ? err.stack ?? err.message : String(err) });
  setTimeout(() => process.exit(1), 100);
  throw err;
}
