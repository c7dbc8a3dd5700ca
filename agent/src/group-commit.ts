import type Database from 'better-sqlite3';

interface Queued {
  write: () => unknown;
  resolve: (value: unknown) => void;
  reject: (reason: unknown) => void;
}

type Result = { ok: true; value: unknown } | { ok: false; error: unknown };

/**
 * Group commit for the outbox: the writes queued during one turn of the event loop run in one
 * transaction, so they share one commit (one WAL write, one sync) instead of paying one each.
 * With CONCURRENCY > 1 that turn typically holds a whole claimed batch's `started` rows, or the
 * outcomes of every timer that fired together. A caller hears back only after the commit:
 * `await run(...)` means "on disk", so `started` is durable before the executor runs and an
 * outcome before it is reported.
 *
 * Every outbox write changes at most one row with one statement, so a write that throws has
 * changed nothing (SQLite undoes the failed statement alone) and the others still commit. Only if
 * SQLite gave up the whole transaction (disk full, I/O error) does every caller get the error.
 */
export class GroupCommit {
  private queue: Queued[] = [];
  private scheduled: NodeJS.Immediate | undefined;
  /** Made once: building a better-sqlite3 transaction function costs more than running it. */
  private readonly commit: Database.Transaction<(batch: Queued[]) => Result[]>;

  constructor(private readonly db: Database.Database) {
    this.commit = db.transaction((batch: Queued[]) =>
      batch.map(({ write }): Result => {
        try {
          return { ok: true, value: write() };
        } catch (error) {
          if (!this.db.inTransaction) throw error;
          return { ok: false, error };
        }
      }),
    );
  }

  run<T>(write: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ write, resolve: resolve as (value: unknown) => void, reject });
      this.scheduled ??= setImmediate(() => this.flush());
    });
  }

  /** Commits whatever is queued now (also called before the database closes). */
  flush(): void {
    clearImmediate(this.scheduled);
    this.scheduled = undefined;
    const batch = this.queue;
    if (batch.length === 0) return;
    this.queue = [];
    let results: Result[];
    try {
      results = this.commit.immediate(batch);
    } catch (error) {
      // The commit itself failed (disk full, database closed): nothing of the batch is stored.
      for (const { reject } of batch) reject(error);
      return;
    }
    batch.forEach(({ resolve, reject }, i) => {
      const result = results[i];
      if (result?.ok) resolve(result.value);
      else reject(result?.error);
    });
  }
}
