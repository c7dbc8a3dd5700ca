/** Routing over HTTP (SPEC §9): polls by queue and type, hand-off to waiting polls, runAt, waitingFor, registry, drain. */
import { performance } from 'node:perf_hooks';
import { describe, expect, test } from 'vitest';
import type { AgentView, ClaimedCommand, Command, QueueView } from '@agent-executor/common';
import type { App } from '../src/app.js';
import { waitFor } from '../../test-support/processes.js';
import { delay, httpGet, listen, submit, useApp } from './helpers.js';

const { build } = useApp();

const next = async (app: App, query: string) => {
  const res = await app.inject({ method: 'GET', url: `/commands/next?${query}` });
  return { status: res.statusCode, drain: res.headers['agent-drain'], command: res.statusCode === 200 ? res.json<ClaimedCommand>() : undefined };
};
const waiting = (app: App, n: number) => waitFor(() => app.longPoll.size === n, { what: `${n} waiting polls`, intervalMs: 5 });
const getCommand = async (app: App, id: string) => (await app.inject({ method: 'GET', url: `/commands/${id}` })).json<Command>();
const agents = async (app: App) => (await app.inject({ method: 'GET', url: '/agents' })).json<AgentView[]>();

describe('routing', () => {
  test('next and next-batch lease only commands of the queues and types the poll names', async () => {
    const { app } = await build();
    const gpu = await submit(app, delay(1, { queue: 'gpu' }));
    const http = await submit(app, httpGet('https://example.com/a.json'));
    const plain = await submit(app, delay(1));
    expect((await next(app, 'agentId=a1&queues=other')).status).toBe(204);
    expect((await next(app, 'agentId=a1&types=HTTP_GET_JSON')).command?.id).toBe(http.id);
    const batch = await app.inject({ method: 'GET', url: '/commands/next-batch?agentId=a2&max=10&queues=gpu,other&types=DELAY' });
    expect(batch.json<{ commands: Command[] }>().commands.map((c) => c.id)).toEqual([gpu.id]);
    expect((await next(app, 'agentId=a3')).command?.id, 'no query: the default queue, every type').toBe(plain.id);
    const bad = await app.inject({ method: 'GET', url: '/commands/next?agentId=a1&queues=Not_A_Queue' });
    expect(bad.statusCode).toBe(400);
  });

  test('a submit is handed only to a waiting poll that serves its queue and type', async () => {
    const { app } = await build();
    const base = await listen(app);
    const onA = fetch(`${base}/commands/next?agentId=on-a&queues=a&wait=10`);
    await waiting(app, 1);
    const onBHttp = fetch(`${base}/commands/next?agentId=on-b-http&queues=b&types=HTTP_GET_JSON&wait=10`);
    await waiting(app, 2);
    const onB = fetch(`${base}/commands/next?agentId=on-b&queues=b&types=DELAY&wait=10`);
    await waiting(app, 3);
    const b = await submit(app, delay(1, { queue: 'b' }));
    const answer = await onB;
    expect(((await answer.json()) as Command).id).toBe(b.id);
    expect(app.longPoll.size, 'the polls of other queues or types keep waiting').toBe(2);
    const a = await submit(app, delay(1, { queue: 'a' }));
    expect(((await (await onA).json()) as Command).id).toBe(a.id);
    const h = await submit(app, { ...httpGet('https://example.com/'), queue: 'b' });
    expect(((await (await onBHttp).json()) as Command).id).toBe(h.id);
  });

  test('higher priority first over HTTP', async () => {
    const { app } = await build();
    await submit(app, delay(1));
    const urgent = await submit(app, delay(1, { priority: 50 }));
    expect((await next(app, 'agentId=a')).command?.id).toBe(urgent.id);
  });

  test('runAt: not leased before; a waiting poll is woken when the time comes, by the reaper timer', async () => {
    const { app } = await build();
    const base = await listen(app);
    const runAt = Date.now() + 700;
    const later = await submit(app, delay(1, { runAt: new Date(runAt).toISOString() }));
    expect(later.runAt).toBe(new Date(runAt).toISOString());
    expect((await getCommand(app, later.id)).waitingFor).toEqual({ reason: 'schedule', until: new Date(runAt).toISOString() });
    expect((await next(app, 'agentId=early')).status).toBe(204);
    const started = performance.now();
    const res = await fetch(`${base}/commands/next?agentId=waiter&wait=10`);
    expect(res.status).toBe(200);
    expect(((await res.json()) as Command).id).toBe(later.id);
    expect(Date.now(), 'not before runAt').toBeGreaterThanOrEqual(runAt);
    expect(performance.now() - started, 'woken on time, not at the end of the wait').toBeLessThan(3_000);
  });

  test('waitingFor: agent, capacity, concurrency; none once RUNNING', async () => {
    const { app } = await build();
    const keyed = { concurrencyKey: 'tenant', concurrencyLimit: 1 };
    const first = await submit(app, delay(1, { ...keyed, queue: 'q' }));
    const second = await submit(app, delay(1, { ...keyed, queue: 'q' }));
    expect((await getCommand(app, first.id)).waitingFor, 'nobody serves queue q').toEqual({ reason: 'agent' });
    expect((await getCommand(app, second.id)).waitingFor).toEqual({ reason: 'concurrency', running: 0, limit: 1 });
    expect((await next(app, 'agentId=a&queues=q')).command?.id).toBe(first.id);
    expect((await getCommand(app, first.id)).waitingFor).toBeUndefined();
    expect((await getCommand(app, second.id)).waitingFor).toEqual({ reason: 'concurrency', running: 1, limit: 1 });
    const other = await submit(app, delay(1, { queue: 'q' }));
    // Agent a serves q and was seen just now: the command waits for a free agent, not for one to exist.
    expect((await getCommand(app, other.id)).waitingFor).toEqual({ reason: 'capacity' });
  });
});

