/**
 * The Reporter in this process against a real control server (built here, listening on a free
 * port, its own SQLite file), with a real ServerClient, outbox and group commit: what it sends,
 * how it batches, and what it records for each kind of answer.
 *
 * Log lines that tell an operator what became of an outcome (accepted, dropped, cut down, kept
 * for the next start, not delivered) are asserted: their message and the commandId/commandIds
 * fields one filters on.
 *
 * Mutants `npm run mutate reporter` leaves alive (12 of 133, measured 91 %), and why they are
 * equivalent:
 * - the scheduling flag (`if (this.scheduled) return` → false, `scheduled = true` → false): extra
 *   flushes are scheduled, each finds what came since the last one; the same requests, sooner. (`sending > 0` and `sending--` are not: see the test of an
 *   outcome going at the end of its turn.)
 * - `answer?.kind` → `answer.kind` (twice), `answer !== undefined &&` → `true &&`,
 *   `answer?.message ?? 'no answer'` (→ `answer.message`, → `''`): ServerClient.reportMany answers
 *   one result per report or throws, so `answer` is never undefined.
 * - refusesTheResult(): `answer.kind === 'rejected' &&` → `true &&` (accepted and gone answers
 *   are handled before it is asked), and `statusCode === 400 &&` → `true &&` (no other 4xx of
 *   the server's report routes speaks of the result).
 * - `drill.at('after-report')` → `drill.at('')`: the drill kills the process; only the crash
 *   tests reach it, and they run the built agent, not the mutant.
 * - `smaller === undefined ||` → `false ||`: when there is nothing to cut, `kept` is false too.
 * - recover(): `i <= unreported.length`: one more, empty slice, which sends nothing.
 */
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MAX_BATCH_REPORT, MAX_RESULT_BYTES, type ClaimedCommand } from '@agent-executor/common';
import { GroupCommit } from '@agent-executor/common/group-commit';
import { buildApp, loadConfig, SqliteCommandStore, type App } from '../../control-server/src/app.js';
import { tempDir, waitFor } from '../../test-support/processes.js';
import { CrashDrill } from '../src/crash-drill.js';
import { openDatabase } from '../src/database.js';
import { Outbox } from '../src/outbox.js';
import { OutboxWrites } from '../src/outbox-writes.js';
import { completed, failed, type Outcome } from '../src/outcome.js';
import { Reporter } from '../src/reporter.js';
import { ServerClient } from '../src/server-client.js';

interface Bench {
  app: App;
  store: SqliteCommandStore;
  url: string;
  db: Database.Database;
  outbox: Outbox;
  commits: GroupCommit;
  client: ServerClient;
  reporter: Reporter;
  /** Request lines the server received: `PUT /commands/results` or `PUT /commands/:id/result`. */
  requests: string[];
  logs: string[];
  /** A request for this URL is held at the server until `until` resolves. */
  hold: { url?: string; until?: Promise<void> };
}

let dir: ReturnType<typeof tempDir>;
let bench: Bench;
let shutdown: AbortController;

async function start(agentId = 'agent-r', env: Record<string, string> = {}, token?: string): Promise<Bench> {
  const config = loadConfig({ DB_PATH: join(dir.path, 'server.db'), LOG_LEVEL: 'silent', LEASE_MS: '60000', ...env });
  const store = new SqliteCommandStore({ path: config.dbPath });
  const app = await buildApp(config, store);
  const requests: string[] = [];
  const hold: Bench['hold'] = {};
  app.addHook('onRequest', async (request) => {
    if (request.method === 'PUT') requests.push(`${request.method} ${request.url}`);
    if (request.url === hold.url) await hold.until;
  });
  const url = await app.listen({ port: 0, host: '127.0.0.1' });
  const logs: string[] = [];
  const log = pino({ level: 'debug' }, { write: (line: string) => void logs.push(line) });
  const db = openDatabase(join(dir.path, `${agentId}.db`));
  const outbox = new Outbox(db);
  const commits = new GroupCommit(db);
  const client = new ServerClient({ serverUrls: [url], agentId, token, log });
  const reporter = new Reporter({ client, outbox, writes: new OutboxWrites(db, outbox, commits), agentId, drill: new CrashDrill({}), log });
  return { app, store, url, db, outbox, commits, client, reporter, requests, logs, hold };
}

