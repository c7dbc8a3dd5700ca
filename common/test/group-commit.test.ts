/**
 * GroupCommit on a real SQLite file, watched from a second connection: what is on disk when each
 * promise settles, and what a failure undoes. (The outbox's own use of it is in agent/test.)
 *
 * Mutants `npm run mutate group-commit` leaves alive, and why they are equivalent:
 * - `if (batch.length === 0) return` removed: an empty batch commits an empty transaction, which
 *   nobody can observe.
 * - `result?.ok` / `result?.error` → `result.ok` / `result.error`: `commit` answers one result per
 *   queued write, so `result` is never undefined.
 *
 * Rejections are checked with `reason()`, not `rejects.toThrow(text)`: vitest 4 passes
 * `rejects.toThrow('x')` for a promise rejected with `undefined`, which hid a mutant that
 * rejected the failed write with no error at all.
 */
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { GroupCommit } from '../src/group-commit.js';
import { tempDir } from '../../test-support/processes.js';

let dir: ReturnType<typeof tempDir>;
let db: Database.Database;
let reader: Database.Database;

/** The rejection reason of `promise` (fails the test if it resolves). */
async function reason(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    (value) => expect.fail(`resolved with ${JSON.stringify(value)}`),
    (error: unknown) => error,
  );
}

const rows = () => (reader.prepare('SELECT v FROM t ORDER BY v').all() as { v: string }[]).map((r) => r.v);
const insert = (v: string) => () => db.prepare('INSERT INTO t (v) VALUES (?)').run(v).changes;

beforeEach(() => {
  dir = tempDir('group-commit');
  const path = join(dir.path, 'g.db');
  db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.exec('CREATE TABLE t (v TEXT PRIMARY KEY)');
  reader = new Database(path, { readonly: true });
});

afterEach(({ task }) => {
  reader.close();
  if (db.open) db.close();
  dir.cleanup(task.result?.state !== 'fail');
});

