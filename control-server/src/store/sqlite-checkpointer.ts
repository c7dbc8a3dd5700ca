import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

/**
 * WAL checkpoints off the event loop. SQLite checkpoints in the connection that commits, once the
 * WAL passes `wal_autocheckpoint` pages: it copies them into the database file and syncs both
 * files, and the server's thread waits. Measured here: 5–30 ms of waiting (1.3 ms of CPU) every
 * ~40 commits of a busy server, at NORMAL as at FULL — the slowest answers were those that
 * waited for one.
 *
 * A worker thread with its own connection runs PASSIVE checkpoints instead, when told that
 * commits happened: PASSIVE never waits for, nor blocks, the writer or the readers, and a
 * checkpoint is crash-safe whichever connection runs it. The writer's own autocheckpoint stays
 * as a backstop at a higher mark (BACKSTOP_PAGES): under a writer that never pauses, the WAL is
 * rewound only when a write transaction starts with every frame copied, which a checkpoint
 * running beside the writer may never see. That backstop then finds nearly everything copied
 * already, so it costs the writer two syncs and few pages, and rarely.
 */
const COMMITS_PER_CHECKPOINT = 16;
/** The writer's own autocheckpoint mark, in pages (SQLite's default is 1 000). */
export const BACKSTOP_PAGES = 8_000;

/** Runs in the worker: CommonJS, given the driver's resolved path (a worker has no import map of its own). */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.path);
db.pragma('synchronous = ' + workerData.synchronous);
parentPort.on('message', (message) => {
  if (message === 'close') {
    db.close();
    parentPort.close();
    return;
  }
  try {
    parentPort.postMessage({ ok: true, result: db.pragma('wal_checkpoint(PASSIVE)')[0] });
  } catch (error) {
    parentPort.postMessage({ ok: false, message: String(error && error.message || error) });
  }
});
`;

export class SqliteCheckpointer {
  private readonly worker: Worker;
  private commitsSince = 0;
  private running = false;
  private closed = false;
  private readonly exited: Promise<void>;

  constructor(path: string, synchronous: 'FULL' | 'NORMAL', onError: (error: unknown) => void) {
    const driver = createRequire(import.meta.url).resolve('better-sqlite3');
    this.worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { driver, path, synchronous } });
    // It works only when told to: it must not keep a process alive that has nothing else to do.
    this.worker.unref();
    this.worker.on('message', (answer: { ok: boolean; message?: string }) => {
      this.running = false;
      if (!answer.ok) onError(new Error(`WAL checkpoint failed: ${answer.message}`));
      if (this.commitsSince >= COMMITS_PER_CHECKPOINT) this.start();
    });
    this.worker.on('error', onError);
    this.exited = new Promise((resolve) => this.worker.once('exit', () => resolve()));
  }

  /** A commit happened: every COMMITS_PER_CHECKPOINT of them, a checkpoint starts (one at a time). */
  committed(): void {
    if (++this.commitsSince >= COMMITS_PER_CHECKPOINT && !this.running) this.start();
  }

  private start(): void {
    if (this.closed) return;
    this.commitsSince = 0;
    this.running = true;
    this.worker.postMessage('checkpoint');
  }

  /** Closes the worker's connection and waits for the thread to end (before the writer closes its own). */
  async close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      // Held again, so the process waits for the thread to close its connection.
      this.worker.ref();
      this.worker.postMessage('close');
    }
    await this.exited;
  }
}
