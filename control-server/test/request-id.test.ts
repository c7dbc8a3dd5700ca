/**
 * X-Request-Id: taken from the client when sane, made (a UUID) otherwise, echoed on every
 * answer (errors, 401s, SSE streams included) and written in the server's log lines.
 */
import { afterEach, describe, expect, test } from 'vitest';
import { killAll, startServer, tempDir, waitForOutput } from '../../test-support/processes.js';
import { delay, submit, useApp } from './helpers.js';

const { build } = useApp();
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('X-Request-Id', () => {
  test('a sane id sent by the client is echoed as it is', async () => {
    const { app } = await build();
    for (const id of ['a1b2c3', 'agent-7:call/42@host=x+y', 'x'.repeat(128)]) {
      const res = await app.inject({ method: 'GET', url: '/health', headers: { 'x-request-id': id } });
      expect(res.headers['x-request-id']).toBe(id);
    }
  });

  test('without one, or with one too long or with unsafe characters, a fresh UUID is made per request', async () => {
    const { app } = await build();
    const made: string[] = [];
    for (const sent of [undefined, undefined, 'x'.repeat(129), 'has space', 'new\u2028line', '', '<script>']) {
      const res = await app.inject({ method: 'GET', url: '/health', headers: sent === undefined ? {} : { 'x-request-id': sent } });
      const echoed = String(res.headers['x-request-id']);
      expect(echoed, JSON.stringify(sent)).toMatch(UUID);
      made.push(echoed);
    }
    expect(new Set(made).size).toBe(made.length);
  });

  test('is echoed on errors, on a 401 from the auth hook, on a 404 route and on an SSE stream', async () => {
    const token = 'request-id-token-0123456789';
    const { app } = await build({ env: { API_TOKEN: token } });
    const auth = { authorization: `Bearer ${token}` };
    const cases = [
      { method: 'GET' as const, url: '/commands/missing', headers: auth, status: 404 },
      { method: 'GET' as const, url: '/commands', headers: {}, status: 401 },
      { method: 'GET' as const, url: '/no-such-route', headers: {}, status: 404 },
      { method: 'POST' as const, url: '/commands', headers: { ...auth, 'content-type': 'application/json' }, payload: '{', status: 400 },
    ];
    for (const [i, c] of cases.entries()) {
      const id = `case-${i}`;
      const res = await app.inject({ ...c, headers: { ...c.headers, 'x-request-id': id } });
      expect(res.statusCode, c.url).toBe(c.status);
      expect(res.headers['x-request-id'], c.url).toBe(id);
    }

    const command = await submit(app, delay(5), auth);
    const baseUrl = await app.listen({ port: 0, host: '127.0.0.1' });
    const controller = new AbortController();
    const stream = await fetch(`${baseUrl}/commands/${command.id}/events`, {
      headers: { ...auth, 'x-request-id': 'sse-stream-1' },
      signal: controller.signal,
    });
    expect(stream.headers.get('content-type')).toContain('text/event-stream');
    expect(stream.headers.get('x-request-id')).toBe('sse-stream-1');
    controller.abort();
    await stream.body?.cancel().catch(() => {});
  });

  test('the server logs the id, so a request can be found in its log', async () => {
    const dir = tempDir('request-id-log');
    let passed = false;
    try {
      const server = await startServer({ DB_PATH: `${dir.path}/db.sqlite`, LOG_LEVEL: 'info' });
      const res = await fetch(`${server.url}/commands/absent`, { headers: { 'x-request-id': 'find-me-in-the-log' } });
      expect(res.status).toBe(404);
      expect(res.headers.get('x-request-id')).toBe('find-me-in-the-log');
      await waitForOutput(server, /"reqId":"find-me-in-the-log".*"statusCode":404/);
      passed = true;
    } finally {
      await killAll();
      dir.cleanup(passed);
    }
  });
});

afterEach(async () => {
  await killAll();
});
