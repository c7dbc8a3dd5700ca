import { lookup as dnsLookup } from 'node:dns';
import type { LookupFunction } from 'node:net';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { httpGetJson } from '../src/executors/http-get-json.js';
import { ExecutionError, PermanentError } from '../src/outcome.js';
import { parseAllowEntry, type AllowEntry } from '../src/http-allow.js';
import { SsrfGuard } from '../src/ssrf-guard.js';
import { startTarget, type Target } from './target.js';

const open = new SsrfGuard({ blockPrivate: false });
const strict = new SsrfGuard({ blockPrivate: true });

describe('which addresses are refused', () => {
  const linkLocal = [
    '169.254.169.254',
    '169.254.0.1',
    'fe80::1',
    'febf::1',
    'fe80::1%eth0',
    '::ffff:169.254.169.254',
    // IPv4 embedded in IPv6: each of these reaches 169.254.169.254.
    '64:ff9b::a9fe:a9fe', // NAT64
    '64:ff9b::169.254.169.254',
    '2002:a9fe:a9fe::1', // 6to4
    '::169.254.169.254', // IPv4-compatible
    '::ffff:0:a9fe:a9fe', // IPv4-translated
    '2001:0:a9fe:a9fe::1', // Teredo server
  ];
  const metadata = ['100.100.100.200', 'fd00:ec2::254', 'fd00:ec2:0::254', '::ffff:100.100.100.200', '64:ff9b::6464:64c8', '2002:6464:64c8::'];
  const whenPrivate = [
    '127.0.0.1', '127.1.2.3', '10.0.0.1', '172.16.0.1', '172.31.255.255', '192.168.1.1', '100.64.0.1', '0.0.0.0',
    '::1', '::', 'fc00::1', 'fd12::1', '::ffff:127.0.0.1', '::ffff:10.1.1.1',
    '64:ff9b::7f00:1', '2002:c0a8:101::1', '::10.0.0.1', '64:ff9b:1::1',
  ];
  const never = ['8.8.8.8', '1.1.1.1', '172.32.0.1', '192.169.0.1', '169.255.0.1', '2606:4700::1111', '2001:db8::1', '64:ff9b::808:808', '2002:808:808::1'];

  it.each(linkLocal)('%s: always (link-local)', (address) => {
    expect(open.refusal(address)).toBe('link-local');
    expect(strict.refusal(address)).toBe('link-local');
  });

  it.each(metadata)('%s: always (cloud metadata), even when HTTP_ALLOW covers it', (address) => {
    expect(open.refusal(address)).toBe('cloud metadata');
    expect(strict.refusal(address)).toBe('cloud metadata');
    const allowAll = new SsrfGuard({ blockPrivate: true, allow: allow('0.0.0.0/0', '::/0', 'fd00::/8', address) });
    expect(allowAll.refusal(address, { host: address, port: 80 })).toBe('cloud metadata');
  });

  it.each(whenPrivate)('%s: by default, not with HTTP_BLOCK_PRIVATE=false', (address) => {
    expect(open.refusal(address)).toBeUndefined();
    expect(strict.refusal(address)).toBe('loopback or private');
  });

  it.each(never)('%s: never', (address) => {
    expect(strict.refusal(address)).toBeUndefined();
  });
});

function allow(...entries: string[]): AllowEntry[] {
  return entries.map((text) => {
    const entry = parseAllowEntry(text);
    if (typeof entry === 'string') throw new Error(entry);
    return entry;
  });
}

describe('HTTP_ALLOW', () => {
  const guard = new SsrfGuard({ blockPrivate: true, allow: allow('10.1.0.0/16', 'fd12::/16', 'db.internal', 'cache.internal:6380', '127.0.0.1:8080', '[::1]:9000') });

  it('lets addresses of a listed network through, on any port', () => {
    expect(guard.refusal('10.1.2.3', { host: '10.1.2.3', port: 80 })).toBeUndefined();
    expect(guard.refusal('fd12::5', { host: 'x', port: 1 })).toBeUndefined();
    expect(guard.refusal('10.2.0.1', { host: '10.2.0.1', port: 80 })).toBe('loopback or private');
  });

  it('lets a listed host through whatever private address it resolves to; with a port, only on that port', () => {
    expect(guard.refusal('192.168.7.7', { host: 'DB.Internal.', port: 5432 })).toBeUndefined();
    expect(guard.refusal('192.168.7.7', { host: 'cache.internal', port: 6380 })).toBeUndefined();
    expect(guard.refusal('192.168.7.7', { host: 'cache.internal', port: 6379 })).toBe('loopback or private');
    expect(guard.refusal('192.168.7.7', { host: 'other.internal', port: 5432 })).toBe('loopback or private');
    expect(guard.refusal('127.0.0.1', { host: '127.0.0.1', port: 8080 })).toBeUndefined();
    expect(guard.refusal('127.0.0.1', { host: 'localhost', port: 8080 })).toBeUndefined();
    expect(guard.refusal('127.0.0.1', { host: '127.0.0.1', port: 8081 })).toBe('loopback or private');
    expect(guard.refusal('::1', { host: '[0:0::1]', port: 9000 })).toBeUndefined();
  });

  it('never lets link-local or metadata addresses through, even for a listed host', () => {
    expect(guard.refusal('169.254.169.254', { host: 'db.internal', port: 80 })).toBe('link-local');
    expect(guard.refusal('fd00:ec2::254', { host: 'db.internal', port: 80 })).toBe('cloud metadata');
  });

  it.each([
    ['10.0.0.0/8', { kind: 'cidr', network: '10.0.0.0', prefix: 8, family: 'ipv4' }],
    ['fd00::/8', { kind: 'cidr', network: 'fd00::', prefix: 8, family: 'ipv6' }],
    ['Svc.Internal.', { kind: 'host', host: 'svc.internal', port: undefined }],
    ['svc:8080', { kind: 'host', host: 'svc', port: 8080 }],
    ['10.0.0.5:443', { kind: 'host', host: '10.0.0.5', port: 443 }],
    ['[::1]:9000', { kind: 'host', host: '::1', port: 9000 }],
    ['fd12::1', { kind: 'host', host: 'fd12::1', port: undefined }],
  ])('parses %s', (text, expected) => {
    expect(parseAllowEntry(text)).toMatchObject(expected);
  });

  it.each(['10.0.0.0/33', 'x y', 'svc:0', 'svc:99999', '[10.0.0.1]:80', 'http://svc', 'a/b'])('refuses the entry %s', (text) => {
    expect(typeof parseAllowEntry(text)).toBe('string');
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
    const executor = httpGetJson({ guard: new BypassedLookup({ blockPrivate: true }) });
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
