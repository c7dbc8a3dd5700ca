/** The idempotency log on a real SQLite file: transitions, replays, recovery, identity, locking. */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { killAll, startProcess, tempDir, waitForOutput } from '../../test-support/processes.js';
import { DatabaseInUse, openDatabase } from '../src/database.js';
import { agentIdentity } from '../src/identity.js';
import { Outbox } from '../src/outbox.js';
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
    expect(outbox.prune(5_000)).toBe(1);
    expect(outbox.get('old-reported')).toBeUndefined();
    expect(outbox.get('old-finished')?.state).toBe('finished');
    expect(outbox.get('new-reported')?.state).toBe('reported');
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
