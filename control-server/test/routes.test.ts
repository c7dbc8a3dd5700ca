/** Every route and every answer of SPEC §3, through app.inject on a temp database. */
import { describe, expect, test } from 'vitest';
import type { ClaimedCommand, Command } from '@agent-executor/common';
import type { App } from '../src/app.js';
import { countCommands, delay, expectErrorShape, httpGet, nextEvent, submit, useApp } from './helpers.js';

const { build } = useApp();

const API_TOKEN = 'client-token-0123456789';
const AGENT_TOKEN = 'agent-token-0123456789';

async function next(app: App, agentId = 'agent-1', headers: Record<string, string> = {}): Promise<ClaimedCommand> {
  const res = await app.inject({ method: 'GET', url: `/commands/next?agentId=${agentId}`, headers });
  expect(res.statusCode, res.body).toBe(200);
  return res.json<ClaimedCommand>();
}

async function getCommand(app: App, id: string): Promise<Command> {
  const res = await app.inject({ method: 'GET', url: `/commands/${id}` });
  expect(res.statusCode, res.body).toBe(200);
  return res.json<Command>();
}

const report = (app: App, id: string, payload: object) =>
  app.inject({ method: 'PUT', url: `/commands/${id}/result`, payload });
const heartbeat = (app: App, id: string, payload: object) =>
  app.inject({ method: 'POST', url: `/commands/${id}/heartbeat`, payload });

describe('GET /health', () => {
  test('200 {status:"ok"} while the database answers', async () => {
    const { app } = await build();
    const res = await app.inject({ method: 'GET', url: '/health' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ status: 'ok' });
  });

  test('503 in the error shape when the database is unusable', async () => {
    const { app, store } = await build();
    await store.close();
    const res = await app.inject({ method: 'GET', url: '/health' });
    expect(res.statusCode).toBe(503);
    expectErrorShape(res.json(), 503);
  });
});

describe('POST /commands', () => {
  test('201 with Location and { commandId, ...Command }', async () => {
    const { app } = await build();
    const res = await app.inject({ method: 'POST', url: '/commands', payload: delay(3000) });
    expect(res.statusCode).toBe(201);
    const body = res.json<Command & { commandId: string }>();
    expect(body.commandId).toBe(body.id);
    expect(body).toMatchObject({ type: 'DELAY', payload: { ms: 3000 }, status: 'PENDING', attempts: 0, maxAttempts: 3, timeoutMs: 33_000 });
    expect(res.headers.location).toBe(`/commands/${body.id}`);
    const { commandId: _, ...command } = body;
    // GET adds why a PENDING command waits (SPEC §9): no agent has polled this server yet.
    expect(await getCommand(app, body.id)).toEqual({ ...command, waitingFor: { reason: 'agent' } });
  });

  test('an HTTP_GET_JSON command with maxAttempts and timeoutMs', async () => {
    const { app } = await build();
    const created = await submit(app, { ...httpGet('https://example.com/x.json'), maxAttempts: 5, timeoutMs: 1000 });
    expect(created).toMatchObject({ type: 'HTTP_GET_JSON', payload: { url: 'https://example.com/x.json' }, maxAttempts: 5, timeoutMs: 1000 });
  });

  test('Idempotency-Key: same body → 200 with the first command and Idempotent-Replayed: true; other body → 422', async () => {
    const { app, store } = await build();
    const headers = { 'idempotency-key': 'order-42' };
    const first = await app.inject({ method: 'POST', url: '/commands', payload: delay(5), headers });
    expect(first.statusCode).toBe(201);
    expect(first.headers['idempotent-replayed']).toBeUndefined();
    const again = await app.inject({ method: 'POST', url: '/commands', payload: delay(5), headers });
    expect(again.statusCode).toBe(200);
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(again.headers.location).toBe(first.headers.location);
    expect(again.json()).toEqual(first.json());
    const other = await app.inject({ method: 'POST', url: '/commands', payload: delay(6), headers });
    expect(other.statusCode).toBe(422);
    expectErrorShape(other.json(), 422);
    expect(other.json().message).toMatch(/Idempotency-Key/);
    expect(await countCommands(store)).toBe(1);
  });

  test('400 for an invalid body, with issues', async () => {
    const { app } = await build();
    const res = await app.inject({ method: 'POST', url: '/commands', payload: { type: 'DELAY', payload: { ms: -5 } } });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toEqual({
      statusCode: 400,
      error: 'Bad Request',
      message: expect.stringContaining('payload.ms'),
      issues: [{ path: 'payload.ms', message: expect.any(String) }],
    });
  });

  test('413 for a body over 1 MiB', async () => {
    const { app, store } = await build();
    const payload = JSON.stringify({ type: 'DELAY', payload: { ms: 1 }, pad: 'x'.repeat(1024 * 1024) });
    const res = await app.inject({ method: 'POST', url: '/commands', payload, headers: { 'content-type': 'application/json' } });
    expect(res.statusCode).toBe(413);
    expectErrorShape(res.json(), 413);
    expect(await countCommands(store)).toBe(0);
  });

  test.each([
    ['text/plain', JSON.stringify(delay(5))],
    ['application/x-www-form-urlencoded', 'type=DELAY&ms=5'],
    ['application/xml', '<command type="DELAY"/>'],
  ])('415 for a %s body', async (contentType, payload) => {
    const { app, store } = await build();
    const res = await app.inject({ method: 'POST', url: '/commands', payload, headers: { 'content-type': contentType } });
    expect(res.statusCode).toBe(415);
    expectErrorShape(res.json(), 415);
    expect(await countCommands(store)).toBe(0);
  });

  test('application/json with a charset is JSON', async () => {
    const { app } = await build();
    const res = await app.inject({
      method: 'POST',
      url: '/commands',
      payload: JSON.stringify(delay(5)),
      headers: { 'content-type': 'application/json; charset=utf-8' },
    });
    expect(res.statusCode).toBe(201);
  });
});

