/**
 * Bad input of every kind: each answer is a 4xx in the `{ statusCode, error, message, issues? }`
 * shape with a message that names the problem, and nothing is stored or changed.
 */
import { describe, expect, test } from 'vitest';
import type { ClaimedCommand, Command } from '@agent-executor/common';
import type { App, CommandStore } from '../src/app.js';
import { countCommands, expectErrorShape, useApp } from './helpers.js';

// One app for the whole table: every case must leave it exactly as it was, and each checks that.
const { build } = useApp({ scope: 'all' });
let shared: Promise<{ app: App; store: CommandStore; leased: ClaimedCommand }> | undefined;

async function setUp() {
  const { app, store } = await build();
  // One command leased to agent-1, so the agent routes have something real to get wrong.
  await store.submit({ type: 'DELAY', payload: { ms: 1 } });
  const leased = await store.claim('agent-1', 60_000);
  if (!leased) throw new Error('nothing to lease');
  return { app, store, leased };
}

interface Case {
  method: 'GET' | 'POST' | 'PUT';
  /** `:id` is replaced by the id of a command leased to agent-1, `:lease` by its lease id. */
  url: string;
  /** Sent as JSON; a string is sent as is (with Content-Type: application/json unless headers say otherwise). */
  body?: unknown;
  headers?: Record<string, string>;
  status: number;
  message: RegExp;
}

const json = { 'content-type': 'application/json' };
const submit = (body: unknown, message: RegExp, status = 400, headers?: Record<string, string>): Case => ({
  method: 'POST',
  url: '/commands',
  body,
  status,
  message,
  ...(headers ? { headers } : {}),
});
const delay = (payload: unknown, extra: object = {}) => ({ type: 'DELAY', payload, ...extra });
const get = (url: string, message: RegExp, status = 400): Case => ({ method: 'GET', url, status, message });
const result = (body: unknown, message: RegExp, status = 400): Case => ({
  method: 'PUT',
  url: '/commands/:id/result',
  body,
  status,
  message,
});
const heartbeat = (body: unknown, message: RegExp): Case => ({
  method: 'POST',
  url: '/commands/:id/heartbeat',
  body,
  status: 400,
  message,
});

