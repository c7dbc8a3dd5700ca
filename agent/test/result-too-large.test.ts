/**
 * An outcome that does not fit a report is still reported (SPEC §3): cut down to FAILED
 * `result too large`, at once, without retries; never left in the outbox while the lease runs out.
 */
import { MAX_RESULT_BYTES, MAX_RESULT_DEPTH } from '@agent-executor/common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitForOutput } from '../../test-support/processes.js';
import { openDatabase } from '../src/database.js';
import { Outbox } from '../src/outbox.js';
import { completed, failed } from '../src/outcome.js';
import { fitOutcome, RESULT_TOO_LARGE, resultFits, shrinkOutcome } from '../src/result-fit.js';
import { api, executionsIn, isSettled, useStack, waitForCommand } from './stack.js';
import { NUMBERS_COUNT, startTarget, type Target } from './target.js';

const numbers = () => Array<number>(NUMBERS_COUNT).fill(1e20);
const nested = (levels: number): unknown => {
  let value: unknown = [];
  for (let i = 1; i < levels; i++) value = [value];
  return value;
};
const httpResult = (body: unknown, extra: Record<string, unknown> = {}) => ({
  status: 200, ok: true, body, truncated: false, bytesReturned: 102_396, tookMs: 5, error: null, ...extra,
});

describe('fitting an outcome to a report', () => {
  it('measures the re-serialised size and the depth, as the server does', () => {
    expect(resultFits(httpResult({ small: true }))).toBe(true);
    expect(resultFits(httpResult(numbers()))).toBe(false);
    expect(resultFits(httpResult(nested(MAX_RESULT_DEPTH - 1)))).toBe(true);
    expect(resultFits(httpResult(nested(MAX_RESULT_DEPTH)))).toBe(false);
    // Deep enough to overflow JSON.stringify's stack: measured without it.
    expect(resultFits(httpResult(nested(60_000)))).toBe(false);
  });

  it('turns a COMPLETED outcome that does not fit into FAILED `result too large`, not retryable, body dropped', () => {
    const fitted = fitOutcome(completed(httpResult(numbers())));
    expect(fitted).toEqual({
      status: 'FAILED',
      error: RESULT_TOO_LARGE,
      retryable: false,
      result: httpResult(null, { error: RESULT_TOO_LARGE }),
    });
    const small = completed(httpResult({ ok: 1 }));
    expect(fitOutcome(small)).toBe(small);
  });

  it('keeps a FAILED outcome its error and retryability, and shortens a text to fit', () => {
    const text = '\u0000'.repeat(100_000); // 6 bytes each as JSON: 600 000 bytes
    const fitted = fitOutcome(failed('HTTP 503', true, httpResult(null, { status: 503, ok: false, text, error: 'HTTP 503' })));
    expect(fitted).toMatchObject({ status: 'FAILED', error: `HTTP 503; ${RESULT_TOO_LARGE}`, retryable: true });
    const result = fitted.result as { text: string; status: number; body: unknown };
    expect(result).toMatchObject({ status: 503, body: null, error: RESULT_TOO_LARGE });
    expect(result.text.length).toBeGreaterThan(10_000);
    expect(Buffer.byteLength(JSON.stringify(result))).toBeLessThanOrEqual(MAX_RESULT_BYTES);
  });

  it('shrinks an outcome the server refused anyway in steps that end: cut down, then no result', () => {
    const first = shrinkOutcome(completed(httpResult({ kept: 'by some other limit' })));
    expect(first).toMatchObject({ status: 'FAILED', error: RESULT_TOO_LARGE, retryable: false, result: { status: 200, body: null } });
    const second = shrinkOutcome(first!);
    expect(second).toMatchObject({ status: 'FAILED', error: RESULT_TOO_LARGE, result: null });
    expect(shrinkOutcome(second!)).toBeUndefined();
  });
});

describe('a result too large, with a real agent and server', () => {
  const stack = useStack();
  let target: Target;
  beforeAll(async () => {
    target = await startTarget();
  });
  afterAll(async () => {
    await target.close();
  });

  it.each([
    ['100 KiB of numbers like 1e20 (440 KiB once re-serialised)', '/numbers'],
    [`a body nested ${MAX_RESULT_DEPTH + 1} deep (the server's limit)`, `/deep?levels=${MAX_RESULT_DEPTH + 1}`],
    ['a body nested 50 000 deep (past JSON.stringify)', '/deep?levels=50000'],
  ])('%s: FAILED `result too large` after one attempt, at once', async (_, path) => {
    const { server, agent } = stack();
    const srv = await server();
    const client = api(srv);
    const worker = agent(srv, 'a');
    const submitted = await client.submit({ type: 'HTTP_GET_JSON', payload: { url: `${target.url}${path}` }, maxAttempts: 3 });
    // Well before the 30 s lease could run out and bring the command back.
    const done = await waitForCommand(client, submitted.id, isSettled, { timeoutMs: 10_000 });
    expect(done).toMatchObject({
      status: 'FAILED',
      error: RESULT_TOO_LARGE,
      attempts: 1,
      result: { status: 200, ok: true, body: null, truncated: false, error: RESULT_TOO_LARGE },
    });
    expect(target.hits(path)).toBe(1);
    expect(executionsIn(worker, submitted.id)).toBe(1);
    expect(worker.output()).not.toMatch(/rejected/);
  });

  it('an outcome kept too large (by an older agent) is cut down when the server refuses it, not kept forever', async () => {
    const { server, agent, dbPath } = stack();
    const srv = await server();
    const client = api(srv);
    const submitted = await client.submit({ type: 'HTTP_GET_JSON', payload: { url: `${target.url}/numbers?older-agent` } });
    const claimed = await client.claim('old-agent');
    // What an agent without the fit left in its outbox: a finished outcome the server answers 413.
    const db = openDatabase(dbPath('a'));
    const outbox = new Outbox(db);
    outbox.begin(claimed.id, claimed.leaseId, claimed.type);
    outbox.finish(claimed.id, claimed.leaseId, completed(httpResult(numbers())));
    db.close();

    const worker = agent(srv, 'a', { AGENT_ID: 'old-agent' });
    const done = await waitForCommand(client, submitted.id, isSettled, { timeoutMs: 10_000 });
    expect(done).toMatchObject({ status: 'FAILED', error: RESULT_TOO_LARGE, attempts: 1, result: { status: 200, body: null } });
    await waitForOutput(worker, /rejected \(413 [^)]*\); reporting it cut down: FAILED result too large/);
    expect(target.hits('/numbers?older-agent')).toBe(0);
  });
});