describe('GET /commands', () => {
  test('newest first, filtered by status, type and agentId', async () => {
    const { app } = await build();
    const a = await submit(app, delay(1));
    const b = await submit(app, httpGet('https://example.com/'));
    const c = await submit(app, delay(2));
    await next(app, 'agent-7'); // leases a
    const ids = async (query: string) =>
      (await app.inject({ method: 'GET', url: `/commands${query}` })).json<Command[]>().map((x) => x.id);
    expect(await ids('')).toEqual([c.id, b.id, a.id]);
    expect(await ids('?status=RUNNING')).toEqual([a.id]);
    expect(await ids('?status=PENDING')).toEqual([c.id, b.id]);
    expect(await ids('?type=HTTP_GET_JSON')).toEqual([b.id]);
    expect(await ids('?agentId=agent-7')).toEqual([a.id]);
    expect(await ids('?agentId=agent-8')).toEqual([]);
    expect(await ids('?limit=2')).toEqual([c.id, b.id]);
  });

  test('pages through Link: rel="next", keeping the filters, stable under inserts', async () => {
    const { app } = await build();
    const older: string[] = [];
    for (let i = 0; i < 7; i++) older.push((await submit(app, delay(i))).id);
    await submit(app, httpGet('https://example.com/')); // filtered out below
    const seen: string[] = [];
    let url: string | undefined = '/commands?type=DELAY&limit=3';
    let pages = 0;
    while (url) {
      const res = await app.inject({ method: 'GET', url });
      expect(res.statusCode, res.body).toBe(200);
      seen.push(...res.json<Command[]>().map((c) => c.id));
      pages++;
      const link = res.headers.link;
      if (link === undefined) break;
      const match = /^<([^>]+)>; rel="next"$/.exec(String(link));
      expect(match, `a Link header: ${String(link)}`).not.toBeNull();
      url = match?.[1];
      expect(url).toMatch(/type=DELAY/);
      expect(url).toMatch(/limit=3/);
      await submit(app, delay(99)); // a new command between pages is not mixed into the old ones
    }
    expect(pages).toBe(3);
    expect(seen).toEqual([...older].reverse());
  });

  test('no Link header on the last page; default limit is 100', async () => {
    const { app, store } = await build();
    for (let i = 0; i < 101; i++) await store.submit({ type: 'DELAY', payload: { ms: i } });
    const first = await app.inject({ method: 'GET', url: '/commands' });
    expect(first.json<Command[]>()).toHaveLength(100);
    expect(first.headers.link).toMatch(/rel="next"/);
    const last = await app.inject({ method: 'GET', url: '/commands?limit=101' });
    expect(last.json<Command[]>()).toHaveLength(101);
    expect(last.headers.link).toBeUndefined();
  });
});

describe('GET /commands/:id', () => {
  test('200 with the command; 404 in the error shape for an unknown id', async () => {
    const { app } = await build();
    const created = await submit(app);
    expect((await getCommand(app, created.id)).id).toBe(created.id);
    const res = await app.inject({ method: 'GET', url: '/commands/3f0c0000-0000-0000-0000-000000000000' });
    expect(res.statusCode).toBe(404);
    expectErrorShape(res.json(), 404);
  });
});