const cases: Record<string, Case> = {
  // POST /commands: the body as a whole
  'submit without a body': { method: 'POST', url: '/commands', status: 400, message: /^body: .*expected object/ },
  'submit with an empty JSON body': submit('', /^body: .*expected object/, 400, json),
  'submit with JSON null': submit('null', /^body: .*expected object/, 400, json),
  'submit with a JSON array': submit('[]', /^body: .*expected object/, 400, json),
  'submit with a JSON string': submit('"DELAY"', /^body: .*expected object/, 400, json),
  'submit with invalid JSON': submit('{"type": "DELAY", ', /not valid JSON/, 400, json),
  'submit with JSON and trailing garbage': submit('{"type":"DELAY","payload":{"ms":1}} x', /not valid JSON/, 400, json),
  'submit as text/plain': submit(JSON.stringify(delay({ ms: 1 })), /Unsupported Media Type|content.type/i, 415, {
    'content-type': 'text/plain',
  }),
  'submit as form data': submit('type=DELAY&payload[ms]=1', /Unsupported Media Type|content.type/i, 415, {
    'content-type': 'application/x-www-form-urlencoded',
  }),
  'submit with a body over 1 MiB': submit(
    JSON.stringify(delay({ ms: 1 }, { pad: 'x'.repeat(1024 * 1024 + 1) })),
    /too large/i,
    413,
    json,
  ),
  'submit with an empty object': submit({}, /type/),
  'submit with an unknown type': submit({ type: 'SHELL', payload: { cmd: 'rm -rf /' } }, /type: .*DELAY.*HTTP_GET_JSON/),
  'submit with a numeric type': submit({ type: 7, payload: { ms: 1 } }, /type/),
  'submit without a payload': submit({ type: 'DELAY' }, /payload/),
  'submit with a non-object payload': submit(delay(5), /payload/),
  'submit with an unknown top-level field': submit(delay({ ms: 1 }, { urgency: 9 }), /Unrecognized key.*urgency/),
  // Routing fields (SPEC §9)
  'submit with an upper-case queue': submit(delay({ ms: 1 }, { queue: 'GPU' }), /queue: a queue name/),
  'submit with a 65-character queue': submit(delay({ ms: 1 }, { queue: 'q'.repeat(65) }), /queue/),
  'submit with priority 101': submit(delay({ ms: 1 }, { priority: 101 }), /priority: .*<=100/),
  'submit with priority 1.5': submit(delay({ ms: 1 }, { priority: 1.5 }), /priority: .*int/),
  'submit with runAt two years ahead': submit(delay({ ms: 1 }, { runAt: new Date(Date.now() + 2 * 366 * 86_400_000).toISOString() }), /runAt: must be at most one year ahead/),
  'submit with runAt not a time': submit(delay({ ms: 1 }, { runAt: 'tomorrow' }), /runAt/),
  'submit with a concurrencyKey and no limit': submit(delay({ ms: 1 }, { concurrencyKey: 'k' }), /concurrencyLimit: concurrencyKey and concurrencyLimit go together/),
  'submit with a concurrencyLimit of 0': submit(delay({ ms: 1 }, { concurrencyKey: 'k', concurrencyLimit: 0 }), /concurrencyLimit: .*>=1/),
  'submit with a __proto__ field': submit('{"type":"DELAY","payload":{"ms":1},"__proto__":{"admin":true}}', /__proto__/, 400, json),
  // DELAY payload
  'DELAY without ms': submit(delay({}), /payload\.ms/),
  'DELAY with negative ms': submit(delay({ ms: -5 }), /payload\.ms: .*>=0/),
  'DELAY with ms over 24 h': submit(delay({ ms: 86_400_001 }), /payload\.ms: .*<=86400000/),
  'DELAY with a huge ms': submit(delay({ ms: 1e300 }), /payload\.ms/),
  'DELAY with non-integer ms': submit(delay({ ms: 1.5 }), /payload\.ms: .*int/),
  'DELAY with ms as a string': submit(delay({ ms: '3000' }), /payload\.ms: .*expected number, received string/),
  'DELAY with ms null': submit(delay({ ms: null }), /payload\.ms/),
  'DELAY with ms true': submit(delay({ ms: true }), /payload\.ms/),
  'DELAY with an unknown payload field': submit(delay({ ms: 1, shell: 'ls' }), /payload: Unrecognized key.*shell/),
  'DELAY with a url payload': submit(delay({ url: 'https://example.com/' }), /payload/),
  'DELAY with ms equal to timeoutMs': submit(delay({ ms: 1000 }, { timeoutMs: 1000 }), /timeoutMs: must be greater than payload\.ms/),
  'DELAY with ms above timeoutMs': submit(delay({ ms: 5000 }, { timeoutMs: 1000 }), /timeoutMs/),
  // Options
  'timeoutMs 0': submit(delay({ ms: 1 }, { timeoutMs: 0 }), /timeoutMs: .*>=1/),
  'negative timeoutMs': submit(delay({ ms: 1 }, { timeoutMs: -1 }), /timeoutMs/),
  'non-integer timeoutMs': submit(delay({ ms: 1 }, { timeoutMs: 10.5 }), /timeoutMs/),
  'timeoutMs as a string': submit(delay({ ms: 1 }, { timeoutMs: '1000' }), /timeoutMs/),
  'timeoutMs over 24 h': submit(delay({ ms: 1 }, { timeoutMs: 86_400_001 }), /timeoutMs/),
  'maxAttempts 0': submit(delay({ ms: 1 }, { maxAttempts: 0 }), /maxAttempts: .*>=1/),
  'maxAttempts 21': submit(delay({ ms: 1 }, { maxAttempts: 21 }), /maxAttempts: .*<=20/),
  'non-integer maxAttempts': submit(delay({ ms: 1 }, { maxAttempts: 2.5 }), /maxAttempts/),
  // HTTP_GET_JSON payload
  'an ftp:// URL': submit({ type: 'HTTP_GET_JSON', payload: { url: 'ftp://example.com/a.json' } }, /payload\.url: .*absolute http\(s\) URL/),
  'a relative URL': submit({ type: 'HTTP_GET_JSON', payload: { url: '/a.json' } }, /payload\.url: .*absolute http\(s\) URL/),
  'a URL without a host': submit({ type: 'HTTP_GET_JSON', payload: { url: 'http://' } }, /payload\.url/),
  'a javascript: URL': submit({ type: 'HTTP_GET_JSON', payload: { url: 'javascript:alert(1)' } }, /payload\.url/),
  'an empty URL': submit({ type: 'HTTP_GET_JSON', payload: { url: '' } }, /payload\.url/),
  'a URL over 2048 chars': submit(
    { type: 'HTTP_GET_JSON', payload: { url: `https://example.com/${'a'.repeat(2030)}` } },
    /payload\.url: .*2048/,
  ),
  'a numeric URL': submit({ type: 'HTTP_GET_JSON', payload: { url: 42 } }, /payload\.url/),
  'an HTTP_GET_JSON payload with extra fields': submit(
    { type: 'HTTP_GET_JSON', payload: { url: 'https://example.com/', method: 'POST' } },
    /Unrecognized key.*method/,
  ),
  // Idempotency-Key
  'an Idempotency-Key over 255 chars': submit(delay({ ms: 1 }), /idempotency-key: .*255/, 400, {
    'idempotency-key': 'k'.repeat(256),
  }),

  // GET /commands/next
  'next without agentId': get('/commands/next', /querystring agentId/),
  'next with an empty agentId': get('/commands/next?agentId=', /querystring agentId/),
  'next with an agentId over 128 chars': get(`/commands/next?agentId=${'a'.repeat(129)}`, /querystring agentId: .*128/),
  'next with spaces in agentId': get('/commands/next?agentId=agent%207', /querystring agentId: may hold only/),
  'next with markup in agentId': get('/commands/next?agentId=%3Cscript%3E', /querystring agentId: may hold only/),
  'next with wait=-1': get('/commands/next?agentId=a&wait=-1', /querystring wait: .*>=0/),
  'next with wait=61': get('/commands/next?agentId=a&wait=61', /querystring wait: .*<=60/),
  'next with wait=abc': get('/commands/next?agentId=a&wait=abc', /querystring wait/),
  'next with wait=1.5': get('/commands/next?agentId=a&wait=1.5', /querystring wait/),
  'next with an unknown parameter': get('/commands/next?agentId=a&priority=1', /Unrecognized key.*priority/),

  // GET /commands
  'list with a made-up cursor': get('/commands?cursor=zzz', /cursor/),
  'list with a cursor of another shape': get(`/commands?cursor=${Buffer.from('c1234567890123456789').toString('base64url')}`, /cursor/),
  'list with a cursor over 64 chars': get(`/commands?cursor=${'a'.repeat(65)}`, /cursor/),
  'list with limit=0': get('/commands?limit=0', /querystring limit: .*>=1/),
  'list with limit=1001': get('/commands?limit=1001', /querystring limit: .*<=1000/),
  'list with limit=-5': get('/commands?limit=-5', /querystring limit/),
  'list with limit=ten': get('/commands?limit=ten', /querystring limit/),
  'list with an unknown status': get('/commands?status=DONE', /querystring status: .*PENDING/),
  'list with an unknown type': get('/commands?type=SHELL', /querystring type/),
  'list with a bad agentId': get('/commands?agentId=a%20b', /querystring agentId/),
  'list with an unknown parameter': get('/commands?sort=asc', /Unrecognized key.*sort/),

  // GET /commands/:id
  'get an unknown id': get('/commands/3f0c0000-0000-0000-0000-000000000000', /not found/, 404),
  'get an id over 64 chars': get(`/commands/${'a'.repeat(65)}`, /params id/),
  'get with broken percent-encoding': get('/commands/%E0%A4%A', /not a valid url/),
  'next with agentId given twice': get('/commands/next?agentId=a&agentId=b', /querystring agentId: .*array/),
  'list with limit given twice': get('/commands?limit=1&limit=2', /querystring limit/),

  // PUT /commands/:id/result
  'result without a body': { method: 'PUT', url: '/commands/:id/result', status: 400, message: /^body: .*expected object/ },
  'result without agentId': result({ result: { ok: true } }, /agentId/),
  'result with a bad agentId': result({ agentId: 'agent 1', result: {} }, /agentId: may hold only/),
  'result with an unknown status': result({ agentId: 'agent-1', status: 'DONE' }, /status/),
  'result with retryable as a string': result({ agentId: 'agent-1', status: 'FAILED', retryable: 'yes' }, /retryable/),
  'result with an unknown field': result({ agentId: 'agent-1', result: {}, exitCode: 0 }, /Unrecognized key.*exitCode/),
  'result with an error over 4096 chars': result({ agentId: 'agent-1', status: 'FAILED', error: 'e'.repeat(4097) }, /error/),
  'result with a result over 256 KiB': result({ agentId: 'agent-1', result: 'r'.repeat(256 * 1024 + 1) }, /result: larger than/, 413),
  'result nested 100 000 levels deep': result(
    `{"agentId":"agent-1","result":${'['.repeat(100_000)}${']'.repeat(100_000)}}`,
    /result: nested deeper than/,
  ),
  'result for an unknown id': {
    method: 'PUT',
    url: '/commands/no-such-command/result',
    body: { agentId: 'agent-1', result: {} },
    status: 404,
    message: /not found/,
  },
  'result as text/plain': {
    method: 'PUT',
    url: '/commands/:id/result',
    body: '{"agentId":"agent-1","result":{}}',
    headers: { 'content-type': 'text/plain' },
    status: 415,
    message: /Unsupported Media Type|content.type/i,
  },

  // POST /commands/:id/heartbeat
  'heartbeat without leaseId': heartbeat({ agentId: 'agent-1' }, /leaseId/),
  'heartbeat with percent 101': heartbeat({ agentId: 'agent-1', leaseId: ':lease', progress: { percent: 101 } }, /progress\.percent/),
  'heartbeat with percent -1': heartbeat({ agentId: 'agent-1', leaseId: ':lease', progress: { percent: -1 } }, /progress\.percent/),
  'heartbeat with an unknown progress field': heartbeat(
    { agentId: 'agent-1', leaseId: ':lease', progress: { percent: 5, eta: 3 } },
    /Unrecognized key.*eta/,
  ),

  // POST /commands/:id/cancel and /retry
  'cancel an unknown id': { method: 'POST', url: '/commands/no-such-command/cancel', status: 404, message: /not found/ },
  'retry an unknown id': { method: 'POST', url: '/commands/no-such-command/retry', status: 404, message: /not found/ },
};