describe('GroupCommit', () => {
  it('runs nothing before the end of the turn, then commits the turn once: no write is visible alone', async () => {
    const commits = new GroupCommit(db);
    const seenFromOutside: string[][] = [];
    const a = commits.run(insert('a'));
    const b = commits.run(() => {
      // Inside the batch: the first write is done in this transaction but not committed.
      seenFromOutside.push(rows());
      expect(db.prepare('SELECT count(*) AS n FROM t').get()).toEqual({ n: 1 });
      return insert('b')();
    });
    expect(rows()).toEqual([]);
    expect(await Promise.all([a, b])).toEqual([1, 1]);
    expect(seenFromOutside).toEqual([[]]);
    expect(rows()).toEqual(['a', 'b']);
  });

  it('answers each caller with its own write\'s value, only once the commit is on disk', async () => {
    const commits = new GroupCommit(db);
    const answered: string[][] = [];
    const done = ['x', 'y', 'z'].map((v) => commits.run(() => v.toUpperCase()).then((value) => answered.push([value, ...rows()])));
    await Promise.all(done);
    expect(answered).toEqual([['X'], ['Y'], ['Z']]);
    const written = ['x', 'y'].map((v) => commits.run(insert(v)).then(() => rows()));
    expect(await Promise.all(written)).toEqual([['x', 'y'], ['x', 'y']]);
  });

  it('a write that throws is undone alone (its savepoint) and only its caller hears the error', async () => {
    const commits = new GroupCommit(db);
    const a = commits.run(insert('a'));
    const bad = commits.run(() => {
      insert('half')();
      throw new Error('conflict');
    });
    const c = commits.run(insert('c'));
    expect(await reason(bad)).toMatchObject({ message: 'conflict' });
    expect(await Promise.all([a, c])).toEqual([1, 1]);
    expect(rows()).toEqual(['a', 'c']);
  });

  it('a constraint error fails its write alone; the turn still commits', async () => {
    const commits = new GroupCommit(db);
    const first = commits.run(insert('dup'));
    const second = commits.run(insert('dup'));
    await expect(first).resolves.toBe(1);
    expect(await reason(second)).toMatchObject({ code: 'SQLITE_CONSTRAINT_PRIMARYKEY' });
    expect(rows()).toEqual(['dup']);
  });

  it('when SQLite gives up the whole transaction, every write of the turn fails and none is stored', async () => {
    const commits = new GroupCommit(db);
    const a = commits.run(insert('a'));
    // What SQLite does on an I/O error or a full disk mid-transaction: the transaction is gone.
    const abort = commits.run(() => {
      db.exec('ROLLBACK');
      throw new Error('disk I/O error');
    });
    const c = commits.run(insert('c'));
    const settled = await Promise.allSettled([a, abort, c]);
    expect(settled.map((s) => s.status)).toEqual(['rejected', 'rejected', 'rejected']);
    expect(settled.map((s) => (s as PromiseRejectedResult).reason.message)).toEqual([
      'disk I/O error',
      'disk I/O error',
      'disk I/O error',
    ]);
    // The write after the abort did not run on its own outside the transaction.
    expect(rows()).toEqual([]);
    // And the next turn works again.
    await expect(commits.run(insert('after'))).resolves.toBe(1);
    expect(rows()).toEqual(['after']);
  });

  it('beforeCommit runs inside the transaction after the writes; what it queues joins the same commit', async () => {
    const order: string[] = [];
    let queuedOnce = false;
    const commits: GroupCommit = new GroupCommit(db, {
      beforeCommit: () => {
        order.push(`hook in transaction=${db.inTransaction} rows outside=${rows().length}`);
        if (queuedOnce) return;
        queuedOnce = true;
        hooked = commits.run(() => {
          order.push('hooked write');
          return insert('hooked')();
        });
      },
    });
    let hooked: Promise<number> | undefined;
    const a = commits.run(() => {
      order.push('write');
      return insert('a')();
    });
    await a;
    expect(hooked).toBeDefined();
    await expect(hooked).resolves.toBe(1);
    expect(order).toEqual(['write', 'hook in transaction=true rows outside=0', 'hooked write', 'hook in transaction=true rows outside=0']);
    expect(rows()).toEqual(['a', 'hooked']);
  });

  it('a hooked write that throws fails alone; the batch and the others commit', async () => {
    let hooked: Promise<unknown> | undefined;
    const commits: GroupCommit = new GroupCommit(db, {
      beforeCommit: () => {
        hooked ??= commits.run(() => {
          throw new Error('hooked failure');
        });
      },
    });
    await expect(commits.run(insert('a'))).resolves.toBe(1);
    expect(await reason(hooked!)).toMatchObject({ message: 'hooked failure' });
    expect(rows()).toEqual(['a']);
  });

  it('afterRollback is told when a commit fails as a whole, and only then', async () => {
    const told: string[] = [];
    let failCommit = true;
    const commits = new GroupCommit(db, {
      // Throwing here fails the transaction after its writes ran: what a failed COMMIT does.
      beforeCommit: () => {
        if (failCommit) throw new Error('commit failed');
      },
      afterRollback: () => told.push(`rolled back, in transaction=${db.inTransaction}`),
    });
    expect(await reason(commits.run(insert('a')))).toMatchObject({ message: 'commit failed' });
    expect(told).toEqual(['rolled back, in transaction=false']);
    expect(rows()).toEqual([]);
    failCommit = false;
    const failing = commits.run(() => {
      throw new Error('one write');
    });
    await expect(commits.run(insert('b'))).resolves.toBe(1);
    expect(await reason(failing)).toMatchObject({ message: 'one write' });
    expect(told, 'a write that fails alone is no rollback of the commit').toHaveLength(1);
  });

  it('when the commit itself fails (database closed), every write of the turn is rejected', async () => {
    const commits = new GroupCommit(db);
    const a = commits.run(insert('a'));
    const b = commits.run(insert('b'));
    db.close();
    const settled = await Promise.allSettled([a, b]);
    expect(settled.map((s) => s.status)).toEqual(['rejected', 'rejected']);
    expect(rows()).toEqual([]);
  });

  it('flush() commits what is queued at once, and the scheduled turn then has nothing left to do', async () => {
    const commits = new GroupCommit(db);
    const a = commits.run(insert('a'));
    commits.flush();
    expect(rows()).toEqual(['a']);
    await expect(a).resolves.toBe(1);
    // A write queued after a flush is scheduled again (the flush cleared the old turn).
    const b = commits.run(insert('b'));
    expect(rows()).toEqual(['a']);
    await expect(b).resolves.toBe(1);
    expect(rows()).toEqual(['a', 'b']);
  });

  it('writes queued in different turns commit in different transactions', async () => {
    const commits = new GroupCommit(db);
    await commits.run(insert('a'));
    const seen: string[][] = [];
    await commits.run(() => {
      seen.push(rows());
      return insert('b')();
    });
    expect(seen).toEqual([['a']]);
  });
  it('idle: true with nothing queued, false from run() until the commit, true again after it', async () => {
    const commits = new GroupCommit(db);
    expect(commits.idle).toBe(true);
    const a = commits.run(insert('a'));
    expect(commits.idle).toBe(false);
    await a;
    expect(commits.idle).toBe(true);
    expect(rows()).toEqual(['a']);
  });
});