describe('GET /commands/next', () => {
  test('200 with leaseId and leaseExpiresAt; the lease id is never shown elsewhere', async () => {
    const { app } = await build({ env: { LEASE_MS: '45000' } });
    const created = await submit(app);
    const before = Date.now();
    const claimed = await next(app, 'agent-1');
    expect(claimed).toMatchObject({ id: created.id, status: 'RUNNING', agentId: 'agent-1', attempts: 1 });
    expect(claimed.leaseId).toEqual(expect.any(String));
    const expires = Date.parse(claimed.leaseExpiresAt);
    expect(expires).toBeGreaterThanOrEqual(before + 45_000);
    expect(expires).toBeLessThanOrEqual(Date.now() + 45_000);
    const one = await app.inject({ method: 'GET', url: `/commands/${created.id}` });
    const list = await app.inject({ method: 'GET', url: '/commands' });
    expect(one.body).not.toContain(claimed.leaseId);
    expect(list.body).not.toContain(claimed.leaseId);
    expect(one.json()).not.toHaveProperty('leaseId');
  });

  test('204 with no body when there is no work', async () => {
    const { app } = await build();
    const res = await app.inject({ method: 'GET', url: '/commands/next?agentId=agent-1' });
    expect(res.statusCode).toBe(204);
    expect(res.body).toBe('');
  });

  test('400 for a bad agentId', async () => {
    const { app } = await build();
    const res = await app.inject({ method: 'GET', url: '/commands/next?agentId=not%20ok' });
    expect(res.statusCode).toBe(400);
    expectErrorShape(res.json(), 400);
    expect(res.json().message).toMatch(/agentId/);
  });
});

describe('PUT /commands/:id/result', () => {
  test('200 { success: true, command }; the same report twice answers 200 both times and changes nothing', async () => {
    const { app } = await build();
    await submit(app);
    const c = await next(app);
    const body = { agentId: 'agent-1', leaseId: c.leaseId, status: 'COMPLETED', result: { ok: true, tookMs: 10 } };
    const first = await report(app, c.id, body);
    expect(first.statusCode, first.body).toBe(200);
    expect(first.json()).toEqual({
      success: true,
      command: expect.objectContaining({ id: c.id, status: 'COMPLETED', result: { ok: true, tookMs: 10 } }),
    });
    const second = await report(app, c.id, body);
    expect(second.statusCode).toBe(200);
    expect(second.json()).toEqual(first.json());
  });

  test('the original body { result, agentId } completes the command', async () => {
    const { app } = await build();
    await submit(app);
    const c = await next(app);
    const res = await report(app, c.id, { result: { ok: true }, agentId: 'agent-1' });
    expect(res.statusCode).toBe(200);
    expect(res.json().command).toMatchObject({ status: 'COMPLETED', result: { ok: true } });
  });

  test('a retryable FAILED report puts the command back to PENDING', async () => {
    const { app } = await build();
    await submit(app);
    const c = await next(app);
    const res = await report(app, c.id, { agentId: 'agent-1', leaseId: c.leaseId, status: 'FAILED', error: 'timeout', retryable: true });
    expect(res.json().command).toMatchObject({ status: 'PENDING', error: 'timeout', attempts: 1 });
  });

  test('409 for an agent that does not hold the lease, and for another outcome after COMPLETED; 404 for an unknown id', async () => {
    const { app } = await build();
    await submit(app);
    const c = await next(app, 'agent-1');
    const notHolder = await report(app, c.id, { agentId: 'agent-2', result: {} });
    expect(notHolder.statusCode).toBe(409);
    expectErrorShape(notHolder.json(), 409);
    expect((await report(app, c.id, { agentId: 'agent-1', leaseId: c.leaseId, result: { n: 1 } })).statusCode).toBe(200);
    const after = await report(app, c.id, { agentId: 'agent-1', leaseId: c.leaseId, status: 'FAILED', error: 'x' });
    expect(after.statusCode).toBe(409);
    expect(after.json().message).toMatch(/COMPLETED/);
    const unknown = await report(app, 'no-such-command', { agentId: 'agent-1', result: {} });
    expect(unknown.statusCode).toBe(404);
    expectErrorShape(unknown.json(), 404);
  });

  test('413 for a result over 256 KiB, and the command is not changed', async () => {
    const { app } = await build();
    await submit(app);
    const c = await next(app);
    const res = await report(app, c.id, { agentId: 'agent-1', leaseId: c.leaseId, result: { text: 'x'.repeat(256 * 1024) } });
    expect(res.statusCode).toBe(413);
    expectErrorShape(res.json(), 413);
    expect(res.json().message).toMatch(/result/);
    expect((await getCommand(app, c.id)).status).toBe('RUNNING');
    // Just under the limit is fine.
    const ok = await report(app, c.id, { agentId: 'agent-1', leaseId: c.leaseId, result: { text: 'x'.repeat(200 * 1024) } });
    expect(ok.statusCode).toBe(200);
  });
});

