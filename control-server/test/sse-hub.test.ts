/**
 * SseHub's shared live log, driven by a real SQLite store's events: one encoding per event, runs
 * of frames cut at about 64 KiB, entries kept only while a session still needs them, events of one
 * commit delivered together, nothing kept while nobody listens, close() ending every session.
 * The sessions here are readers of the log (what SseHub asks of a session: `position`,
 * `catchUp`, `onClose`, `close`, `ping`); the real SseSession over HTTP is in sse.test.ts.
 *
 * Mutants of hub.ts these tests leave alive, and why they are equivalent (measured with this file
 * alone, 88.7 %; sse.test.ts drives the hub through real sessions too):
 * - `frames.length === 1 ? frames[0] : Buffer.concat(...)` → always concat: the same bytes.
 * - `size < RUN_BYTES` → `<=`: a run cut one frame later when the frames add up to exactly 64 KiB.
 * - `position >= this.first ? … : undefined` → always index: a negative index is undefined too.
 * - forgetBefore(): `if (passed <= 0) return` → `< 0` or removed (splicing 0 entries changes
 *   nothing; a session is never before `first`), `passed >= entries.length` → `>` or false
 *   (splice() of all of them empties the array as well).
 * - close(): `incoming = []` → a non-empty array: the store listener is off, nothing delivers it.
 * - `performance.now() >= stopAt` → `>`: a slice ends in the same millisecond either way.
 * - `ready.size > 0` → `>= 0`, and the writeQueued guard (`if (this.writeQueued) return` → false,
 *   `writeQueued = true` → false): an extra setImmediate that finds no session ready.
 */
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { SseHub, type LiveEntry } from '../src/sse/hub.js';
import type { SseSession } from '../src/sse/session.js';
import { SqliteCommandStore } from '../src/store/sqlite.js';
import { tempDir, waitFor } from '../../test-support/processes.js';

let dir: ReturnType<typeof tempDir>;
let store: SqliteCommandStore;
let hub: SseHub;

/** Reads the hub's log like a session that takes every event, as fast as `paused` allows. */
class Reader {
  position: number;
  seen: LiveEntry[] = [];
  paused = false;
  catchUps = 0;
  pings = 0;
  closed = false;
  private listeners: Array<() => void> = [];

  constructor(private readonly hub: SseHub) {
    this.position = hub.end;
  }

  /** The turn of the event loop (see `turns`) of each catchUp(). */
  turns: number[] = [];
  /** Each catchUp() takes this long, as writing to many sockets would. */
  busyMs = 0;

  catchUp(): void {
    this.catchUps++;
    this.turns.push(turn);
    const until = performance.now() + this.busyMs;
    while (performance.now() < until);
    if (this.paused) return;
    for (let entry = this.hub.at(this.position); entry; entry = this.hub.at(this.position)) {
      this.seen.push(entry);
      this.position++;
    }
  }

  onClose(listener: () => void): void {
    this.listeners.push(listener);
  }

  ping(): void {
    this.pings++;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const l of this.listeners.splice(0)) l();
  }
}

/** Counts turns of the event loop while `countTurns()` runs: one per setImmediate round. */
let turn = 0;
function countTurns(): () => void {
  let on = true;
  const tick = () => {
    turn++;
    if (on) setImmediate(tick);
  };
  setImmediate(tick);
  return () => (on = false);
}

/** The positions at which the hub still holds an entry. */
function held(): number[] {
  const positions: number[] = [];
  for (let p = 0; p < hub.end; p++) if (hub.at(p) !== undefined) positions.push(p);
  return positions;
}

function reader(): Reader {
  const r = new Reader(hub);
  hub.add(r as unknown as SseSession);
  return r;
}

const submit = (n: number, pad = 0) =>
  store.submitBatch(
    Array.from({ length: n }, () =>
      pad === 0 ? { type: 'DELAY' as const, payload: { ms: 1 } } : { type: 'HTTP_GET_JSON' as const, payload: { url: `https://example.com/${'a'.repeat(pad)}` } },
    ),
  );

beforeEach(() => {
  dir = tempDir('sse-hub');
  store = new SqliteCommandStore({ path: join(dir.path, 'h.db'), onError: () => {} });
  hub = new SseHub(store, 60_000);
});

afterEach(async ({ task }) => {
  hub.close();
  await store.close();
  dir.cleanup(task.result?.state !== 'fail');
});

