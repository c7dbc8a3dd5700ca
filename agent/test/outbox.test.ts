/** The idempotency log on a real SQLite file: transitions, replays, recovery, identity, locking. */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { killAll, startProcess, tempDir, waitFor, waitForOutput } from '../../test-support/processes.js';
import { DatabaseInUse, openDatabase } from '../src/database.js';
import { agentIdentity } from '../src/identity.js';
import { Outbox } from '../src/outbox.js';
import { OUTBOX_RETENTION_MS, OutboxPruner } from '../src/outbox-pruner.js';
import { completed, failed } from '../src/outcome.js';

let dir: ReturnType<typeof tempDir>;
let path: string;
let db: Database.Database;
let outbox: Outbox;

beforeEach(() => {
  dir = tempDir('agent-outbox');
  path = join(dir.path, 'idempotency.db');
  db = openDatabase(path);
  outbox = new Outbox(db);
});

afterEach(async ({ task }) => {
  if (db.open) db.close();
  await killAll();
  dir.cleanup(task.result?.state !== 'fail');
});

/** Closes and reopens the file, as a restarted agent would. */
function reopen(): void {
  db.close();
  db = openDatabase(path);
  outbox = new Outbox(db);
}

const ok = completed({ ok: true, tookMs: 5 });

describe('outbox', () => {
  it('executes a new command and records started → finished → reported, durably', () => {
    expect(outbox.begin('c1', 'L1', 'DELAY')).toEqual({ kind: 'execute' });
    reopen();
    expect(outbox.get('c1')).toMatchObject({ state: 'started', leaseId: 'L1', outcome: undefined, executions: 1 });
    expect(outbox.finish('c1', 'L1', ok)).toBe(true);
    reopen();
    expect(outbox.get('c1')).toMatchObject({ state: 'finished', outcome: ok });
    expect(outbox.unreported().map((e) => e.commandId)).toEqual(['c1']);
    expect(outbox.markReported('c1', 'L1')).toBe(true);
    reopen();
    expect(outbox.get('c1')?.state).toBe('reported');
    expect(outbox.unreported()).toEqual([]);
  });

  it('replays a finished outcome to a new lease instead of executing again', () => {
    outbox.begin('c1', 'L1', 'HTTP_GET_JSON');
    outbox.finish('c1', 'L1', ok);
    expect(outbox.begin('c1', 'L2', 'HTTP_GET_JSON')).toEqual({ kind: 'replay', outcome: ok });
    expect(outbox.get('c1')).toMatchObject({ leaseId: 'L2', state: 'finished', executions: 1 });
    // Reports are now checked against the new lease.
    expect(outbox.markReported('c1', 'L1')).toBe(false);
    expect(outbox.markReported('c1', 'L2')).toBe(true);
  });

  it('replays a COMPLETED outcome even after it was reported or dropped', () => {
    outbox.begin('c1', 'L1', 'DELAY');
    outbox.finish('c1', 'L1', ok);
    outbox.drop('c1', 'L1', 'report answered 409');
    expect(outbox.begin('c1', 'L2', 'DELAY')).toEqual({ kind: 'replay', outcome: ok });
    outbox.markReported('c1', 'L2');
    expect(outbox.begin('c1', 'L3', 'DELAY')).toEqual({ kind: 'replay', outcome: ok });
  });

  it('executes again a failure the server chose to retry, as a new attempt', () => {
    outbox.begin('c1', 'L1', 'HTTP_GET_JSON');
    outbox.finish('c1', 'L1', failed('HTTP 503', true, { status: 503 }));
    outbox.markReported('c1', 'L1');
    expect(outbox.begin('c1', 'L2', 'HTTP_GET_JSON')).toEqual({ kind: 'execute' });
    expect(outbox.get('c1')).toMatchObject({ state: 'started', leaseId: 'L2', outcome: undefined, executions: 2 });
  });

  it('executes again a command whose lease was lost mid-execution', () => {
    outbox.begin('c1', 'L1', 'DELAY');
    expect(outbox.drop('c1', 'L1', 'lease lost')).toBe(true);
    expect(outbox.get('c1')).toMatchObject({ state: 'dropped', note: 'lease lost' });
    expect(outbox.begin('c1', 'L2', 'DELAY')).toEqual({ kind: 'execute' });
  });

  it('refuses transitions of an attempt whose lease is no longer current', () => {
    outbox.begin('c1', 'L1', 'DELAY');
    outbox.begin('c1', 'L2', 'DELAY');
    expect(outbox.finish('c1', 'L1', ok)).toBe(false);
    expect(outbox.drop('c1', 'L1', 'late')).toBe(false);
    expect(outbox.get('c1')).toMatchObject({ state: 'started', leaseId: 'L2' });
    expect(outbox.finish('c1', 'L2', ok)).toBe(true);
    expect(outbox.finish('c1', 'L2', failed('again', true))).toBe(false);
    expect(outbox.get('c1')?.outcome).toEqual(ok);
  });

  it('at start-up turns every started command into FAILED interrupted (retryable), ready to report', () => {
    outbox.begin('c1', 'L1', 'DELAY');
    outbox.begin('c2', 'L2', 'DELAY');
    outbox.finish('c2', 'L2', ok);
    outbox.begin('c3', 'L3', 'DELAY');
    outbox.finish('c3', 'L3', ok);
    outbox.markReported('c3', 'L3');
    reopen();
    expect(outbox.interruptUnfinished()).toBe(1);
    expect(outbox.get('c1')).toMatchObject({ state: 'finished', outcome: failed('interrupted', true) });
    expect(outbox.unreported().map((e) => e.commandId).sort()).toEqual(['c1', 'c2']);
  });

  it('forgets only settled rows older than the retention', () => {
    let now = 1_000_000;
    outbox = new Outbox(db, () => now);
    outbox.begin('old-reported', 'L', 'DELAY');
    outbox.finish('old-reported', 'L', ok);
    outbox.markReported('old-reported', 'L');
    outbox.begin('old-finished', 'L', 'DELAY');
    outbox.finish('old-finished', 'L', ok);
    now += 10_000;
    outbox.begin('new-reported', 'L', 'DELAY');
    outbox.finish('new-reported', 'L', ok);
    outbox.markReported('new-reported', 'L');
    expect(outbox.prune(5_000, 100)).toBe(1);
    expect(outbox.get('old-reported')).toBeUndefined();
    expect(outbox.get('old-finished')?.state).toBe('finished');
    expect(outbox.get('new-reported')?.state).toBe('reported');
  });
});

