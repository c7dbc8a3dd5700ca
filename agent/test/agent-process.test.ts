/**
 * The agent as a real process against a real control server: it runs both command types to
 * their results, picks work up through long-poll at once, heartbeats, honours cancel and
 * AGENT_TOKEN, and drains on SIGTERM.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitForOutput } from '../../test-support/processes.js';
import { api, executionsIn, isSettled, useStack, waitForCommand } from './stack.js';
import { startTarget, type Target } from './target.js';

const stack = useStack();
let target: Target;
beforeAll(async () => {
  target = await startTarget();
});
afterAll(async () => {
  await target.close();
});

describe('agent process', () => {
  it('runs DELAY and HTTP_GET_JSON to their outcomes with their results, sending DELAY progress', async () => {
    const { server, agent } = stack();
    // A short lease, so that heartbeats (every third of it) carry progress during the DELAY.
    const srv = await server({ LEASE_MS: '1500' });
    const client = api(srv);
    const worker = agent(srv, 'a', { CONCURRENCY: '3' });
    const delay = await client.submit({ type: 'DELAY', payload: { ms: 1200 } });
    const http = await client.submit({ type: 'HTTP_GET_JSON', payload: { url: `${target.url}/json` } });
    const missing = await client.submit({ type: 'HTTP_GET_JSON', payload: { url: `${target.url}/status/404` } });

    const running = await waitForCommand(client, delay.id, (c) => (c.progress?.percent ?? 0) > 0, { what: 'DELAY progress' });
    expect(running.status).toBe('RUNNING');
    const delayDone = await waitForCommand(client, delay.id, isSettled);
    expect(delayDone).toMatchObject({ status: 'COMPLETED', result: { ok: true }, error: null, attempts: 1 });
    expect((delayDone.result as { tookMs: number }).tookMs).toBeGreaterThanOrEqual(1200);
    expect(await waitForCommand(client, http.id, isSettled)).toMatchObject({
      status: 'COMPLETED',
      result: { status: 200, ok: true, body: { hello: 'world' }, truncated: false, error: null },
    });
    // A 404 is not worth retrying: FAILED after one attempt, with what it got recorded.
    expect(await waitForCommand(client, missing.id, isSettled)).toMatchObject({
      status: 'FAILED',
      error: 'HTTP 404',
      attempts: 1,
      result: { status: 404, ok: false, body: { error: 'status 404' } },
    });
    await waitForOutput(worker, new RegExp(`DELAY ${delay.id} started \\(attempt 1 of 3\\)`));
    await waitForOutput(worker, new RegExp(`DELAY ${delay.id} COMPLETED in \\d+ ms`));
  });

  it('refuses a target on this machine by default, and reaches it when HTTP_ALLOW names it', async () => {
    const { server, agent } = stack();
    const srv = await server();
    const client = api(srv);
    const { port } = new URL(target.url);
    // `HTTP_BLOCK_PRIVATE: ''` undoes the tests' development setting: the agent's own default.
    const secure = agent(srv, 'secure', { HTTP_BLOCK_PRIVATE: '' });
    const refused = await client.submit({ type: 'HTTP_GET_JSON', payload: { url: `${target.url}/count?default` } });
    expect(await waitForCommand(client, refused.id, isSettled)).toMatchObject({
      status: 'FAILED',
      attempts: 1,
      error: expect.stringMatching(/127\.0\.0\.1 is a loopback or private address \(the agent allows it with HTTP_ALLOW/),
      result: { status: null },
    });
    expect(target.hits('/count?default')).toBe(0);
    expect(secure.output()).toMatch(/for a target on this machine set HTTP_ALLOW=host:port or HTTP_BLOCK_PRIVATE=false/);
    await secure.kill();

    agent(srv, 'allowed', { HTTP_BLOCK_PRIVATE: '', HTTP_ALLOW: `127.0.0.1:${port}` });
    const allowed = await client.submit({ type: 'HTTP_GET_JSON', payload: { url: `${target.url}/count?allowed` } });
    expect(await waitForCommand(client, allowed.id, isSettled)).toMatchObject({ status: 'COMPLETED', result: { status: 200 } });
    // Another port of the same host is not named: refused.
    const other = await client.submit({ type: 'HTTP_GET_JSON', payload: { url: `http://127.0.0.1:${Number(port) === 1 ? 2 : Number(port) - 1}/` } });
    expect(await waitForCommand(client, other.id, isSettled)).toMatchObject({ status: 'FAILED', error: expect.stringMatching(/loopback or private/) });
  });

  it('long-poll: a command submitted while the agent waits starts at once', async () => {
    const { server, agent } = stack();
    const srv = await server();
    const client = api(srv);
    // Plain polling every 10 s would make every pickup slow: only the long-poll can be fast.
    const worker = agent(srv, 'a', { LOG_LEVEL: 'debug', POLL_INTERVAL: '10000', LONG_POLL_WAIT: '25' });
    const pickups: number[] = [];
    const totals: number[] = [];
    for (let round = 1; round <= 5; round++) {
      await waitForOutput(worker, new RegExp(`(polling for work[^]*){${round}}`));
      const submitted = await client.submit({ type: 'DELAY', payload: { ms: 0 } });
      const done = await waitForCommand(client, submitted.id, isSettled);
      expect(done.status).toBe('COMPLETED');
      pickups.push(Date.parse(done.startedAt ?? '') - Date.parse(done.createdAt));
      totals.push(Date.parse(done.finishedAt ?? '') - Date.parse(done.createdAt));
    }
    console.log(`long-poll pickup (submit → leased) ms: ${pickups.join(', ')}; submit → COMPLETED ms: ${totals.join(', ')}`);
    for (const ms of pickups) expect(ms).toBeLessThan(2000);
  });

  it('plain polling (LONG_POLL_WAIT=0) works too', async () => {
    const { server, agent } = stack();
    const srv = await server();
    const client = api(srv);
    const worker = agent(srv, 'a', { LONG_POLL_WAIT: '0', POLL_INTERVAL: '100' });
    const submitted = await client.submit({ type: 'DELAY', payload: { ms: 0 } });
    expect((await waitForCommand(client, submitted.id, isSettled)).status).toBe('COMPLETED');
    expect(worker.output()).toMatch(/long-poll 0 s/);
  });

  it('a cancel reaches the running DELAY at its next heartbeat: FAILED canceled', async () => {
    const { server, agent } = stack();
    const srv = await server({ LEASE_MS: '1500' });
    const client = api(srv);
    const worker = agent(srv, 'a');
    const submitted = await client.submit({ type: 'DELAY', payload: { ms: 30_000 } });
    await waitForCommand(client, submitted.id, (c) => c.status === 'RUNNING');
    await client.cancel(submitted.id);
    const done = await waitForCommand(client, submitted.id, isSettled, { timeoutMs: 5_000 });
    expect(done).toMatchObject({ status: 'FAILED', error: 'canceled', attempts: 1 });
    await waitForOutput(worker, new RegExp(`DELAY ${submitted.id} FAILED \\(canceled\\)`));
  });

  it('sends AGENT_TOKEN; a wrong token stops the agent with a message', async () => {
    const { server, agent } = stack();
    const token = 'agent-token-0123456789';
    const srv = await server({ AGENT_TOKEN: token });
    const client = api(srv);
    agent(srv, 'good', { AGENT_TOKEN: token });
    const submitted = await client.submit({ type: 'DELAY', payload: { ms: 0 } });
    expect((await waitForCommand(client, submitted.id, isSettled)).status).toBe('COMPLETED');
    const wrong = agent(srv, 'wrong', { AGENT_TOKEN: 'not-the-token-at-all' });
    expect(await wrong.exited).toBe(1);
    expect(wrong.output()).toMatch(/poll refused: 401/);
  });

  it('a second agent on the same database stops at once instead of sharing it', async () => {
    const { server, agent } = stack();
    const srv = await server();
    const first = agent(srv, 'shared');
    await waitForOutput(first, /polling/);
    const second = agent(srv, 'shared');
    expect(await second.exited).toBe(1);
    expect(second.output()).toMatch(/in use by another agent process/);
  });
});

describe('agent shutdown', () => {
  it('SIGTERM lets the running command finish and report, then exits 0', async () => {
    const { server, agent } = stack();
    const srv = await server();
    const client = api(srv);
    const worker = agent(srv, 'a');
    const submitted = await client.submit({ type: 'DELAY', payload: { ms: 1500 } });
    await waitForCommand(client, submitted.id, (c) => c.status === 'RUNNING');
    expect(await worker.kill('SIGTERM')).toBe(0);
    // Reported before the process exited: no waiting here.
    expect(await client.get(submitted.id)).toMatchObject({ status: 'COMPLETED', attempts: 1 });
    expect(executionsIn(worker, submitted.id)).toBe(1);
  });

  it('SIGTERM past DRAIN_MS aborts the command as interrupted (retryable), reports it, exits 0', async () => {
    const { server, agent } = stack();
    const srv = await server();
    const client = api(srv);
    const worker = agent(srv, 'a', { DRAIN_MS: '200' });
    const submitted = await client.submit({ type: 'DELAY', payload: { ms: 30_000 } });
    await waitForCommand(client, submitted.id, (c) => c.status === 'RUNNING');
    const started = Date.now();
    expect(await worker.kill('SIGTERM')).toBe(0);
    expect(Date.now() - started).toBeLessThan(5_000);
    // Back in the queue for another attempt, with the reason recorded.
    expect(await client.get(submitted.id)).toMatchObject({ status: 'PENDING', error: 'interrupted', attempts: 1 });
  });
});
