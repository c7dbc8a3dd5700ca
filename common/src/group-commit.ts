/**
 * Group commit for better-sqlite3, shared by the server's store and the agent's outbox: the
 * writes queued during one turn of the event loop run in one IMMEDIATE transaction, so they share
 * one commit (one WAL write, one sync) instead of paying one each. Each write runs in its own
 * savepoint, so one that throws (a 409, say) undoes only itself and the others still commit.
 * A caller hears back only after the commit: `await run(...)` means "on disk".
 *
 * `beforeCommit`, when given, runs inside the transaction after the batch's writes; writes it
 * queues (with `run`) join the same transaction and the same commit. The server uses it to lease a
 * just-submitted command to a waiting poll in the submit's own commit, and to write what the
 * batch's writes add up to (its status counts) once per commit. `afterRollback` is told when a
 * commit failed as a whole, so such per-commit state is dropped with the batch; `afterCommit`
 * when one succeeded, before its writers hear back.
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

  constructor(
    private readonly db: TransactionalDatabase,
    private readonly options: { beforeCommit?: () => void; afterCommit?: () => void; afterRollback?: () => void } = {},
  ) {
    // Nested inside `commit`, better-sqlite3 runs this as a SAVEPOINT.
    this.savepoint = db.transaction((write: () => unknown) => write());
    this.commit = db.transaction((batch: Queued[]) => {
      const results = batch.map((queued) => this.runOne(queued));
      for (;;) {
        this.options.beforeCommit?.();
        if (this.queue.length === 0) return results;
        // Writes queued by the hook: run them in this transaction, and tell flush() to answer them.
        const more = this.queue;
        this.queue = [];
        batch.push(...more);
        results.push(...more.map((queued) => this.runOne(queued)));
      }
    });
  }

  private runOne({ write }: Queued): Result {
    try {
      return { ok: true, value: this.savepoint(write) };
    } catch (error) {
      // SQLite gave up the whole transaction (disk full, I/O error): fail the batch.
      if (!this.db.inTransaction) throw error;
      return { ok: false, error };
    }
  }

  /** No write is waiting for the next commit: a read now sees everything a write would. */
  get idle(): boolean {
    return this.queue.length === 0;
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
      this.options.afterRollback?.();
      for (const { reject } of batch) reject(error);
      return;
    }
    this.options.afterCommit?.();
    batch.forEach(({ resolve, reject }, i) => {
      const result = results[i];
      if (result?.ok) resolve(result.value);
      else reject(result?.error);
    });
  }
}
