/** Bulk retry/cancel over a filter, GET /stats, and the dashboard's static files at /ui/. */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import type { ClaimedCommand } from '@agent-executor/common';
import type { App } from '../src/app.js';
import { BULK_BATCH } from '../src/routes/bulk.js';
import type { BulkBatch } from '../src/store/store.js';
import { delay, expectErrorShape, httpGet, submit, useApp } from './helpers.js';

const { build } = useApp();

async function failOne(app: App, agentId: string): Promise<ClaimedCommand> {
  const claimed = (await app.inject({ method: 'GET', url: `/commands/next?agentId=${agentId}` })).json<ClaimedCommand>();
  const res = await app.inject({
    method: 'PUT',
    url: `/commands/${claimed.id}/result`,
    payload: { agentId, leaseId: claimed.leaseId, status: 'FAILED', error: 'boom' },
  });
  expect(res.statusCode, res.body).toBe(200);
  return claimed;
}

const post = (app: App, url: string, payload?: unknown, headers: Record<string, string> = {}) =>
  app.inject({ method: 'POST', url, headers, ...(payload === undefined ? {} : { payload: payload as object }) });

describe('POST /commands/retry-failed', () => {
  test('retries the FAILED commands of the filter and answers how many', async () => {
    const { app } = await build();
    await submit(app, delay(10, { maxAttempts: 1 }));
    await submit(app, delay(10, { maxAttempts: 1 }));
    await submit(app, httpGet('https://example.com/x.json'));
    const a = await failOne(app, 'agent-a');
    const b = await failOne(app, 'agent-b');
    const h = await failOne(app, 'agent-a');
    const res = await post(app, '/commands/retry-failed', { type: 'DELAY', agentId: 'agent-a' });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json()).toEqual({ count: 1 });
    const status = async (id: string) => (await app.inject({ url: `/commands/${id}` })).json<{ status: string }>().status;
    expect([await status(a.id), await status(b.id), await status(h.id)]).toEqual(['PENDING', 'FAILED', 'FAILED']);
    // The queue filter reaches the store: no FAILED command is in queue "other".
    expect((await post(app, '/commands/retry-failed', { queue: 'other' })).json()).toEqual({ count: 0 });
    expect((await post(app, '/commands/retry-failed', {})).json()).toEqual({ count: 2 });
    expect((await post(app, '/commands/retry-failed', {})).json()).toEqual({ count: 0 });
  });

  test('bad filters are 400s that name the field; a missing body too (no accidental "retry all")', async () => {
    const { app } = await build();
    for (const [payload, field] of [
      [{ type: 'NOPE' }, 'type'],
      [{ agentId: 'has space' }, 'agentId'],
      [{ queue: 'no spaces' }, 'queue'],
      [{ createdBefore: 'yesterday' }, 'createdBefore'],
      [{ status: 'FAILED' }, 'status'],
    ] as const) {
      const res = await post(app, '/commands/retry-failed', payload);
      expect(res.statusCode, res.body).toBe(400);
      expectErrorShape(res.json(), 400);
      expect(res.body).toContain(field);
    }
    const empty = await app.inject({ method: 'POST', url: '/commands/cancel-pending', headers: { 'content-type': 'application/json' } });
    expect(empty.statusCode).toBe(400);
    expect(empty.json<{ message: string }>().message).toMatch(/^body: /);
  });

  test('API_TOKEN guards both bulk routes and /stats', async () => {
    const { app } = await build({ env: { API_TOKEN: 'client-token-0123456789' } });
    for (const [method, url] of [['POST', '/commands/retry-failed'], ['POST', '/commands/cancel-pending'], ['GET', '/stats']] as const) {
      const res = await app.inject({ method, url, ...(method === 'POST' ? { payload: {} } : {}) });
      expect(res.statusCode, url).toBe(401);
      const ok = await app.inject({ method, url, headers: { authorization: 'Bearer client-token-0123456789' }, ...(method === 'POST' ? { payload: {} } : {}) });
      expect(ok.statusCode, url).toBe(200);
    }
  });
});