describe('malformed input', () => {
  test.each(Object.entries(cases))('%s → 4xx, a clear message, nothing stored', async (_name, c) => {
    shared ??= setUp();
    const { app, store, leased } = await shared;
    const fill = (text: string) => text.replaceAll(':id', leased.id).replaceAll(':lease', leased.leaseId);
    const countBefore = await countCommands(store);
    const leasedBefore = await store.get(leased.id);
    const seqBefore = await store.lastEventSeq();

    const body = c.body === undefined ? undefined : typeof c.body === 'string' ? c.body : fill(JSON.stringify(c.body));
    const res = await app.inject({
      method: c.method,
      url: fill(c.url),
      ...(body === undefined ? {} : { payload: body }),
      headers: { ...(c.body === undefined ? {} : json), ...c.headers },
    });

    expect(res.statusCode, res.body).toBe(c.status);
    const answer = res.json<{ statusCode: number; message: string; issues?: unknown }>();
    expectErrorShape(answer, c.status);
    expect(answer.message).toMatch(c.message);
    if (answer.issues !== undefined) {
      expect(answer.issues).toEqual(expect.arrayContaining([{ path: expect.any(String), message: expect.any(String) }]));
    }
    expect(await countCommands(store)).toBe(countBefore);
    expect(await store.get(leased.id)).toEqual(leasedBefore as Command);
    expect(await store.lastEventSeq()).toBe(seqBefore);
  });

  // The control: the same app, after every case above, accepts the well-formed version of each
  // kind of request. A server that refused everything (a broken route, a validator that rejects
  // valid input) would pass the table; it fails here.
  test('after all of them, the same app accepts the well-formed requests they were one mistake from', async () => {
    shared ??= setUp();
    const { app, store, leased } = await shared;
    const before = await countCommands(store);
    const send = (method: Case['method'], url: string, body?: unknown, headers: Record<string, string> = {}) =>
      app.inject({ method, url, ...(body === undefined ? {} : { payload: JSON.stringify(body), headers: { ...json, ...headers } }) });

    expect((await send('POST', '/commands', delay({ ms: 1 }), { 'idempotency-key': 'k'.repeat(255) })).statusCode).toBe(201);
    expect((await send('POST', '/commands', { type: 'HTTP_GET_JSON', payload: { url: `https://example.com/${'a'.repeat(2020)}` } })).statusCode).toBe(201);
    expect(await countCommands(store)).toBe(before + 2);
    expect((await send('GET', '/commands?limit=1000')).statusCode).toBe(200);
    expect((await send('GET', `/commands/${leased.id}`)).statusCode).toBe(200);
    const beat = await send('POST', `/commands/${leased.id}/heartbeat`, { agentId: 'agent-1', leaseId: leased.leaseId, progress: { percent: 5 } });
    expect(beat.statusCode, beat.body).toBe(200);
    const done = await send('PUT', `/commands/${leased.id}/result`, { agentId: 'agent-1', leaseId: leased.leaseId, result: { ok: true } });
    expect(done.statusCode, done.body).toBe(200);
    expect((await store.get(leased.id))?.status).toBe('COMPLETED');
    const next = await send('GET', '/commands/next?agentId=agent-2');
    expect(next.statusCode).toBe(200);
  });
});