describe('PUT /commands/:id/result, nesting', () => {
  test('a result nested 1000 levels deep is stored and read back; deeper is a 400, never a 500', async () => {
    const { app } = await build();
    await submit(app);
    await submit(app);
    const deep = (levels: number) => `${'{"a":'.repeat(levels - 1)}[]${'}'.repeat(levels - 1)}`;
    const [a, b] = [await next(app), await next(app)];
    const send = (c: ClaimedCommand, levels: number) =>
      app.inject({
        method: 'PUT',
        url: `/commands/${c.id}/result`,
        payload: `{"agentId":"agent-1","leaseId":"${c.leaseId}","result":${deep(levels)}}`,
        headers: { 'content-type': 'application/json' },
      });
    const ok = await send(a, 1000);
    expect(ok.statusCode, ok.body.slice(0, 200)).toBe(200);
    expect(JSON.stringify((await getCommand(app, a.id)).result)).toBe(deep(1000));
    const tooDeep = await send(b, 1001);
    expect(tooDeep.statusCode).toBe(400);
    expect(tooDeep.json().message).toMatch(/result: nested deeper than 1000 levels/);
    const wayTooDeep = await send(b, 50_000);
    expect(wayTooDeep.statusCode).toBe(400);
  });
});

describe('POST /commands/:id/heartbeat', () => {
  test('200 { leaseExpiresAt, cancelRequested }; progress is stored on the command', async () => {
    const { app } = await build({ env: { LEASE_MS: '60000' } });
    await submit(app);
    const c = await next(app);
    const res = await heartbeat(app, c.id, { agentId: 'agent-1', leaseId: c.leaseId, progress: { percent: 25, message: 'a quarter' } });
    expect(res.statusCode, res.body).toBe(200);
    const body = res.json<{ leaseExpiresAt: string; cancelRequested: boolean }>();
    expect(body.cancelRequested).toBe(false);
    expect(Date.parse(body.leaseExpiresAt)).toBeGreaterThanOrEqual(Date.parse(c.leaseExpiresAt));
    expect((await getCommand(app, c.id)).progress).toEqual({ percent: 25, message: 'a quarter' });
  });

  test('409 when the lease is lost; 404 for an unknown id', async () => {
    const { app } = await build();
    await submit(app);
    const c = await next(app);
    const lost = await heartbeat(app, c.id, { agentId: 'agent-2', leaseId: c.leaseId });
    expect(lost.statusCode).toBe(409);
    expectErrorShape(lost.json(), 409);
    await report(app, c.id, { agentId: 'agent-1', leaseId: c.leaseId, result: {} });
    expect((await heartbeat(app, c.id, { agentId: 'agent-1', leaseId: c.leaseId })).statusCode).toBe(409);
    const unknown = await heartbeat(app, 'no-such-command', { agentId: 'agent-1', leaseId: 'x' });
    expect(unknown.statusCode).toBe(404);
  });
});

describe('POST /commands/:id/cancel', () => {
  test('PENDING → 200 FAILED "canceled" at once, with or without a JSON body', async () => {
    const { app } = await build();
    const a = await submit(app);
    const res = await app.inject({ method: 'POST', url: `/commands/${a.id}/cancel` });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json()).toMatchObject({ id: a.id, status: 'FAILED', error: 'canceled' });
    const b = await submit(app);
    const withBody = await app.inject({ method: 'POST', url: `/commands/${b.id}/cancel`, payload: {} });
    expect(withBody.statusCode).toBe(200);
    const empty = await app.inject({
      method: 'POST',
      url: `/commands/${(await submit(app)).id}/cancel`,
      payload: '',
      headers: { 'content-type': 'application/json' },
    });
    expect(empty.statusCode).toBe(200);
  });

  test('RUNNING → 200 with cancelRequested; the agent hears it at its next heartbeat', async () => {
    const { app } = await build();
    await submit(app);
    const c = await next(app);
    const res = await app.inject({ method: 'POST', url: `/commands/${c.id}/cancel` });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ status: 'RUNNING', cancelRequested: true });
    const hb = await heartbeat(app, c.id, { agentId: 'agent-1', leaseId: c.leaseId });
    expect(hb.json()).toMatchObject({ cancelRequested: true });
  });

  test('409 when already finished; 404 for an unknown id', async () => {
    const { app } = await build();
    const a = await submit(app);
    await app.inject({ method: 'POST', url: `/commands/${a.id}/cancel` });
    const again = await app.inject({ method: 'POST', url: `/commands/${a.id}/cancel` });
    expect(again.statusCode).toBe(409);
    expectErrorShape(again.json(), 409);
    const unknown = await app.inject({ method: 'POST', url: '/commands/no-such-command/cancel' });
    expect(unknown.statusCode).toBe(404);
  });
});

