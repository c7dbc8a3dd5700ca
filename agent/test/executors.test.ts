/**
 * The executors against a real local HTTP server: what each kind of response becomes, the byte
 * cap while streaming, redirects, refused addresses, aborts and timeouts.
 */
import type { ClaimedCommand } from '@agent-executor/common';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, waitFor } from '../../test-support/processes.js';
import { runAttempt } from '../src/attempt.js';
import { delay } from '../src/executors/delay.js';
import { httpGetJson, MAX_BODY_BYTES, type HttpGetJsonResult } from '../src/executors/http-get-json.js';
import { executors } from '../src/executors/index.js';
import { AttemptAborted, ExecutionError, PermanentError } from '../src/outcome.js';
import { ServerClient } from '../src/server-client.js';
import { parseAllowEntry, type AllowEntry } from '../src/http-allow.js';
import { SsrfGuard } from '../src/ssrf-guard.js';
import { BIG_BODY_BYTES, startTarget, type Target } from './target.js';

const log = pino({ level: 'silent' });
const open = httpGetJson({ guard: new SsrfGuard({ blockPrivate: false }) });
const strict = httpGetJson({ guard: new SsrfGuard({ blockPrivate: true }) });

let target: Target;
beforeAll(async () => {
  target = await startTarget();
});
afterAll(async () => {
  await target.close();
});

interface Settled {
  result: HttpGetJsonResult;
  error?: ExecutionError;
}

async function get(url: string, { signal = new AbortController().signal, executor = open } = {}): Promise<Settled> {
  try {
    return { result: await executor({ url }, { signal, log, trackProgress: () => {} }) };
  } catch (err) {
    if (!(err instanceof ExecutionError)) throw err;
    return { result: err.result as HttpGetJsonResult, error: err };
  }
}