describe('agents and queues', () => {
  test('GET /agents lists what each agent serves and runs; an agent not seen for long is gone', async () => {
    let wall = Date.now();
    const clock = { wall: () => wall, monotonic: () => performance.now() };
    const { app } = await build({ clock, env: { LEASE_MS: '1000' } });
    await submit(app, delay(1));
    await next(app, 'agentId=alpha&queues=default,gpu&types=DELAY&hostname=h1&version=1.2.3&concurrency=4');
    await next(app, 'agentId=beta&queues=gpu');
    const [alpha, beta] = await agents(app);
    expect(alpha).toMatchObject({ id: 'alpha', hostname: 'h1', version: '1.2.3', queues: ['default', 'gpu'], types: ['DELAY'], concurrency: 4, inFlight: 1, state: 'active' });
    expect(beta).toMatchObject({ id: 'beta', queues: ['gpu'], types: ['DELAY', 'HTTP_GET_JSON'], inFlight: 0, state: 'active' });
    const queues = (await app.inject({ method: 'GET', url: '/queues' })).json<QueueView[]>();
    expect(queues).toEqual([
      { queue: 'default', pending: 0, running: 1, oldestPendingAgeMs: null, agents: ['alpha'] },
      { queue: 'gpu', pending: 0, running: 0, oldestPendingAgeMs: null, agents: ['alpha', 'beta'] },
    ]);
    wall += 3 * 60_000 + 1; // 3 × max(60 s longest poll, 1 s lease)
    await next(app, 'agentId=beta&queues=gpu');
    const later = await agents(app);
    expect(later.map((a) => [a.id, a.state])).toEqual([['alpha', 'gone'], ['beta', 'active']]);
  });

  test('a fleet that starts is written as it polls, without reading the whole agents table back per new agent', async () => {
    const { app, store } = await build();
    let reads = 0;
    const load = store.loadAgents.bind(store);
    store.loadAgents = (seenSince) => {
      reads++;
      return load(seenSince);
    };
    // Each poll a new agent: before, each one wrote itself and read every stored agent back
    // (10 000 agents starting at once kept a server at 100 % CPU for minutes).
    for (let i = 0; i < 40; i++) await next(app, `agentId=fleet-${i}`);
    await waitFor(async () => (await load(0)).length === 40, { what: 'the 40 agents stored', intervalMs: 5 });
    expect(reads, 'reads of the table while the fleet started').toBeLessThanOrEqual(1);
    expect((await agents(app)).map((a) => a.id)).toHaveLength(40);
  });

  test('drain: a waiting poll is answered at once with Agent-Drain, later polls claim nothing, heartbeats carry it', async () => {
    const { app } = await build();
    const base = await listen(app);
    await submit(app, delay(1));
    const claimed = (await next(app, 'agentId=d1')).command!;
    const polling = fetch(`${base}/commands/next?agentId=d1&wait=30`);
    await waiting(app, 1);
    const started = performance.now();
    const drained = await app.inject({ method: 'POST', url: '/agents/d1/drain' });
    expect(drained.statusCode).toBe(200);
    expect(drained.json<AgentView>()).toMatchObject({ id: 'd1', state: 'draining', inFlight: 1 });
    const answer = await polling;
    expect(answer.status).toBe(204);
    expect(answer.headers.get('agent-drain')).toBe('true');
    expect(performance.now() - started).toBeLessThan(2_000);
    await submit(app, delay(1));
    expect(await next(app, 'agentId=d1')).toMatchObject({ status: 204, drain: 'true' });
    const beat = await app.inject({ method: 'POST', url: `/commands/${claimed.id}/heartbeat`, payload: { agentId: 'd1', leaseId: claimed.leaseId } });
    expect(beat.statusCode).toBe(200);
    expect(beat.headers['agent-drain']).toBe('true');
    expect((await next(app, 'agentId=other')).status, 'other agents still claim').toBe(200);
    expect((await app.inject({ method: 'POST', url: '/agents/nobody/drain' })).statusCode).toBe(404);
  });
});