describe('POST /commands/cancel-pending', () => {
  test(`works in batches of ${BULK_BATCH}, one transaction each, and cancels every PENDING one`, async () => {
    const { app, store } = await build();
    const n = BULK_BATCH * 2 + 50;
    const res = await app.inject({ method: 'POST', url: '/commands/batch', payload: { commands: Array.from({ length: n }, () => delay(10)) } });
    expect(res.statusCode).toBe(201);
    const batches: BulkBatch[] = [];
    const cancelPending = store.cancelPending.bind(store);
    store.cancelPending = async (filter, batch) => {
      batches.push(batch);
      return cancelPending(filter, batch);
    };
    const answer = await post(app, '/commands/cancel-pending', { type: 'DELAY' });
    expect(answer.json()).toEqual({ count: n });
    expect(batches.length).toBe(4); // three with rows, one that finds none
    expect(batches.every((b) => b.max === BULK_BATCH)).toBe(true);
    expect((await store.countByStatus()).PENDING).toBe(0);
  });
});

describe('GET /stats', () => {
  test('counts by status and the newest event id', async () => {
    const { app } = await build();
    await submit(app);
    await submit(app);
    await failOne(app, 'agent-1');
    const res = await app.inject({ url: '/stats' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ counts: { PENDING: 1, RUNNING: 0, COMPLETED: 0, FAILED: 1 }, lastEventId: 4 });
  });
});

describe('/ui/', () => {
  const built = mkdtempSync(join(tmpdir(), 'dashboard-dist-'));
  mkdirSync(join(built, 'assets'));
  writeFileSync(join(built, 'index.html'), '<!doctype html><title>dash</title><script type="module" src="/ui/assets/index-abc123.js"></script>');
  writeFileSync(join(built, 'assets', 'index-abc123.js'), 'console.log(1)');
  writeFileSync(join(built, '.secret'), 'x');
  const empty = mkdtempSync(join(tmpdir(), 'dashboard-none-'));
  afterAll(() => {
    rmSync(built, { recursive: true, force: true });
    rmSync(empty, { recursive: true, force: true });
  });

  test('/ui redirects to /ui/; index.html is revalidated, hashed assets are immutable', async () => {
    const { app } = await build({ dashboardDir: built });
    const redirect = await app.inject({ url: '/ui' });
    expect(redirect.statusCode).toBe(301);
    expect(redirect.headers.location).toBe('/ui/');
    const index = await app.inject({ url: '/ui/' });
    expect(index.statusCode).toBe(200);
    expect(index.headers['content-type']).toMatch(/^text\/html/);
    expect(index.headers['cache-control']).toBe('no-cache');
    expect(index.headers['content-security-policy']).toContain("default-src 'self'");
    const asset = await app.inject({ url: '/ui/assets/index-abc123.js' });
    expect(asset.statusCode).toBe(200);
    expect(asset.headers['cache-control']).toBe('public, max-age=31536000, immutable');
    expect((await app.inject({ url: '/ui/assets/missing.js' })).statusCode).toBe(404);
    expect((await app.inject({ url: '/ui/.secret' })).statusCode).not.toBe(200);
    expect((await app.inject({ url: '/ui/../package.json' })).statusCode).not.toBe(200);
  });

  test('a server without a built dashboard answers 503 with a page that says how to build it', async () => {
    const { app } = await build({ dashboardDir: empty });
    for (const url of ['/ui/', '/ui/assets/index-abc123.js']) {
      const res = await app.inject({ url });
      expect(res.statusCode, url).toBe(503);
      expect(res.headers['content-type']).toMatch(/^text\/html/);
      expect(res.body).toContain('npm run build');
    }
    // The API is unaffected.
    expect((await app.inject({ url: '/health' })).statusCode).toBe(200);
  });
});
