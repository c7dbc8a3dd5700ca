/**
 * Outbox edges mutation testing showed untested: a FAILED outcome not yet reported is replayed
 * (not executed again) with its error and `retryable: false` read back as written; `replace` only
 * swaps a finished, unreported outcome of the same lease; the unreported count.
 *
 * Mutants `npm run mutate outbox` leaves alive, and why they are equivalent:
 * - `row.error ?? 'failed'` → `?? ""`: every FAILED row is written with an error (`failed()` and
 *   `interruptUnfinished` always set one), so the fallback never applies.
 */
import { join } from 'node:path';
import type Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { tempDir } from '../../test-support/processes.js';
import { openDatabase } from '../src/database.js';
import { Outbox } from '../src/outbox.js';
import { completed, failed } from '../src/outcome.js';

let dir: ReturnType<typeof tempDir>;
let path: string;
let db: Database.Database;
let outbox: Outbox;

beforeEach(() => {
  dir = tempDir('agent-outbox-replays');
  path = join(dir.path, 'idempotency.db');
  db = openDatabase(path);
  outbox = new Outbox(db);
});

afterEach(({ task }) => {
  if (db.open) db.close();
  dir.cleanup(task.result?.state !== 'fail');
});

describe('outbox replays and replacements', () => {
  it('a FAILED outcome not yet reported is replayed to the next lease, retryable: false read back, after a restart', async () => {
    outbox.begin('c1', 'L1', 'HTTP_GET_JSON');
    expect(outbox.finish('c1', 'L1', failed('HTTP 404', false, { status: 404 }))).toBe(true);
    db.close();
    db = openDatabase(path);
    outbox = new Outbox(db);
    const plan = outbox.begin('c1', 'L2', 'HTTP_GET_JSON');
    expect(plan).toEqual({ kind: 'replay', outcome: { status: 'FAILED', result: { status: 404 }, error: 'HTTP 404', retryable: false } });
    // Adopted by the new lease: it is reported under L2, and the old lease can no longer touch it.
    expect(outbox.get('c1')).toMatchObject({ leaseId: 'L2', state: 'finished', executions: 1 });
    expect(outbox.markReported('c1', 'L1')).toBe(false);
    expect(outbox.markReported('c1', 'L2')).toBe(true);
  });

  it('a retryable FAILED outcome keeps retryable: true', () => {
    outbox.begin('c1', 'L1', 'DELAY');
    outbox.finish('c1', 'L1', failed('timeout', true));
    expect(outbox.get('c1')?.outcome).toEqual({ status: 'FAILED', result: null, error: 'timeout', retryable: true });
  });

  it('a FAILED outcome the server took (reported) is executed again when the server hands the command out again', () => {
    outbox.begin('c1', 'L1', 'DELAY');
    outbox.finish('c1', 'L1', failed('boom', true));
    outbox.markReported('c1', 'L1');
    expect(outbox.begin('c1', 'L2', 'DELAY')).toEqual({ kind: 'execute' });
    expect(outbox.get('c1')).toMatchObject({ state: 'started', executions: 2, outcome: undefined });
  });

  it('replace() swaps a finished outcome of the same lease only', () => {
    outbox.begin('c1', 'L1', 'HTTP_GET_JSON');
    // Not finished yet: nothing to replace.
    expect(outbox.replace('c1', 'L1', failed('result too large', false))).toBe(false);
    outbox.finish('c1', 'L1', completed({ big: true }));
    expect(outbox.replace('c1', 'L-other', failed('result too large', false))).toBe(false);
    expect(outbox.get('c1')?.outcome).toEqual(completed({ big: true }));
    expect(outbox.replace('c1', 'L1', failed('result too large', false, { status: 200 }))).toBe(true);
    expect(outbox.get('c1')?.outcome).toEqual(failed('result too large', false, { status: 200 }));
    expect(outbox.get('c1')?.state).toBe('finished');
    // Once reported it is settled: no more replacing.
    outbox.markReported('c1', 'L1');
    expect(outbox.replace('c1', 'L1', completed({}))).toBe(false);
    expect(outbox.replace('nope', 'L1', completed({}))).toBe(false);
  });

  it('countUnreported() counts finished outcomes only', () => {
    expect(outbox.countUnreported()).toBe(0);
    for (const id of ['a', 'b', 'c', 'd']) outbox.begin(id, `L-${id}`, 'DELAY');
    outbox.finish('a', 'L-a', completed({}));
    outbox.finish('b', 'L-b', failed('x', true));
    outbox.finish('c', 'L-c', completed({}));
    outbox.markReported('c', 'L-c');
    expect(outbox.countUnreported()).toBe(2);
    expect(outbox.unreported().map((e) => e.commandId).sort()).toEqual(['a', 'b']);
  });
});