beforeEach(async () => {
  dir = tempDir('agent-reporter');
  shutdown = new AbortController();
  bench = await start();
});

afterEach(async ({ task }) => {
  shutdown.abort();
  await bench.app.close();
  await bench.store.close();
  if (bench.db.open) bench.db.close();
  dir.cleanup(task.result?.state !== 'fail');
});

/** Submits `n` DELAY commands and leases them to `agentId`, each begun in the outbox. */
async function leased(n: number, agentId = 'agent-r'): Promise<ClaimedCommand[]> {
  await bench.store.submitBatch(Array.from({ length: n }, () => ({ type: 'DELAY' as const, payload: { ms: 1 } })));
  const out: ClaimedCommand[] = [];
  for (let i = 0; i < n; i++) {
    const c = (await bench.store.claim(agentId, 60_000)) as ClaimedCommand;
    bench.outbox.begin(c.id, c.leaseId, 'DELAY');
    out.push(c);
  }
  return out;
}

/** Finishes in the outbox (as the worker does), then hands the outcome to the reporter. */
function deliver(c: ClaimedCommand, outcome: Outcome, signal = shutdown.signal): Promise<void> {
  expect(bench.outbox.finish(c.id, c.leaseId, outcome)).toBe(true);
  return bench.reporter.deliver(c.id, c.leaseId, outcome, signal);
}

/**
 * Delivers `c`'s outcome and holds its report at the server until `release()`: a report surely on
 * its way while the test hands over the next outcomes.
 */
async function reportHeld(c: ClaimedCommand): Promise<{ sent: Promise<void>; release: () => void }> {
  let release!: () => void;
  bench.hold.url = `/commands/${c.id}/result`;
  bench.hold.until = new Promise<void>((resolve) => (release = resolve));
  const sent = deliver(c, completed({ n: 0 }));
  await waitFor(() => bench.requests.length === 1, { what: 'the first report', intervalMs: 1 });
  return { sent, release };
}

interface LogLine {
  level: number;
  msg: string;
  commandId?: string;
  commandIds?: string[];
  status?: string;
  err?: { message: string };
}

/** The log line whose message is `msg` (what an operator searches for), parsed; fails when there is none. */
function logLine(msg: string | RegExp): LogLine {
  const lines = bench.logs.map((l) => JSON.parse(l) as LogLine);
  const line = lines.find((l) => (typeof msg === 'string' ? l.msg === msg : msg.test(l.msg)));
  if (!line) throw new Error(`no log line ${String(msg)} among:\n${lines.map((l) => l.msg).join('\n')}`);
  return line;
}

const DEBUG = 20;
const WARN = 40;
const ERROR = 50;

