/** OutboxWrites on a real SQLite file: the transitions asked for before a commit share it, as one write. */
import { join } from 'node:path';
import type Database from 'better-sqlite3';
import { GroupCommit } from '@agent-executor/common/group-commit';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { tempDir } from '../../test-support/processes.js';
import { openDatabase } from '../src/database.js';
import { Outbox } from '../src/outbox.js';
import { OutboxWrites } from '../src/outbox-writes.js';
import { completed } from '../src/outcome.js';

let dir: ReturnType<typeof tempDir>;
let path: string;
let db: Database.Database;

/** A GroupCommit that records, for each commit, how many rows it changed. */
class CountingCommit extends GroupCommit {
  readonly commits: number[] = [];
  override flush(): void {
    const before = db.prepare('SELECT total_changes() AS n').get() as { n: number };
    super.flush();
    const after = db.prepare('SELECT total_changes() AS n').get() as { n: number };
    if (after.n > before.n) this.commits.push(after.n - before.n);
  }
}

beforeEach(() => {
  dir = tempDir('agent-outbox-writes');
  path = join(dir.path, 'idempotency.db');
  db = openDatabase(path);
});

afterEach(({ task }) => {
  if (db.open) db.close();
  dir.cleanup(task.result?.state !== 'fail');
});

describe('outbox writes', () => {
  it('flush() commits what is queued at once, not at the end of the turn: a claim starts its executors sooner', async () => {
    const commits = new CountingCommit(db);
    const writes = new OutboxWrites(db, new Outbox(db), commits);
    const heard: string[] = [];
    const started = ['c1', 'c2'].map((id) => writes.begin(id, `L-${id}`, 'DELAY').then(() => heard.push(id)));
    // A callback of this turn's check phase: without flush() the commit would come after it.
    const turnEnded = new Promise<void>((resolve) => setImmediate(() => (heard.push('end of turn'), resolve())));
    writes.flush();
    expect(commits.commits).toEqual([2]); // committed synchronously, both rows in one commit
    await Promise.all([...started, turnEnded]);
    expect(heard).toEqual(['c1', 'c2', 'end of turn']);
  });

  it('the started rows of a claim, the outcomes and the reported marks of one turn share one commit', async () => {
    const commits = new CountingCommit(db);
    const outbox = new Outbox(db);
    const writes = new OutboxWrites(db, outbox, commits);
    const ids = ['c1', 'c2', 'c3', 'c4'];
    expect(await Promise.all(ids.map((id) => writes.begin(id, `L-${id}`, 'DELAY')))).toEqual(ids.map(() => ({ kind: 'execute' })));
    expect(await Promise.all(ids.map((id) => writes.finish(id, `L-${id}`, completed({ ok: true }))))).toEqual([true, true, true, true]);
    // The next round's starts and this round's reported marks, asked for together.
    const [marks, starts] = await Promise.all([
      Promise.all(ids.map((id) => writes.markReported(id, `L-${id}`))),
      Promise.all(['c5', 'c6'].map((id) => writes.begin(id, `L-${id}`, 'DELAY'))),
    ]);
    expect(marks).toEqual([true, true, true, true]);
    expect(starts).toEqual([{ kind: 'execute' }, { kind: 'execute' }]);
    expect(commits.commits).toEqual([4, 4, 6]);

    db.close();
    db = openDatabase(path);
    const reopened = new Outbox(db);
    expect(['c1', 'c4', 'c5'].map((id) => reopened.get(id)?.state)).toEqual(['reported', 'reported', 'started']);
  });

  it('a transition that throws fails alone; the others of its commit are kept', async () => {
    const commits = new GroupCommit(db);
    const outbox = new Outbox(db);
    const writes = new OutboxWrites(db, outbox, commits);
    await writes.begin('c1', 'L1', 'DELAY');
    // A result that cannot be serialised throws inside the write (BigInt), after c2's start.
    const results = await Promise.allSettled([
      writes.begin('c2', 'L2', 'DELAY'),
      writes.finish('c1', 'L1', completed({ n: 1n })),
      writes.drop('c1', 'L1', 'lease lost'),
    ]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect(outbox.get('c2')?.state).toBe('started');
    expect(outbox.get('c1')).toMatchObject({ state: 'dropped', note: 'lease lost' });
  });

  it('when the commit fails, every transition waiting for it hears so, and the next ones go on', async () => {
    const commits = new GroupCommit(db);
    const outbox = new Outbox(db);
    const writes = new OutboxWrites(db, outbox, commits);
    const pending = [writes.begin('c1', 'L1', 'DELAY'), writes.begin('c2', 'L2', 'DELAY')];
    db.close();
    expect((await Promise.allSettled(pending)).map((r) => r.status)).toEqual(['rejected', 'rejected']);
  });
});
