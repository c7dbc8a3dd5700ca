import { lookup as dnsLookup } from 'node:dns';
import type { LookupFunction } from 'node:net';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { httpGetJson } from '../src/executors/http-get-json.js';
import { ExecutionError, PermanentError } from '../src/outcome.js';
import { SsrfGuard } from '../src/ssrf-guard.js';
import { startTarget, type Target } from './target.js';

describe('which addresses are refused', () => {
  const always = ['169.254.169.254', '169.254.0.1', 'fe80::1', 'febf::1', '::ffff:169.254.169.254'];
  const whenPrivate = ['127.0.0.1', '127.1.2.3', '10.0.0.1', '172.16.0.1', '172.31.255.255', '192.168.1.1', '100.64.0.1', '0.0.0.0', '::1', '::', 'fc00::1', 'fd12::1', '::ffff:127.0.0.1', '::ffff:10.1.1.1'];
  const never = ['8.8.8.8', '1.1.1.1', '172.32.0.1', '192.169.0.1', '169.255.0.1', '2606:4700::1111', '2001:db8::1'];

  it.each(always)('%s: always (link-local)', (address) => {
    expect(new SsrfGuard(false).refusal(address)).toBe('link-local');
    expect(new SsrfGuard(true).refusal(address)).toBe('link-local');
  });

  it.each(whenPrivate)('%s: only with HTTP_BLOCK_PRIVATE', (address) => {
    expect(new SsrfGuard(false).refusal(address)).toBeUndefined();
    expect(new SsrfGuard(true).refusal(address)).toBe('loopback or private');
  });

  it.each(never)('%s: never', (address) => {
    expect(new SsrfGuard(true).refusal(address)).toBeUndefined();
  });
});

describe('the connection itself is checked', () => {
  let target: Target;
  beforeAll(async () => {
    target = await startTarget();
  });
  afterAll(async () => {
    await target.close();
  });

  /** A guard whose DNS check has been bypassed, as a rebinding resolver would: the peer check must still hold. */
  class BypassedLookup extends SsrfGuard {
    override readonly lookup = dnsLookup as unknown as LookupFunction;
  }

  it('refuses a socket whose peer turns out to be loopback, before sending the request', async () => {
    const executor = httpGetJson({ guard: new BypassedLookup(true) });
    const path = '/count?peer-check';
    const error = await executor(
      { url: `http://localhost:${new URL(target.url).port}${path}` },
      { signal: new AbortController().signal, log: pino({ level: 'silent' }), trackProgress: () => {} },
    ).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(error).toBeInstanceOf(PermanentError);
    expect((error as ExecutionError).message).toMatch(/localhost \((127\.0\.0\.1|::1)\) is a loopback or private address/);
    expect(target.hits(path)).toBe(0);
  });
});