describe('pruning while the agent runs', () => {
  const DAY = 24 * 60 * 60 * 1000;

  /** `n` rows settled at the clock's current time: reported, or dropped for every fifth. */
  function settle(prefix: string, n: number): void {
    db.transaction(() => {
      for (let i = 0; i < n; i++) {
        const id = `${prefix}-${i}`;
        outbox.begin(id, 'L', 'DELAY');
        outbox.finish(id, 'L', ok);
        if (i % 5 === 0) outbox.drop(id, 'L', 'lease lost');
        else outbox.markReported(id, 'L');
      }
    })();
  }
  const count = () => (db.prepare('SELECT count(*) AS n FROM outbox').get() as { n: number }).n;

  it('forgets reported and dropped outcomes older than the retention on its timer, not only at start', async () => {
    let now = Date.UTC(2026, 0, 1);
    outbox = new Outbox(db, () => now);
    settle('early', 1_200);
    outbox.begin('unreported', 'L', 'DELAY');
    outbox.finish('unreported', 'L', ok);
    outbox.begin('running', 'L2', 'DELAY');
    const pruner = new OutboxPruner({ outbox, retentionMs: OUTBOX_RETENTION_MS, everyMs: 20, batchSize: 100 });
    try {
      pruner.start();
      expect(await pruner.run()).toBe(0); // nothing is 7 days old yet
      now += 3 * DAY;
      settle('later', 10);
      // A week after the first ones, with no restart: the timer's next pass forgets them.
      now += 4 * DAY + 1;
      await waitFor(() => count() === 12, { what: 'the early rows to be forgotten', timeoutMs: 5_000 });
      expect(outbox.get('early-0')).toBeUndefined();
      expect(outbox.get('later-0')?.state).toBe('dropped');
      expect(outbox.get('later-1')?.state).toBe('reported');
      // Never what the server has not taken yet, nor what runs, however old.
      now += 30 * DAY;
      await waitFor(() => count() === 2, { what: 'the later rows to be forgotten', timeoutMs: 5_000 });
      expect(outbox.get('unreported')?.state).toBe('finished');
      expect(outbox.get('running')?.state).toBe('started');
    } finally {
      pruner.stop();
    }
  });

  it('deletes in batches with turns of the event loop between them', async () => {
    let now = Date.UTC(2026, 0, 1);
    outbox = new Outbox(db, () => now);
    settle('old', 1_050);
    now += OUTBOX_RETENTION_MS + 1;
    const pruner = new OutboxPruner({ outbox, retentionMs: OUTBOX_RETENTION_MS, everyMs: 60_000, batchSize: 100 });
    let turnsSeen = 0;
    let between = true;
    const tick = () => {
      turnsSeen++;
      if (between) setImmediate(tick);
    };
    setImmediate(tick);
    const deleted = await pruner.run();
    between = false;
    expect(deleted).toBe(1_050);
    expect(count()).toBe(0);
    // 11 batches: the other work on the event loop ran between them, not after all of them.
    expect(turnsSeen).toBeGreaterThanOrEqual(10);
    pruner.stop();
  });

  it('each batch is an indexed range on (state, updated_at), not a scan of the log', () => {
    const plan = db
      .prepare(`EXPLAIN QUERY PLAN DELETE FROM outbox WHERE rowid IN (
        SELECT rowid FROM outbox WHERE state IN ('reported', 'dropped') AND updated_at < 1 LIMIT 500)`)
      .all() as Array<{ detail: string }>;
    const details = plan.map((row) => row.detail).join('\n');
    expect(details).toMatch(/SEARCH outbox USING COVERING INDEX outbox_state \(state=\? AND updated_at<\?\)/);
    expect(details).not.toMatch(/SCAN outbox/);
  });

  it('stops between batches once stopped (the database may be closing)', async () => {
    let now = Date.UTC(2026, 0, 1);
    outbox = new Outbox(db, () => now);
    settle('old', 500);
    now += OUTBOX_RETENTION_MS + 1;
    const pruner = new OutboxPruner({ outbox, retentionMs: OUTBOX_RETENTION_MS, everyMs: 60_000, batchSize: 100 });
    const pass = pruner.run();
    pruner.stop();
    db.close();
    expect(await pass).toBe(100);
  });
});

