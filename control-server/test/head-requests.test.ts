/** HEAD runs no GET that changes state (a lease) or opens a stream; it stays on the reading GETs. */
import { describe, expect, test } from 'vitest';
import { delay, listen, submit, useApp } from './helpers.js';

const { build } = useApp();
const AGENT_TOKEN = 'an-agent-token-of-enough-length';

describe('HEAD', () => {
  test('HEAD on next and next-batch answers 405 Allow: GET and leases nothing', async () => {
    const { app, store } = await build();
    const base = await listen(app);
    const commands = await Promise.all(Array.from({ length: 5 }, () => submit(app, delay(1))));
    for (const url of ['/commands/next?agentId=x', '/commands/next?agentId=x&wait=1', '/commands/next-batch?agentId=x&max=100', '/commands/next']) {
      const res = await fetch(`${base}${url}`, { method: 'HEAD' });
      expect(res.status, url).toBe(405);
      expect(res.headers.get('allow'), url).toBe('GET');
    }
    for (const command of commands) {
      expect(await store.get(command.id)).toMatchObject({ status: 'PENDING', attempts: 0, agentId: null });
    }
    // GET still leases.
    const res = await fetch(`${base}/commands/next?agentId=x`);
    expect(res.status).toBe(200);
  });

  test('authentication still comes first', async () => {
    const { app } = await build({ env: { AGENT_TOKEN } });
    const res = await app.inject({ method: 'HEAD', url: '/commands/next?agentId=x' });
    expect(res.statusCode).toBe(401);
    const authed = await app.inject({
      method: 'HEAD',
      url: '/commands/next?agentId=x',
      headers: { authorization: `Bearer ${AGENT_TOKEN}` },
    });
    expect(authed.statusCode).toBe(405);
  });

  test('HEAD on an SSE stream answers 405 at once instead of holding the connection', async () => {
    const { app } = await build();
    const base = await listen(app);
    const command = await submit(app, delay(1));
    for (const url of ['/events', `/commands/${command.id}/events`]) {
      const res = await fetch(`${base}${url}`, { method: 'HEAD', signal: AbortSignal.timeout(3000) });
      expect(res.status, url).toBe(405);
    }
    expect(app.sseHub.size).toBe(0);
  });

  test('HEAD stays on the GETs that only read', async () => {
    const { app } = await build();
    const command = await submit(app, delay(1));
    for (const url of ['/health', `/commands/${command.id}`, '/commands?limit=1', '/metrics']) {
      const res = await app.inject({ method: 'HEAD', url });
      expect(res.statusCode, url).toBe(200);
      expect(res.body, url).toBe('');
    }
    expect((await app.inject({ method: 'HEAD', url: '/commands/00000000-0000-7000-8000-000000000000' })).statusCode).toBe(404);
  });
});