describe('POST /commands/:id/retry', () => {
  test('FAILED → 200 PENDING with a fresh attempt budget; 409 unless FAILED; 404 unknown', async () => {
    const { app } = await build();
    const a = await submit(app, delay(1, { maxAttempts: 1 }));
    const notFailed = await app.inject({ method: 'POST', url: `/commands/${a.id}/retry` });
    expect(notFailed.statusCode).toBe(409);
    expectErrorShape(notFailed.json(), 409);
    const c = await next(app);
    await report(app, c.id, { agentId: 'agent-1', leaseId: c.leaseId, status: 'FAILED', error: 'boom' });
    const res = await app.inject({ method: 'POST', url: `/commands/${a.id}/retry` });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ status: 'PENDING', attempts: 0, maxAttempts: 1, error: null });
    expect((await next(app, 'agent-2')).id).toBe(a.id);
    expect((await app.inject({ method: 'POST', url: '/commands/no-such-command/retry' })).statusCode).toBe(404);
  });
});

describe('PUT /commands/results with claim (report-and-claim)', () => {
  type Answer = { results: Array<{ id: string; statusCode: number; command?: Command; status?: string }>; commands?: ClaimedCommand[] };
  const results = (app: App, payload: object) => app.inject({ method: 'PUT', url: '/commands/results', payload });
  const done = (c: ClaimedCommand, agentId = 'agent-1') => ({ id: c.id, agentId, leaseId: c.leaseId, result: { ok: true } });

  test('the reports are taken and up to max more commands are leased in the same answer, as next-batch leases them', async () => {
    const { app } = await build();
    const [a, b, c, d] = [await submit(app, delay(1)), await submit(app, delay(2)), await submit(app, delay(3)), await submit(app, delay(4))];
    const first = await next(app);
    expect(first.id).toBe(a!.id);
    const res = await results(app, { reports: [done(first)], claim: { agentId: 'agent-1', max: 2 } });
    expect(res.statusCode, res.body).toBe(200);
    const answer = res.json<Answer>();
    expect(answer.results).toMatchObject([{ id: a!.id, statusCode: 200, command: { status: 'COMPLETED' } }]);
    // Oldest first, each with its own lease, RUNNING for this agent: what next-batch answers.
    expect(answer.commands?.map((x) => x.id)).toEqual([b!.id, c!.id]);
    for (const claimed of answer.commands ?? []) {
      expect(claimed).toMatchObject({ status: 'RUNNING', agentId: 'agent-1', attempts: 1 });
      expect(Date.parse(claimed.leaseExpiresAt)).toBeGreaterThan(Date.now());
      expect(claimed.leaseId).toEqual(expect.any(String));
    }
    expect(new Set(answer.commands?.map((x) => x.leaseId)).size).toBe(2);
    // The leases are real: heartbeats renew them and their reports are taken.
    const [cb, cc] = answer.commands as [ClaimedCommand, ClaimedCommand];
    expect((await heartbeat(app, cb.id, { agentId: 'agent-1', leaseId: cb.leaseId })).statusCode).toBe(200);
    const again = await results(app, { reports: [done(cb), done(cc)], claim: { agentId: 'agent-1', max: 5 } });
    expect(again.json<Answer>().results.map((r) => r.statusCode)).toEqual([200, 200]);
    expect(again.json<Answer>().commands?.map((x) => x.id)).toEqual([d!.id]);
    // The lease id is shown only to the agent that claimed it.
    expect(await getCommand(app, cb.id)).not.toHaveProperty('leaseId');
    // No work: an empty list, at once (a report is never held open).
    const empty = await results(app, { reports: [done(cb)], claim: { agentId: 'agent-1', max: 5 } });
    expect(empty.statusCode).toBe(200);
    expect(empty.json<Answer>()).toMatchObject({ results: [{ statusCode: 200 }], commands: [] });
  });

  test('without claim the answer has no commands and leases nothing (older agents)', async () => {
    const { app } = await build();
    await submit(app, delay(1));
    const other = await submit(app, delay(2));
    const c = await next(app);
    const res = await results(app, { reports: [done(c)] });
    expect(res.statusCode).toBe(200);
    expect(res.json()).not.toHaveProperty('commands');
    expect((await getCommand(app, other.id)).status).toBe('PENDING');
  });

  test('the claim follows the agent\'s queues and types, and a rejected report does not stop it', async () => {
    const { app } = await build();
    await submit(app, delay(1));
    const gpu = await submit(app, delay(1, { queue: 'gpu' }));
    await submit(app, httpGet('http://example.com/x'));
    const res = await results(app, {
      reports: [{ id: 'no-such-command', agentId: 'g1', result: {} }],
      claim: { agentId: 'g1', max: 10, queues: ['gpu', 'gpu'], types: ['DELAY'] },
    });
    expect(res.statusCode, res.body).toBe(200);
    const answer = res.json<Answer>();
    expect(answer.results.map((r) => r.statusCode)).toEqual([404]);
    expect(answer.commands?.map((x) => x.id)).toEqual([gpu.id]);
    // Seen as a poll is: GET /agents lists it with what it serves.
    const agents = (await app.inject({ method: 'GET', url: '/agents' })).json<Array<{ id: string; queues: string[]; types: string[] }>>();
    expect(agents.find((x) => x.id === 'g1')).toMatchObject({ queues: ['gpu'], types: ['DELAY'] });
  });

  test('a draining agent is told so (Agent-Drain: true) and claims nothing; its reports are still taken', async () => {
    const { app } = await build();
    await submit(app, delay(1));
    const pending = await submit(app, delay(2));
    const c = await next(app, 'drained-1');
    expect((await app.inject({ method: 'POST', url: '/agents/drained-1/drain' })).statusCode).toBe(200);
    const res = await results(app, { reports: [done(c, 'drained-1')], claim: { agentId: 'drained-1', max: 4 } });
    expect(res.statusCode).toBe(200);
    expect(res.headers['agent-drain']).toBe('true');
    expect(res.json<Answer>()).toMatchObject({ results: [{ statusCode: 200 }], commands: [] });
    expect((await getCommand(app, pending.id)).status).toBe('PENDING');
    expect((await getCommand(app, c.id)).status).toBe('COMPLETED');
  });

  test.each([
    ['max 0', { agentId: 'a', max: 0 }, 'claim.max'],
    ['max above 100', { agentId: 'a', max: 101 }, 'claim.max'],
    ['no agentId', { max: 1 }, 'claim.agentId'],
    ['a bad queue', { agentId: 'a', max: 1, queues: ['Not_A_Queue'] }, 'claim.queues.0'],
    ['an unknown field', { agentId: 'a', max: 1, wait: 10 }, 'claim'],
  ])('a claim with %s is a 400 naming it; nothing is reported or leased', async (_name, claim, path) => {
    const { app } = await build();
    await submit(app, delay(1));
    const pending = await submit(app, delay(2));
    const c = await next(app);
    const res = await results(app, { reports: [done(c)], claim });
    expect(res.statusCode, res.body).toBe(400);
    expectErrorShape(res.json(), 400);
    expect(res.json<{ message: string }>().message).toContain(path);
    expect((await getCommand(app, c.id)).status).toBe('RUNNING');
    expect((await getCommand(app, pending.id)).status).toBe('PENDING');
  });

  test('?brief=true answers each accepted report with the command\'s status only; refusals and claimed commands are as without it', async () => {
    const { app } = await build();
    const [a, b] = [await submit(app, delay(1)), await submit(app, delay(2, { maxAttempts: 2 }))];
    await submit(app, delay(3));
    const [ca, cb] = [await next(app), await next(app)];
    expect([ca.id, cb.id]).toEqual([a.id, b.id]);
    const reports = [
      done(ca),
      { id: cb.id, agentId: 'agent-1', leaseId: cb.leaseId, status: 'FAILED', error: 'boom', retryable: true },
      { id: 'no-such-command', agentId: 'agent-1', result: {} },
    ];
    const res = await app.inject({ method: 'PUT', url: '/commands/results?brief=true', payload: { reports, claim: { agentId: 'agent-1', max: 1 } } });
    expect(res.statusCode, res.body).toBe(200);
    const answer = res.json<Answer>();
    // The status after the report: COMPLETED, or PENDING for a retryable failure with attempts left.
    expect(answer.results).toEqual([
      { id: a.id, statusCode: 200, status: 'COMPLETED' },
      { id: b.id, statusCode: 200, status: 'PENDING' },
      { id: 'no-such-command', statusCode: 404, message: expect.any(String) },
    ]);
    // The commands claimed along are whole, with their leases: the agent runs them.
    expect(answer.commands).toEqual([expect.objectContaining({ status: 'RUNNING', payload: { ms: 3 }, leaseId: expect.any(String) })]);
    // The same report again, brief=false: the whole command, as without the query.
    const full = await app.inject({ method: 'PUT', url: '/commands/results?brief=false', payload: { reports: [done(ca)] } });
    expect(full.json<Answer>().results).toEqual([{ id: a.id, statusCode: 200, command: expect.objectContaining({ id: a.id, status: 'COMPLETED', result: { ok: true } }) }]);
  });

  test.each(['yes', '1', ''])('?brief=%s is a 400 naming brief; nothing is reported', async (value) => {
    const { app } = await build();
    await submit(app, delay(1));
    const c = await next(app);
    const res = await app.inject({ method: 'PUT', url: `/commands/results?brief=${value}`, payload: { reports: [done(c)] } });
    expect(res.statusCode, res.body).toBe(400);
    expectErrorShape(res.json(), 400);
    expect(res.json<{ message: string }>().message).toContain('brief');
    expect((await getCommand(app, c.id)).status).toBe('RUNNING');
  });

  test('a claimed command whose answer is lost is requeued when its lease runs out, like any lease', async () => {
    const { app, store } = await build({ env: { LEASE_MS: '150' } });
    await submit(app, delay(1));
    const second = await submit(app, delay(2));
    const expired = nextEvent(store, 'expire');
    const c = await next(app);
    // The agent never reads this answer (lost on the way): nobody heartbeats the claimed lease.
    const res = await results(app, { reports: [done(c)], claim: { agentId: 'agent-1', max: 1 } });
    expect(res.json<Answer>().commands?.map((x) => x.id)).toEqual([second.id]);
    const event = await expired;
    expect(event.command).toMatchObject({ id: second.id, status: 'PENDING', error: 'lease expired' });
  });
});

