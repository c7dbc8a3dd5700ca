/**
 * The bench side of a peer's worker processes: starts them, sums their completion counts and
 * hands out the start times of latency jobs. Processes are the bench's own (processes.ts), so an
 * error or Ctrl-C stops them with everything else.
 */
import { fileURLToPath } from 'node:url';
import { sleep, spawnNode, waitUntil, type Started } from '../harness/processes.js';
import type { FromPeerWorker, ToPeerWorker } from './protocol.js';

export class PeerWorkers {
  private readonly completed: number[];
  private readonly lastAt: number[];
  private readonly starts = new Map<number, number>();
  private readonly ready: Promise<void>[];
  private failure: Error | undefined;

  private constructor(readonly procs: Started[]) {
    this.completed = procs.map(() => 0);
    this.lastAt = procs.map(() => 0);
    this.ready = procs.map((proc, i) => this.listen(proc, i));
  }

  /** `script`: a worker file of this folder, e.g. 'bullmq-worker'. */
  static async start(script: string, count: number, args: string[]): Promise<PeerWorkers> {
    const file = fileURLToPath(new URL(`./${script}.js`, import.meta.url));
    const workers = new PeerWorkers(
      Array.from({ length: count }, (_, i) => spawnNode(`${script} ${i + 1}`, file, args, { ipc: true })),
    );
    try {
      await Promise.all(workers.ready);
    } catch (err) {
      await workers.stop();
      throw err;
    }
    return workers;
  }

  private listen(proc: Started, i: number): Promise<void> {
    return new Promise((resolve, reject) => {
      proc.child.on('message', (message: FromPeerWorker) => {
        if (message.type === 'ready') resolve();
        else if (message.type === 'progress') {
          this.completed[i] = message.completed;
          this.lastAt[i] = message.lastAt;
        } else if (message.type === 'started') this.starts.set(message.sample, message.at);
        else if (message.type === 'error') {
          this.failure ??= new Error(`${proc.name}: ${message.message}`);
          reject(this.failure);
        }
      });
      void proc.exited.then((code) => {
        this.failure ??= new Error(`${proc.name} exited (${code}):\n${proc.output()}`);
        reject(this.failure);
      });
    });
  }

  /** Resolves once the workers together completed `n` jobs; answers when the last one was (wallNow ms). */
  async completedAll(n: number, timeoutMs: number): Promise<number> {
    await waitUntil(
      () => {
        if (this.failure) throw this.failure;
        return this.total() >= n;
      },
      { timeoutMs, intervalMs: 5, what: `${n} jobs completed (${this.total()} so far)` },
    );
    if (this.total() !== n) throw new Error(`${this.total()} jobs completed, ${n} were added: some ran twice`);
    return Math.max(...this.lastAt);
  }

  /** When the handler of latency job `sample` began (wallNow ms). */
  async started(sample: number, timeoutMs: number): Promise<number> {
    return waitUntil(
      () => {
        if (this.failure) throw this.failure;
        return this.starts.get(sample);
      },
      { timeoutMs, intervalMs: 1, what: `latency job ${sample} to start` },
    );
  }

  pids(): number[] {
    return this.procs.map((p) => p.pid);
  }

  total(): number {
    return this.completed.reduce((a, b) => a + b, 0);
  }

  async stop(): Promise<void> {
    const stop: ToPeerWorker = { type: 'stop' };
    await Promise.all(
      this.procs.map(async (proc) => {
        // Closing lets the library finish its own bookkeeping; SIGTERM, then SIGKILL, if it dawdles.
        if (proc.child.connected) proc.child.send(stop);
        await Promise.race([proc.exited, sleep(5_000)]);
        await proc.stop(5_000);
      }),
    );
  }
}