describe('Reporter', () => {
  it('outcomes handed over in one turn go out in one batched request, and each is marked reported', async () => {
    const cs = await leased(3);
    await Promise.all(cs.map((c, i) => deliver(c, completed({ ok: true, i }))));
    expect(bench.requests).toEqual(['PUT /commands/results?brief=true']);
    for (const [i, c] of cs.entries()) {
      expect((await bench.store.get(c.id))?.result).toEqual({ ok: true, i });
      expect(bench.outbox.get(c.id)?.state).toBe('reported');
      expect(logLine(`report of ${c.id} accepted`)).toMatchObject({ level: DEBUG, commandId: c.id, status: 'COMPLETED' });
    }
    expect(bench.outbox.countUnreported()).toBe(0);
  });

  it('a single outcome goes through the single route; a FAILED one keeps its error and retryability', async () => {
    const [c] = await leased(1);
    await deliver(c!, failed('boom', false, { partial: 1 }));
    expect(bench.requests).toEqual([`PUT /commands/${c!.id}/result`]);
    const stored = await bench.store.get(c!.id);
    expect(stored).toMatchObject({ status: 'FAILED', error: 'boom', result: { partial: 1 } });
    expect(bench.outbox.get(c!.id)?.state).toBe('reported');
  });

  it('an outcome handed over while a report is on its way waits for company and goes with the others', async () => {
    const cs = await leased(4);
    // The first report is held at the server until the others have been answered: they wait for
    // it as long as they may (MAX_HOLD_MS), then go.
    const first = await reportHeld(cs[0]!);
    // The next three come one by one, on separate turns of the event loop.
    const rest: Promise<void>[] = [];
    for (const c of cs.slice(1)) {
      rest.push(deliver(c, completed({ n: 1 })));
      await new Promise((r) => setImmediate(r));
    }
    await Promise.all(rest);
    first.release();
    await first.sent;
    // The three waited for company instead of going one request each: one batched request, or two
    // when a busy machine stretched the turns (CI on Node 24 saw that once, with a 2 ms window).
    expect(bench.requests[0]).toBe(`PUT /commands/${cs[0]!.id}/result`);
    expect(bench.requests).toContain('PUT /commands/results?brief=true');
    expect(bench.requests.length, bench.requests.join(', ')).toBeLessThanOrEqual(3);
    for (const c of cs) expect(bench.outbox.get(c.id)?.state).toBe('reported');
  });

  it('outcomes handed over while a report is on its way wait until it comes back, however far apart, then go together', async () => {
    const cs = await leased(3);
    const first = await reportHeld(cs[0]!);
    // Further apart than REPORT_WINDOW_MS: with a fixed window, the second went alone.
    const second = deliver(cs[1]!, completed({ n: 1 }));
    await new Promise((r) => setTimeout(r, 6));
    const third = deliver(cs[2]!, completed({ n: 2 }));
    await new Promise((r) => setImmediate(r));
    expect(bench.requests).toEqual([`PUT /commands/${cs[0]!.id}/result`]);
    first.release();
    await Promise.all([first.sent, second, third]);
    expect(bench.requests).toEqual([`PUT /commands/${cs[0]!.id}/result`, 'PUT /commands/results?brief=true']);
    for (const c of cs) expect(bench.outbox.get(c.id)?.state).toBe('reported');
  });

  it('with nothing on the way an outcome goes at the end of its turn, without waiting for company (also after earlier reports)', async () => {
    const [earlier, a, b] = await leased(3);
    // An earlier report, answered: from then on nothing is on the way.
    await deliver(earlier!, completed({}));
    await new Promise((r) => setImmediate(r));
    bench.requests.length = 0;
    const first = deliver(a!, completed({}));
    // One turn later: the first has gone already, alone (waiting 2 ms would have taken this one too).
    await new Promise((r) => setImmediate(r));
    await Promise.all([first, deliver(b!, completed({}))]);
    expect(bench.requests).toEqual([`PUT /commands/${a!.id}/result`, `PUT /commands/${b!.id}/result`]);
  });

  it('outcomes with different shutdown signals are sent in separate requests', async () => {
    const cs = await leased(2);
    const other = new AbortController();
    await Promise.all([deliver(cs[0]!, completed({})), deliver(cs[1]!, completed({}), other.signal)]);
    expect(bench.requests.sort()).toEqual([`PUT /commands/${cs[0]!.id}/result`, `PUT /commands/${cs[1]!.id}/result`].sort());
  });

  it('a command that is not ours any more (409) is dropped in the outbox with the answer, not retried', async () => {
    const cs = await leased(2);
    // The first: the server already took a different outcome for this lease (a second, different
    // report is a 409, not a replay).
    await bench.store.report(cs[0]!.id, { agentId: 'agent-r', leaseId: cs[0]!.leaseId, status: 'FAILED', error: 'other', retryable: false });
    // The second: reported under a lease the server never gave.
    bench.outbox.begin(cs[1]!.id, 'L-forged', 'DELAY');
    await Promise.all([
      deliver(cs[0]!, completed({})),
      (async () => {
        expect(bench.outbox.finish(cs[1]!.id, 'L-forged', completed({}))).toBe(true);
        await bench.reporter.deliver(cs[1]!.id, 'L-forged', completed({}), shutdown.signal);
      })(),
    ]);
    expect(bench.requests).toEqual(['PUT /commands/results?brief=true']);
    for (const c of cs) {
      const entry = bench.outbox.get(c.id);
      expect(entry?.state).toBe('dropped');
      expect(entry?.note).toMatch(/^report answered 409/);
    }
    expect((await bench.store.get(cs[0]!.id))?.error).toBe('other');
    expect((await bench.store.get(cs[1]!.id))?.status).toBe('RUNNING');
    for (const c of cs) {
      expect(logLine(new RegExp(`^command ${c.id} is not ours any more \\(409 .+\\); outcome kept, not reported$`))).toMatchObject({
        level: WARN,
        commandId: c.id,
      });
    }
  });

  it('an unknown command (404) is dropped too', async () => {
    bench.outbox.begin('no-such-command', 'L-1', 'DELAY');
    expect(bench.outbox.finish('no-such-command', 'L-1', completed({}))).toBe(true);
    await bench.reporter.deliver('no-such-command', 'L-1', completed({}), shutdown.signal);
    expect(bench.outbox.get('no-such-command')).toMatchObject({ state: 'dropped', note: expect.stringMatching(/^report answered 404/) });
  });

  it('a result the server refuses as too large is cut down, reported, and the cut outcome kept', async () => {
    const [c] = await leased(1);
    const huge = completed({ status: 200, ok: true, body: { s: 'x'.repeat(MAX_RESULT_BYTES) }, truncated: false, error: null });
    await deliver(c!, huge);
    // First the full one (413), then the cut one.
    expect(bench.requests).toEqual([`PUT /commands/${c!.id}/result`, `PUT /commands/${c!.id}/result`]);
    const stored = await bench.store.get(c!.id);
    expect(stored?.status).toBe('FAILED');
    expect(stored?.error).toMatch(/too large/i);
    const entry = bench.outbox.get(c!.id);
    expect(entry?.state).toBe('reported');
    expect(entry?.outcome?.status).toBe('FAILED');
    const cut = logLine(new RegExp(`^report of ${c!.id} rejected \\(413 .+\\); reporting it cut down: FAILED result too large$`));
    expect(cut).toMatchObject({ level: WARN, commandId: c!.id });
  });

  it('a result refused for its nesting (400 about the result) is reported without it', async () => {
    const [c] = await leased(1);
    let deep: unknown = 1;
    for (let i = 0; i < 1100; i++) deep = [deep];
    await deliver(c!, completed({ deep }));
    expect(bench.requests).toHaveLength(2);
    expect(await bench.store.get(c!.id)).toMatchObject({ status: 'FAILED', error: 'result too large', result: null });
    expect(bench.outbox.get(c!.id)?.state).toBe('reported');
  });

  it('a refused result whose outbox row has moved on is not cut and re-sent: it stays as it is', async () => {
    const [c] = await leased(1);
    const huge = completed({ body: 'x'.repeat(MAX_RESULT_BYTES) });
    // The row is still `started` (the outcome was never recorded as finished): replace() refuses.
    await bench.reporter.deliver(c!.id, c!.leaseId, huge, shutdown.signal);
    expect(bench.requests).toHaveLength(1);
    expect(bench.outbox.get(c!.id)?.state).toBe('started');
    expect((await bench.store.get(c!.id))?.status).toBe('RUNNING');
    const line = logLine(new RegExp(`^report of ${c!.id} rejected \\(413 .+\\); nothing left to cut, kept in the outbox$`));
    expect(line).toMatchObject({ level: ERROR, commandId: c!.id });
  });

  it('a refused outcome with no result to cut (413 for its error text) is kept as it is, said once', async () => {
    const [c] = await leased(1);
    // An outcome an older agent kept: no result, an error over the server's whole body limit.
    // (failed() would cut the error to its limit: built by hand.)
    const outcome: Outcome = { status: 'FAILED', result: null, error: 'e'.repeat(2 * 1024 * 1024), retryable: true };
    await deliver(c!, outcome);
    expect(bench.requests).toHaveLength(1);
    expect(bench.outbox.get(c!.id)?.state).toBe('finished');
    const line = logLine(new RegExp(`^report of ${c!.id} rejected \\(413 .+\\); nothing left to cut, kept in the outbox$`));
    expect(line).toMatchObject({ level: ERROR, commandId: c!.id });
    expect(bench.logs.filter((l) => l.includes('recording the answer failed'))).toEqual([]);
  });

  it('with no server, the report is kept in the outbox when shutdown aborts it, and never rejects', async () => {
    const cs = await leased(2);
    await bench.app.close();
    const gone = new AbortController();
    const delivered = Promise.all(cs.map((c) => deliver(c, completed({}), gone.signal)));
    await waitFor(() => bench.logs.some((l) => /retry|ECONNREFUSED|failed/i.test(l)), { what: 'a failed attempt' });
    gone.abort();
    await expect(delivered).resolves.toEqual([undefined, undefined]);
    for (const c of cs) expect(bench.outbox.get(c.id)?.state).toBe('finished');
    const ids = cs.map((c) => c.id);
    expect(logLine(`reports of 2 outcomes (${ids.join(', ')}) not delivered (shutting down); kept in the outbox for the next start`)).toMatchObject({
      level: WARN,
      commandIds: ids,
    });
  });

  it('a single report that cannot be delivered is named alone, with why (the server is gone)', async () => {
    const [c] = await leased(1);
    await bench.app.close();
    const gone = new AbortController();
    const delivered = deliver(c!, completed({}), gone.signal);
    await waitFor(() => bench.logs.some((l) => /retry|ECONNREFUSED|failed/i.test(l)), { what: 'a failed attempt' });
    gone.abort();
    await delivered;
    expect(logLine(`report of ${c!.id} not delivered (shutting down); kept in the outbox for the next start`)).toMatchObject({
      level: WARN,
      commandIds: [c!.id],
    });
  });

  it('recover(): a started row becomes FAILED interrupted (retryable) and every unreported outcome is sent', async () => {
    const cs = await leased(3);
    // cs[0] finished before the "crash", cs[1] was still running, cs[2] was already reported.
    expect(bench.outbox.finish(cs[0]!.id, cs[0]!.leaseId, completed({ kept: true }))).toBe(true);
    expect(bench.outbox.finish(cs[2]!.id, cs[2]!.leaseId, completed({ earlier: true }))).toBe(true);
    await bench.reporter.deliver(cs[2]!.id, cs[2]!.leaseId, completed({ earlier: true }), shutdown.signal);
    bench.requests.length = 0;

    await bench.reporter.recover(shutdown.signal);
    expect(bench.requests).toEqual(['PUT /commands/results?brief=true']);
    expect((await bench.store.get(cs[0]!.id))?.result).toEqual({ kept: true });
    // Interrupted and retryable: back to PENDING for another attempt.
    const interrupted = await bench.store.get(cs[1]!.id);
    expect(interrupted).toMatchObject({ status: 'PENDING', error: 'interrupted' });
    expect(bench.outbox.countUnreported()).toBe(0);
    expect(bench.logs.join('')).toMatch(/1 command\(s\) interrupted by a crash; reporting 2 outcome\(s\)/);
  });

  it('recover() with an aborted signal sends nothing; with nothing to do it sends nothing and logs nothing', async () => {
    await leased(1);
    const aborted = new AbortController();
    aborted.abort();
    await bench.reporter.recover(aborted.signal);
    expect(bench.requests).toEqual([]);
    const quiet = bench.logs.length;
    await bench.reporter.recover(shutdown.signal);
    bench.requests.length = 0;
    bench.logs.length = quiet;
    await bench.reporter.recover(shutdown.signal);
    expect(bench.requests).toEqual([]);
    expect(bench.logs.slice(quiet).join('')).not.toMatch(/recovery:/);
  });

  it('a refusal that is not about the result (401: a wrong token) keeps the outcome as it is, for the next start', async () => {
    await bench.app.close();
    await bench.store.close();
    bench.db.close();
    bench = await start('agent-r', { AGENT_TOKEN: 'a'.repeat(16) }, 'wrong-token-0123456789');
    const [c] = await leased(1);
    const outcome = completed({ status: 200, body: { x: 1 } });
    await deliver(c!, outcome);
    expect(bench.outbox.get(c!.id)).toMatchObject({ state: 'finished', outcome });
    expect((await bench.store.get(c!.id))?.status).toBe('RUNNING');
    const line = logLine(new RegExp(`^report of ${c!.id} rejected \\(401 [^)]*\\); kept in the outbox for the next start$`));
    expect(line).toMatchObject({ level: ERROR, commandId: c!.id });
  });

  it('a 400 that is not about the result (a bad agentId) is not answered by cutting the result', async () => {
    await bench.app.close();
    await bench.store.close();
    bench.db.close();
    bench = await start('not a valid id!');
    const [c] = await leased(1, 'agent-r');
    const outcome = completed({ status: 200, body: { x: 1 } });
    await deliver(c!, outcome);
    expect(bench.outbox.get(c!.id)).toMatchObject({ state: 'finished', outcome });
    expect(bench.requests).toHaveLength(1);
    expect(bench.logs.join('')).toMatch(/rejected \(400[^)]*\); kept in the outbox for the next start/);
  });

  it('when recording the answer fails (the outbox is gone), the failure is logged and deliver() still resolves', async () => {
    const [c] = await leased(1);
    let letThrough!: () => void;
    bench.hold.url = `/commands/${c!.id}/result`;
    bench.hold.until = new Promise<void>((resolve) => (letThrough = resolve));
    const delivered = deliver(c!, completed({}));
    await waitFor(() => bench.requests.length === 1, { what: 'the report on its way', intervalMs: 1 });
    bench.db.close();
    letThrough();
    await expect(delivered).resolves.toBeUndefined();
    expect((await bench.store.get(c!.id))?.status).toBe('COMPLETED');
    const line = logLine(new RegExp(`^report of ${c!.id}: recording the answer failed: .+`));
    expect(line).toMatchObject({ level: ERROR, commandId: c!.id, err: { message: expect.any(String) } });
    expect(line.msg).toBe(`report of ${c!.id}: recording the answer failed: ${line.err!.message}`);
  });
  it('recover() sends a backlog longer than MAX_BATCH_REPORT a batch at a time: the next goes once the first is answered', async () => {
    const n = MAX_BATCH_REPORT + 1;
    await bench.store.submitBatch(Array.from({ length: n }, () => ({ type: 'DELAY' as const, payload: { ms: 1 } })));
    const cs = await bench.store.claimBatch('agent-r', 60_000, n);
    expect(cs).toHaveLength(n);
    for (const c of cs) {
      bench.outbox.begin(c.id, c.leaseId, 'DELAY');
      expect(bench.outbox.finish(c.id, c.leaseId, completed({}))).toBe(true);
    }
    let letFirstThrough!: () => void;
    bench.hold.url = '/commands/results?brief=true';
    bench.hold.until = new Promise<void>((resolve) => (letFirstThrough = resolve));
    const recovering = bench.reporter.recover(shutdown.signal);
    try {
      await waitFor(() => bench.requests.length === 1, { what: 'the first batch', intervalMs: 1 });
      // The whole backlog at once would be a second batched request now, beside the held one.
      await new Promise((r) => setTimeout(r, 200));
      expect(bench.requests).toEqual(['PUT /commands/results?brief=true']);
    } finally {
      letFirstThrough();
    }
    await recovering;
    // The last outcome alone, on the single route.
    expect(bench.requests).toEqual(['PUT /commands/results?brief=true', `PUT /commands/${cs[n - 1]!.id}/result`]);
    expect(bench.outbox.countUnreported()).toBe(0);
  });
});