describe('SseHub', () => {
  test('every session sees every event once, in order, as the same bytes (encoded once)', async () => {
    const a = reader();
    const b = reader();
    await submit(3);
    await waitFor(() => a.seen.length === 3 && b.seen.length === 3, { what: 'both readers', intervalMs: 2 });
    expect(a.seen.map((e) => e.event.seq)).toEqual(b.seen.map((e) => e.event.seq));
    expect(a.seen.map((e) => e.event.seq)).toEqual([...a.seen.map((e) => e.event.seq)].sort((x, y) => x - y));
    for (let i = 0; i < 3; i++) {
      expect(a.seen[i]!.frame).toBe(b.seen[i]!.frame);
      expect(a.seen[i]!.frame.toString()).toBe(`id: ${a.seen[i]!.event.seq}\nevent: status\ndata: ${a.seen[i]!.event.data}\n\n`);
    }
    // Offsets: each entry starts where the previous one ended; endOffset is the end of the last.
    for (let i = 1; i < 3; i++) expect(a.seen[i]!.offset).toBe(a.seen[i - 1]!.offset + a.seen[i - 1]!.frame.length);
    expect(hub.endOffset).toBe(a.seen[2]!.offset + a.seen[2]!.frame.length);
  });

  test('the events of one commit are delivered together, as one run whose bytes are the frames back to back', async () => {
    const r = reader();
    await submit(5);
    await waitFor(() => r.seen.length === 5, { what: 'five events', intervalMs: 2 });
    const run = r.seen[0]!.run!;
    expect(run).toBeDefined();
    expect(r.seen.slice(1).every((e) => e.run === undefined)).toBe(true);
    expect(run.bytes).toEqual(Buffer.concat(r.seen.map((e) => e.frame)));
    expect(run.lastSeq).toBe(r.seen[4]!.event.seq);
    expect(run.end).toBe(hub.end);
    // One delivery for the commit, not one per event.
    expect(r.catchUps).toBe(1);
  });

  test('runs are cut at about 64 KiB', async () => {
    const r = reader();
    // 60 commands with 2 000-byte URLs: ~150 KiB of frames in one commit.
    await submit(60, 1990);
    await waitFor(() => r.seen.length === 60, { what: 'sixty events', intervalMs: 2 });
    const runs = r.seen.filter((e) => e.run).map((e) => e.run!);
    expect(runs.length).toBeGreaterThanOrEqual(3);
    for (const run of runs.slice(0, -1)) {
      expect(run.bytes.length).toBeGreaterThanOrEqual(64 * 1024);
      expect(run.bytes.length).toBeLessThan(64 * 1024 + 4096);
    }
    expect(Buffer.concat(runs.map((run) => run.bytes))).toEqual(Buffer.concat(r.seen.map((e) => e.frame)));
  });

  test('entries are kept while a session still needs them, and let go once every session passed them', async () => {
    const fast = reader();
    const slow = reader();
    slow.paused = true;
    const start = hub.end;
    await submit(2);
    await waitFor(() => fast.seen.length === 2, { what: 'the fast reader', intervalMs: 2 });
    expect(hub.at(start)).toBeDefined();
    slow.paused = false;
    hub.resumeSoon(slow as unknown as SseSession);
    await waitFor(() => slow.seen.length === 2, { what: 'the slow reader', intervalMs: 2 });
    // The next delivery forgets what both have passed.
    await submit(1);
    await waitFor(() => fast.seen.length === 3 && slow.seen.length === 3, { what: 'the third event', intervalMs: 2 });
    expect(hub.at(start)).toBeUndefined();
    expect(hub.at(start + 1)).toBeUndefined();
  });

  test('with no session nothing is kept; when the last session closes its entries go', async () => {
    const before = hub.end;
    await submit(2);
    await new Promise((r) => setImmediate(r));
    expect(hub.end).toBe(before);
    const r = reader();
    r.paused = true;
    await submit(1);
    await waitFor(() => hub.end === before + 1, { what: 'one entry', intervalMs: 2 });
    expect(hub.at(before)).toBeDefined();
    r.close();
    expect(hub.size).toBe(0);
    expect(hub.at(before)).toBeUndefined();
  });

  test('close() closes every session and stops listening to the store', async () => {
    const a = reader();
    const b = reader();
    hub.close();
    expect([a.closed, b.closed]).toEqual([true, true]);
    expect(hub.size).toBe(0);
    const c = reader();
    await submit(1);
    await new Promise((r) => setTimeout(r, 20));
    expect(c.seen).toEqual([]);
  });

  test('pings reach every session on the interval', async () => {
    hub.close();
    hub = new SseHub(store, 20);
    const a = reader();
    const b = reader();
    await waitFor(() => a.pings >= 2 && b.pings >= 2, { what: 'two pings each', intervalMs: 5 });
  });

  test('resumeSoon() runs the session on a later turn, once however often it is asked', async () => {
    const r = reader();
    hub.resumeSoon(r as unknown as SseSession);
    hub.resumeSoon(r as unknown as SseSession);
    expect(r.catchUps).toBe(0);
    await new Promise((resolve) => setImmediate(resolve));
    await new Promise((resolve) => setImmediate(resolve));
    expect(r.catchUps).toBe(1);
  });
  test('a new hub holds nothing; after close() it holds nothing', async () => {
    expect(held()).toEqual([]);
    const r = reader();
    r.paused = true;
    await submit(2);
    await waitFor(() => held().length === 2, { what: 'two entries', intervalMs: 2 });
    hub.close();
    expect(held()).toEqual([]);
  });

  test('when a session closes, what the others still need is kept; when the last one closes, nothing is', async () => {
    const fast = reader();
    const slow = reader();
    slow.paused = true;
    await submit(2);
    await waitFor(() => fast.seen.length === 2, { what: 'the fast reader', intervalMs: 2 });
    fast.close();
    expect(held()).toHaveLength(2);
    slow.paused = false;
    hub.resumeSoon(slow as unknown as SseSession);
    await waitFor(() => slow.seen.length === 2, { what: 'the slow reader, after the other closed', intervalMs: 2 });
    slow.close();
    expect(held()).toEqual([]);
  });

  test('once earlier entries are forgotten, a session behind still gets every entry it has not read', async () => {
    const fast = reader();
    const slow = reader();
    await submit(2);
    await waitFor(() => fast.seen.length === 2 && slow.seen.length === 2, { what: 'both readers', intervalMs: 2 });
    // The next delivery forgets those two: positions no longer start at 0.
    await submit(1);
    await waitFor(() => fast.seen.length === 3 && slow.seen.length === 3, { what: 'the third event', intervalMs: 2 });
    slow.paused = true;
    await submit(2);
    await waitFor(() => fast.seen.length === 5, { what: 'the fast reader', intervalMs: 2 });
    await submit(1);
    await waitFor(() => fast.seen.length === 6, { what: 'the fast reader again', intervalMs: 2 });
    slow.paused = false;
    hub.resumeSoon(slow as unknown as SseSession);
    await waitFor(() => slow.seen.length === 6, { what: 'the slow reader', intervalMs: 2 });
    expect(slow.seen.map((e) => e.event.seq)).toEqual(fast.seen.map((e) => e.event.seq));
  });

  test('sessions that are quick to write are all written in the same turn', async () => {
    const stop = countTurns();
    try {
      const readers = [reader(), reader(), reader()];
      await submit(1);
      await waitFor(() => readers.every((r) => r.seen.length === 1), { what: 'every reader', intervalMs: 2 });
      expect(new Set(readers.map((r) => r.turns[0])).size).toBe(1);
    } finally {
      stop();
    }
  });

  test('sessions slow to write are written one slice (5 ms) at a time, other work running in between; each is written', async () => {
    const stop = countTurns();
    try {
      const readers = [reader(), reader(), reader()];
      for (const r of readers) r.busyMs = 8;
      await submit(1);
      await waitFor(() => readers.every((r) => r.seen.length === 1), { what: 'every reader', intervalMs: 2 });
      const turns = readers.map((r) => r.turns[0]!);
      expect(turns[1]).toBeGreaterThan(turns[0]!);
      expect(turns[2]).toBeGreaterThan(turns[1]!);
    } finally {
      stop();
    }
  });

  test('resumeSoon() keeps working: a session resumed again later is run again', async () => {
    const r = reader();
    for (let i = 1; i <= 3; i++) {
      hub.resumeSoon(r as unknown as SseSession);
      await waitFor(() => r.catchUps === i, { what: `catch-up ${i}`, intervalMs: 1 });
    }
  });
});
