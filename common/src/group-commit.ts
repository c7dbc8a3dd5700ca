/**
 * Group commit for better-sqlite3, shared by the server's store and the agent's outbox: the
 * writes queued during one turn of the event loop run in one IMMEDIATE transaction, so they share
 * one commit (one WAL write, one sync) instead of paying one each. Each write runs in its own
 * savepoint, so one that throws (a 409, say) undoes only itself and the others still commit.
 * A caller hears back only after the commit: `await run(...)` means "on disk".
 *
 * Typed structurally, so this package needs no dependency on better-sqlite3.
 */
interface TransactionFn<A extends unknown[], R> {
  (...args: A): R;
  immediate(...args: A): R;
}

export interface TransactionalDatabase {
  transaction<A extends unknown[], R>(fn: (...args: A) => R): TransactionFn<A, R>;
  readonly inTransaction: boolean;
}

interface Queued {
  write: () => unknown;
  resolve: (value: unknown) => void;
  reject: (reason: unknown) => void;
}

type Result = { ok: true; value: unknown } | { ok: false; error: unknown };

export class GroupCommit {
  private queue: Queued[] = [];
  private scheduled: NodeJS.Immediate | undefined;
  /** Made once: building a better-sqlite3 transaction function costs more than running it. */
  private readonly commit: TransactionFn<[Queued[]], Result[]>;
  private readonly savepoint: TransactionFn<[() => unknown], unknown>;

  constructor(private readonly db: TransactionalDatabase) {
    // Nested inside `commit`, better-sqlite3 runs this as a SAVEPOINT.
    this.savepoint = db.transaction((write: () => unknown) => write());
    this.commit = db.transaction((batch: Queued[]) =>
      batch.map(({ write }): Result => {
        try {
          return { ok: true, value: this.savepoint(write) };
        } catch (error) {
          // SQLite gave up the whole transaction (disk full, I/O error): fail the batch.
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