describe('leases', () => {
  test('a lease that runs out is requeued by the reaper, not before LEASE_MS, and the holder may still report', async () => {
    const { app, store } = await build({ env: { LEASE_MS: '150' } });
    await submit(app, delay(1, { maxAttempts: 2 }));
    const expired = nextEvent(store, 'expire');
    const c = await next(app);
    const event = await expired;
    // Requeued, waiting out its backoff: no other agent has taken it, so its holder may still report.
    expect(event.command).toMatchObject({ id: c.id, status: 'PENDING', error: 'lease expired' });
    expect(event.createdAt).toBeGreaterThanOrEqual(Date.parse(c.leaseExpiresAt));
    expect((await heartbeat(app, c.id, { agentId: 'agent-1', leaseId: c.leaseId })).statusCode).toBe(409);
    const late = await report(app, c.id, { agentId: 'agent-1', leaseId: c.leaseId, result: { ok: true } });
    expect(late.statusCode).toBe(200);
    expect(late.json().command).toMatchObject({ status: 'COMPLETED' });
  });

  test('COMPLETED and FAILED are final: a late report after the expiry spent the attempts is a 409 (SPEC §2)', async () => {
    const { app, store } = await build({ env: { LEASE_MS: '150' } });
    await submit(app, delay(1, { maxAttempts: 1 }));
    const expired = nextEvent(store, 'expire');
    const c = await next(app);
    await expired;
    const late = await report(app, c.id, { agentId: 'agent-1', leaseId: c.leaseId, result: { ok: true } });
    expect(late.statusCode, late.body).toBe(409);
    expectErrorShape(late.json(), 409);
    expect(late.json().message).toMatch(/already FAILED/);
    const res = await app.inject({ method: 'GET', url: `/commands/${c.id}` });
    expect(res.json()).toMatchObject({ status: 'FAILED', error: 'lease expired', result: null });
  });
});