describe('identity', () => {
  it('is a UUID made once and kept across restarts', () => {
    const first = agentIdentity(db, undefined);
    expect(first).toMatch(/^[0-9a-f-]{36}$/);
    reopen();
    expect(agentIdentity(db, undefined)).toBe(first);
  });

  it('is AGENT_ID when set', () => {
    expect(agentIdentity(db, 'agent-7')).toBe('agent-7');
  });
});

describe('the database file', () => {
  it('cannot be opened by a second agent process while the first holds it', async () => {
    // Another process opens the same file through the built module (the one the agent runs).
    const script = join(dir.path, 'second.mjs');
    const built = new URL('../dist/database.js', import.meta.url).href;
    writeFileSync(
      script,
      `import { openDatabase } from ${JSON.stringify(built)};
       try { openDatabase(${JSON.stringify(path)}); console.log('opened'); } catch (err) { console.log(err.message); }`,
    );
    const second = startProcess(script, [], {});
    const [line] = await waitForOutput(second, /opened|is in use by another agent process/);
    expect(line).toMatch(/is in use by another agent process/);
    db.close();
    const third = startProcess(script, [], {});
    expect((await waitForOutput(third, /opened|in use/))[0]).toBe('opened');
  });

  it('names the problem when the same process opens it twice', () => {
    expect(() => openDatabase(path)).toThrow(DatabaseInUse);
  });
});
