/** Group commit of outbox writes on a real SQLite file: one transaction per turn, answers after it. */
import { join } from 'node:path';
import type Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { tempDir } from '../../test-support/processes.js';
import { openDatabase } from '../src/database.js';
import { GroupCommit } from '@agent-executor/common/group-commit';
import { Outbox } from '../src/outbox.js';
import { completed } from '../src/outcome.js';

let dir: ReturnType<typeof tempDir>;
let path: string;
let db: Database.Database;

beforeEach(() => {
  dir = tempDir('agent-group-commit');
  path = join(dir.path, 'idempotency.db');
  db = openDatabase(path);
});

afterEach(({ task }) => {
  if (db.open) db.close();
  dir.cleanup(task.result?.state !== 'fail');
});

describe('group commit', () => {
  it('runs the writes of one turn together, in one transaction, and answers each after the commit', async () => {
    const commits = new GroupCommit(db);
    const outbox = new Outbox(db);
    const seen: boolean[] = [];
    const plans = ['c1', 'c2', 'c3'].map((id) =>
      commits.run(() => {
        seen.push(db.inTransaction);
        return outbox.begin(id, `L-${id}`, 'DELAY');
      }),
    );
    // Nothing has run yet: the writes wait for the end of the turn.
    expect(seen).toEqual([]);
    expect(await Promise.all(plans)).toEqual([{ kind: 'execute' }, { kind: 'execute' }, { kind: 'execute' }]);
    expect(seen).toEqual([true, true, true]);
    expect(db.inTransaction).toBe(false);

    const kept = await Promise.all(['c1', 'c2'].map((id) => commits.run(() => outbox.finish(id, `L-${id}`, completed({ ok: true })))));
    expect(kept).toEqual([true, true]);
    db.close();
    db = openDatabase(path);
    const reopened = new Outbox(db);
    expect(['c1', 'c2', 'c3'].map((id) => reopened.get(id)?.state)).toEqual(['finished', 'finished', 'started']);
  });

  it('writes queued by beforeCommit join the same transaction and are answered after its commit', async () => {
    db.exec('CREATE TABLE log (n INTEGER)');
    const insert = db.prepare('INSERT INTO log (n) VALUES (?)');
    const order: string[] = [];
    const follow: Array<Promise<number>> = [];
    const commits = new GroupCommit(db, {
      beforeCommit: () => {
        order.push(`hook, in a transaction: ${db.inTransaction}`);
        if (follow.length > 0) return;
        follow.push(commits.run(() => (order.push('second write'), insert.run(2).changes)));
      },
    });
    const first = commits.run(() => (order.push('first write'), insert.run(1).changes)).then((n) => {
      order.push('first answered');
      return n;
    });
    expect(await first).toBe(1);
    expect(await follow[0]).toBe(1);
    // The second write ran before the first was answered: in the same transaction, not in a
    // commit of its own a turn later; the hook ran again after it, still inside.
    expect(order).toEqual([
      'first write',
      'hook, in a transaction: true',
      'second write',
      'hook, in a transaction: true',
      'first answered',
    ]);
    expect(db.prepare('SELECT n FROM log ORDER BY n').pluck().all()).toEqual([1, 2]);
    expect(db.inTransaction).toBe(false);
  });

  it('a write that throws fails alone: the others of its turn still commit', async () => {
    const commits = new GroupCommit(db);
    const outbox = new Outbox(db);
    const results = await Promise.allSettled([
      commits.run(() => outbox.begin('c1', 'L1', 'DELAY')),
      commits.run(() => {
        throw new Error('this one fails');
      }),
      commits.run(() => outbox.begin('c2', 'L2', 'DELAY')),
    ]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    db.close();
    db = openDatabase(path);
    const reopened = new Outbox(db);
    expect([reopened.get('c1')?.state, reopened.get('c2')?.state]).toEqual(['started', 'started']);
  });

  it('when the commit itself fails, every write of the turn hears it', async () => {
    const commits = new GroupCommit(db);
    const outbox = new Outbox(db);
    const pending = [commits.run(() => outbox.begin('c1', 'L1', 'DELAY')), commits.run(() => outbox.begin('c2', 'L2', 'DELAY'))];
    db.close();
    const results = await Promise.allSettled(pending);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
  });
});