describe('auth', () => {
  // `status`: what the route answers with the right token (the exact status, so a 500 behind the
  // token check fails the test too).
  const clientRoutes = [
    { method: 'POST', url: '/commands', payload: delay(1), status: 201 },
    { method: 'POST', url: '/commands/batch', payload: { commands: [delay(1), delay(2)] }, status: 201 },
    { method: 'GET', url: '/commands', status: 200 },
    { method: 'GET', url: '/commands/x', status: 404 },
    { method: 'POST', url: '/commands/x/cancel', status: 404 },
    { method: 'POST', url: '/commands/x/retry', status: 404 },
  ] as const;
  const agentRoutes = [
    { method: 'GET', url: '/commands/next?agentId=a', status: 200 },
    { method: 'GET', url: '/commands/next-batch?agentId=a', status: 200 },
    { method: 'PUT', url: '/commands/x/result', payload: { agentId: 'a', result: {} }, status: 404 },
    { method: 'PUT', url: '/commands/results', payload: { reports: [{ id: 'x', agentId: 'a', result: {} }] }, status: 200 },
    { method: 'POST', url: '/commands/x/heartbeat', payload: { agentId: 'a', leaseId: 'l' }, status: 404 },
  ] as const;
  const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

  test('with API_TOKEN and AGENT_TOKEN set: 401 + WWW-Authenticate: Bearer without the right token; /health open', async () => {
    const { app, store } = await build({ env: { API_TOKEN, AGENT_TOKEN } });
    for (const { status, ...route } of clientRoutes) {
      for (const headers of [{}, bearer('wrong-token-0123456789'), bearer(AGENT_TOKEN), { authorization: API_TOKEN }]) {
        const res = await app.inject({ ...route, headers });
        expect(res.statusCode, `${route.method} ${route.url} ${JSON.stringify(headers)}`).toBe(401);
        expect(res.headers['www-authenticate']).toBe('Bearer');
        expectErrorShape(res.json(), 401);
      }
      const ok = await app.inject({ ...route, headers: bearer(API_TOKEN) });
      expect(ok.statusCode, `${route.method} ${route.url}: ${ok.body}`).toBe(status);
    }
    for (const { status, ...route } of agentRoutes) {
      for (const headers of [{}, bearer(API_TOKEN)]) {
        const res = await app.inject({ ...route, headers });
        expect(res.statusCode, `${route.method} ${route.url}`).toBe(401);
        expect(res.headers['www-authenticate']).toBe('Bearer');
      }
      const ok = await app.inject({ ...route, headers: bearer(AGENT_TOKEN) });
      expect(ok.statusCode, `${route.method} ${route.url}: ${ok.body}`).toBe(status);
      // The rejected claims leased nothing: the batch claim still finds the two the single one left.
      if (route.url.startsWith('/commands/next-batch')) expect(ok.json().commands).toHaveLength(2);
      if (route.url === '/commands/results') expect(ok.json().results).toEqual([expect.objectContaining({ id: 'x', statusCode: 404 })]);
    }
    expect((await app.inject({ method: 'GET', url: '/health' })).statusCode).toBe(200);
    // Only the authorised submit and batch stored anything (1 + 2), and only the authorised claims
    // leased any: /next one, /next-batch the other two (the client routes ran first: 200, not 204).
    expect(await countCommands(store)).toBe(3);
    const running = await app.inject({ method: 'GET', url: '/commands?status=RUNNING', headers: bearer(API_TOKEN) });
    expect(running.json()).toHaveLength(3);
  });

  test('the whole flow works with the tokens', async () => {
    const { app } = await build({ env: { API_TOKEN, AGENT_TOKEN } });
    const created = await app.inject({ method: 'POST', url: '/commands', payload: delay(1), headers: bearer(API_TOKEN) });
    expect(created.statusCode).toBe(201);
    const c = await next(app, 'agent-1', bearer(AGENT_TOKEN));
    const res = await app.inject({
      method: 'PUT',
      url: `/commands/${c.id}/result`,
      payload: { agentId: 'agent-1', leaseId: c.leaseId, result: { ok: true } },
      headers: bearer(AGENT_TOKEN),
    });
    expect(res.statusCode).toBe(200);
  });

  test('with only API_TOKEN set the agent routes stay open; with neither, everything is open', async () => {
    const { app } = await build({ env: { API_TOKEN } });
    expect((await app.inject({ method: 'GET', url: '/commands/next?agentId=a' })).statusCode).toBe(204);
    expect((await app.inject({ method: 'GET', url: '/commands' })).statusCode).toBe(401);
    const { app: open } = await build();
    expect((await open.inject({ method: 'GET', url: '/commands' })).statusCode).toBe(200);
  });
});

