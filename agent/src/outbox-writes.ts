import type Database from 'better-sqlite3';
import type { GroupCommit } from '@agent-executor/common/group-commit';
import type { Outbox, Plan } from './outbox.js';
import type { Outcome } from './outcome.js';

interface Queued {
  op: () => unknown;
  resolve: (value: unknown) => void;
  reject: (reason: unknown) => void;
}

/**
 * The outbox transitions the worker and the reporter make, coalesced: every transition asked
 * for before the next group commit (the `started` rows of a claim, the `finished` rows of the
 * attempts that ended meanwhile, the `reported` marks of an answer) runs as ONE write of that
 * commit, so a command's started/finished/reported records share their commits with its
 * neighbours' instead of paying a savepoint each. `await` means committed, as with GroupCommit.
 *
 * Each transition is one guarded statement (begin: a read, then one statement), so one that
 * throws undoes only itself (SQLite rolls back the failing statement, not the transaction) and
 * fails only its own caller. An error that ends the transaction (disk full, I/O) fails them all.
 */
export class OutboxWrites {
  private queued: Queued[] | undefined;

  constructor(
    private readonly db: Database.Database,
    private readonly outbox: Outbox,
    private readonly commits: GroupCommit,
  ) {}

  /** Outbox.begin, in the next commit. */
  begin(commandId: string, leaseId: string, type: string): Promise<Plan> {
    return this.add(() => this.outbox.plan(commandId, leaseId, type));
  }

  finish(commandId: string, leaseId: string, outcome: Outcome): Promise<boolean> {
    return this.add(() => this.outbox.finish(commandId, leaseId, outcome));
  }

  replace(commandId: string, leaseId: string, outcome: Outcome): Promise<boolean> {
    return this.add(() => this.outbox.replace(commandId, leaseId, outcome));
  }

  markReported(commandId: string, leaseId: string): Promise<boolean> {
    return this.add(() => this.outbox.markReported(commandId, leaseId));
  }

  drop(commandId: string, leaseId: string, note: string): Promise<boolean> {
    return this.add(() => this.outbox.drop(commandId, leaseId, note));
  }

  /**
   * Commits what is queued now rather than at the end of this turn of the event loop: the worker
   * calls it once a claim's commands have all asked for their `started` rows, so that their
   * executors start without waiting for the rest of the turn's I/O callbacks.
   */
  flush(): void {
    this.commits.flush();
  }

  private add<T>(op: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      if (this.queued === undefined) this.write((this.queued = []));
      this.queued.push({ op, resolve: resolve as (value: unknown) => void, reject });
    });
  }

  /** One write of the next group commit: it runs whatever `batch` holds by then. */
  private write(batch: Queued[]): void {
    const results = this.commits.run(() => {
      // From here on, transitions asked for go to the next commit's write.
      if (this.queued === batch) this.queued = undefined;
      return batch.map(({ op }) => {
        try {
          return { ok: true as const, value: op() };
        } catch (error) {
          if (!this.db.inTransaction) throw error;
          return { ok: false as const, error };
        }
      });
    });
    results.then(
      (each) =>
        batch.forEach(({ resolve, reject }, i) => {
          const result = each[i];
          if (result?.ok) resolve(result.value);
          else reject(result?.error);
        }),
      (error: unknown) => {
        if (this.queued === batch) this.queued = undefined;
        for (const { reject } of batch) reject(error);
      },
    );
  }
}