describe('HTTP_GET_JSON', () => {
  it('parses a JSON answer', async () => {
    const { result, error } = await get(`${target.url}/json`);
    expect(error).toBeUndefined();
    expect(result).toMatchObject({ status: 200, ok: true, body: { hello: 'world' }, truncated: false, error: null });
    expect(result.bytesReturned).toBe(Buffer.byteLength(JSON.stringify(result.body)));
    expect(result).not.toHaveProperty('text');
    expect(result.tookMs).toBeGreaterThanOrEqual(0);
  });

  it("does not make the command's logger unless it logs (a child logger costs more than the request)", async () => {
    let made = 0;
    const context = {
      signal: new AbortController().signal,
      get log() {
        made++;
        return log;
      },
      trackProgress: () => {},
    };
    const result = await open({ url: `${target.url}/json` }, context);
    expect(result).toMatchObject({ status: 200, ok: true });
    expect(made).toBe(0);
  });

  it('fails a 404 for good, keeping the body it got', async () => {
    const { result, error } = await get(`${target.url}/status/404`);
    expect(error).toBeInstanceOf(PermanentError);
    expect(error?.message).toBe('HTTP 404');
    expect(result).toMatchObject({ status: 404, ok: false, body: { error: 'status 404' }, error: 'HTTP 404' });
  });

  it.each([500, 503, 429])('fails a %i as retryable', async (status) => {
    const { result, error } = await get(`${target.url}/status/${status}`);
    expect(error).toBeInstanceOf(ExecutionError);
    expect(error).not.toBeInstanceOf(PermanentError);
    expect(result).toMatchObject({ status, ok: false, error: `HTTP ${status}` });
  });

  it('fails a body that is not JSON for good, keeping its text', async () => {
    const { result, error } = await get(`${target.url}/invalid`);
    expect(error).toBeInstanceOf(PermanentError);
    expect(result).toMatchObject({ status: 200, ok: true, body: null, text: '{"not": json', truncated: false });
    expect(result.error).toMatch(/^invalid JSON/);
  });

  it('reads at most 102 400 bytes of a 300 KB body and stops the transfer there', async () => {
    const ended = target.ended('/big');
    const { result, error } = await get(`${target.url}/big`);
    expect(error).toBeInstanceOf(PermanentError);
    expect(result).toMatchObject({ status: 200, truncated: true, body: null, bytesReturned: MAX_BODY_BYTES });
    expect(result.text).toHaveLength(MAX_BODY_BYTES);
    const seen = await ended;
    expect(seen.cutOff, 'the server should see the client hang up mid-body').toBe(true);
    expect(seen.bytesWritten).toBeLessThan(BIG_BODY_BYTES);
  });

  it('follows 5 redirects', async () => {
    const { result, error } = await get(`${target.url}/redirect/5`);
    expect(error).toBeUndefined();
    expect(result).toMatchObject({ status: 200, body: { hello: 'world' } });
  });

  it('fails a chain of 6 redirects for good without fetching its end', async () => {
    const before = target.hits('/json');
    const { result, error } = await get(`${target.url}/redirect/6`);
    expect(error).toBeInstanceOf(PermanentError);
    expect(result).toMatchObject({ status: 302, error: 'too many redirects (more than 5)' });
    expect(target.hits('/json')).toBe(before);
  });

  it('fails a connection refused as retryable, with no status', async () => {
    const { result, error } = await get(`http://127.0.0.1:${await freePort()}/json`);
    expect(error).toBeInstanceOf(ExecutionError);
    expect(error).not.toBeInstanceOf(PermanentError);
    expect(result).toMatchObject({ status: null, ok: false, body: null });
    expect(result.error).toMatch(/ECONNREFUSED/);
  });

  it.each(['http://169.254.169.254/latest/meta-data/', 'http://[::ffff:169.254.169.254]/', 'http://[fe80::1]/'])(
    'refuses the link-local address %s',
    async (url) => {
      const { result, error } = await get(url);
      expect(error).toBeInstanceOf(PermanentError);
      expect(result.error).toMatch(/link-local/);
      expect(result.status).toBeNull();
    },
  );

  it('refuses a redirect to a link-local address', async () => {
    const { result, error } = await get(`${target.url}/to?url=${encodeURIComponent('http://169.254.169.254/')}`);
    expect(error).toBeInstanceOf(PermanentError);
    expect(result.error).toMatch(/169\.254\.169\.254 is a link-local address/);
  });

  it('with HTTP_BLOCK_PRIVATE refuses loopback, by address and by name, before connecting', async () => {
    const path = '/count?block-private';
    for (const host of ['127.0.0.1', 'localhost']) {
      const { result, error } = await get(`http://${host}:${new URL(target.url).port}${path}`, { executor: strict });
      expect(error).toBeInstanceOf(PermanentError);
      expect(result.error).toMatch(/loopback or private/);
    }
    expect(target.hits(path)).toBe(0);
  });

  it.each([
    ['http://100.100.100.200/latest/meta-data/', 'cloud metadata'],
    ['http://[fd00:ec2::254]/latest/meta-data/', 'cloud metadata'],
    ['http://[64:ff9b::a9fe:a9fe]/latest/meta-data/', 'link-local'],
    ['http://[2002:a9fe:a9fe::1]/', 'link-local'],
    ['http://[::169.254.169.254]/', 'link-local'],
  ])('refuses %s even with HTTP_BLOCK_PRIVATE=false, before connecting', async (url, why) => {
    const { result, error } = await get(url);
    expect(error).toBeInstanceOf(PermanentError);
    expect(result.error).toMatch(new RegExp(`is a ${why} address`));
    expect(result.status).toBeNull();
  });

  it('with HTTP_ALLOW reaches the listed host:port, and refuses a redirect from it to another private port', async () => {
    const port = new URL(target.url).port;
    const other = await freePort();
    const guard = new SsrfGuard({ blockPrivate: true, allow: [`127.0.0.1:${port}`, `localhost:${port}`].map((t) => parseAllowEntry(t) as AllowEntry) });
    const allowed = httpGetJson({ guard });
    for (const host of ['127.0.0.1', 'localhost']) {
      const { result, error } = await get(`http://${host}:${port}/json`, { executor: allowed });
      expect(error).toBeUndefined();
      expect(result).toMatchObject({ status: 200, body: { hello: 'world' } });
    }
    const { result, error } = await get(`${target.url}/to?url=${encodeURIComponent(`http://127.0.0.1:${other}/json`)}`, { executor: allowed });
    expect(error).toBeInstanceOf(PermanentError);
    expect(result.error).toMatch(/127\.0\.0\.1 is a loopback or private address/);
  });

  it('stops at once when aborted mid-request, and says why', async () => {
    const controller = new AbortController();
    const ended = target.ended('/hang');
    const pending = get(`${target.url}/hang`, { signal: controller.signal });
    await waitFor(() => target.hits('/hang') === 1, { what: 'the request to arrive' });
    controller.abort(new AttemptAborted('canceled'));
    const { result, error } = await pending;
    expect(error?.message).toBe('canceled');
    expect(result).toMatchObject({ status: null, error: 'canceled' });
    expect((await ended).cutOff).toBe(true);
  });
});

describe('an attempt', () => {
  const client = new ServerClient({ serverUrls: ['http://127.0.0.1:9'], agentId: 'a', token: undefined, log });
  const claimed = (type: ClaimedCommand['type'], payload: Record<string, unknown>, timeoutMs: number): ClaimedCommand => {
    const now = new Date().toISOString();
    return {
      id: `cmd-${Math.random()}`,
      type,
      payload,
      status: 'RUNNING',
      result: null,
      error: null,
      agentId: 'a',
      attempts: 1,
      maxAttempts: 3,
      timeoutMs,
      // A long lease: no heartbeat is due while these attempts run.
      leaseExpiresAt: new Date(Date.now() + 60_000).toISOString(),
      leaseId: 'lease-1',
      availableAt: now,
      cancelRequested: false,
      progress: null,
      createdAt: now,
      updatedAt: now,
      startedAt: now,
      finishedAt: null,
      queue: 'default', priority: 0, runAt: null, concurrencyKey: null, concurrencyLimit: null,
    };
  };
  const options = { client, agentId: 'a', executors: executors({ guard: new SsrfGuard({ blockPrivate: false }) }), shutdown: new AbortController().signal, log };

  it('times out a slow body at timeoutMs: FAILED timeout, retryable, result kept', async () => {
    const ended = target.ended('/slow');
    const started = Date.now();
    const end = await runAttempt(claimed('HTTP_GET_JSON', { url: `${target.url}/slow` }, 300), Date.now(), options);
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(end).toMatchObject({
      kind: 'finished',
      outcome: { status: 'FAILED', error: 'timeout', retryable: true, result: { status: 200, error: 'timeout' } },
    });
    expect((await ended).cutOff).toBe(true);
  });

  it('completes a DELAY with how long it took', async () => {
    const end = await runAttempt(claimed('DELAY', { ms: 50 }, 5_000), Date.now(), options);
    expect(end).toMatchObject({ kind: 'finished', outcome: { status: 'COMPLETED', result: { ok: true } } });
    const tookMs = (end as { outcome: { result: { tookMs: number } } }).outcome.result.tookMs;
    expect(tookMs).toBeGreaterThanOrEqual(49);
  });

  it('interrupts a DELAY at shutdown: FAILED interrupted, retryable', async () => {
    const shutdown = new AbortController();
    const running = runAttempt(claimed('DELAY', { ms: 60_000 }, 90_000), Date.now(), { ...options, shutdown: shutdown.signal });
    shutdown.abort();
    expect(await running).toMatchObject({ kind: 'finished', outcome: { status: 'FAILED', error: 'interrupted', retryable: true } });
  });

  it('DELAY 0 under a shutdown that came first is interrupted, not completed (its signal is made only when aborted)', async () => {
    const shutdown = new AbortController();
    shutdown.abort();
    const end = await runAttempt(claimed('DELAY', { ms: 0 }, 5_000), Date.now(), { ...options, shutdown: shutdown.signal });
    expect(end).toMatchObject({ kind: 'finished', outcome: { status: 'FAILED', error: 'interrupted', retryable: true } });
    // And a DELAY 0 with nothing aborted completes.
    expect(await runAttempt(claimed('DELAY', { ms: 0 }, 5_000), Date.now(), options)).toMatchObject({ kind: 'finished', outcome: { status: 'COMPLETED' } });
  });

  it('fails a payload that does not parse for good', async () => {
    const end = await runAttempt(claimed('DELAY', { ms: -1 }, 5_000), Date.now(), options);
    expect(end).toMatchObject({ kind: 'finished', outcome: { status: 'FAILED', retryable: false } });
  });

  it('DELAY reports its progress', async () => {
    let probe: (() => { percent: number }) | undefined;
    const controller = new AbortController();
    const running = delay({ ms: 10_000 }, { signal: controller.signal, log, trackProgress: (p) => (probe = p) });
    await waitFor(() => probe !== undefined && probe().percent > 0, { what: 'progress above 0 %' });
    controller.abort(new AttemptAborted('canceled'));
    // The timer's AbortError, carrying the reason the attempt was aborted.
    await expect(running).rejects.toMatchObject({ name: 'AbortError', cause: { name: 'AttemptAborted', kind: 'canceled' } });
    expect(probe?.().percent).toBeLessThan(100);
  });
});