describe('CORS', () => {
  const preflight = (url: string, method: string, origin = 'http://ui.example') => ({
    method: 'OPTIONS' as const,
    url,
    headers: {
      origin,
      'access-control-request-method': method,
      'access-control-request-headers': 'authorization,content-type,idempotency-key',
    },
  });

  test('any origin by default, exposing Location, Link and Idempotent-Replayed', async () => {
    const { app } = await build();
    const res = await app.inject({ method: 'POST', url: '/commands', payload: delay(1), headers: { origin: 'http://ui.example' } });
    expect(res.headers['access-control-allow-origin']).toBe('*');
    const exposed = String(res.headers['access-control-expose-headers']).split(/,\s*/);
    expect(exposed).toEqual(expect.arrayContaining(['Location', 'Link', 'Idempotent-Replayed']));
  });

  test('preflights need no token and allow every method of the API', async () => {
    const { app } = await build({ env: { API_TOKEN, AGENT_TOKEN } });
    for (const [url, method] of [
      ['/commands', 'POST'],
      ['/commands/x/cancel', 'POST'],
      ['/commands/x/result', 'PUT'],
      ['/commands/next?agentId=a', 'GET'],
    ] as const) {
      const res = await app.inject(preflight(url, method));
      expect(res.statusCode, `${method} ${url}`).toBe(204);
      expect(res.headers['access-control-allow-origin']).toBe('*');
      expect(String(res.headers['access-control-allow-methods']).split(/,\s*/), `${method} ${url}`).toContain(method);
      expect(String(res.headers['access-control-allow-headers'])).toMatch(/authorization/);
    }
  });

  test('CORS_ORIGIN with a list allows only those origins', async () => {
    const { app } = await build({ env: { CORS_ORIGIN: 'http://a.example, http://b.example' } });
    const allowed = await app.inject({ method: 'GET', url: '/commands', headers: { origin: 'http://b.example' } });
    expect(allowed.headers['access-control-allow-origin']).toBe('http://b.example');
    const refused = await app.inject({ method: 'GET', url: '/commands', headers: { origin: 'http://evil.example' } });
    expect(refused.headers['access-control-allow-origin']).toBeUndefined();
  });
});

describe('unknown routes', () => {
  test('404 in the error shape', async () => {
    const { app } = await build();
    const res = await app.inject({ method: 'GET', url: '/nowhere' });
    expect(res.statusCode).toBe(404);
    expectErrorShape(res.json(), 404);
  });
});
