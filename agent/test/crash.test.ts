/**
 * Crash drills with real processes and SIGKILL: the agent dies between finishing and reporting,
 * before executing, mid-execution; the server dies while the agent works. Nothing is lost, and
 * nothing the agent finished is executed twice (a counting HTTP target proves it).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, startAgent, waitForOutput } from '../../test-support/processes.js';
import { openDatabase } from '../src/database.js';
import { Outbox } from '../src/outbox.js';
import { completed } from '../src/outcome.js';
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

describe('crash drills', () => {
  it('agent killed after finishing, before reporting: the restarted agent reports the kept outcome, executed once', async () => {
    const { server, agent } = stack();
    const srv = await server();
    const client = api(srv);
    const path = '/count?after-finish';
    const first = agent(srv, 'a', { AGENT_CRASH_AT: 'after-finish' });
    const submitted = await client.submit({ type: 'HTTP_GET_JSON', payload: { url: `${target.url}${path}` } });
    expect(await first.exited).toBe('SIGKILL');
    expect(first.output()).toMatch(/crash drill: SIGKILL now: AGENT_CRASH_AT=after-finish/);
    expect(await client.get(submitted.id)).toMatchObject({ status: 'RUNNING' });
    expect(target.hits(path)).toBe(1);

    const second = agent(srv, 'a');
    const done = await waitForCommand(client, submitted.id, isSettled);
    expect(done).toMatchObject({ status: 'COMPLETED', attempts: 1, result: { status: 200, body: { n: 1 } } });
    expect(target.hits(path)).toBe(1);
    await waitForOutput(second, /recovery: 0 command\(s\) interrupted by a crash; reporting 1 outcome\(s\)/);
    expect(executionsIn(second, submitted.id)).toBe(0);
    // Same agent after the restart: the id came from its database.
    const idOf = (out: string) => /"agentId":"([^"]+)"/.exec(out)?.[1];
    expect(idOf(second.output())).toBe(idOf(first.output()));
    expect(done.agentId).toBe(idOf(first.output()));
  });

  it('agent killed after starting, before executing: reported interrupted at restart, retried, executed once', async () => {
    const { server, agent } = stack();
    const srv = await server();
    const client = api(srv);
    const path = '/count?after-start';
    const first = agent(srv, 'a', { AGENT_CRASH_AT: 'after-start' });
    const submitted = await client.submit({ type: 'HTTP_GET_JSON', payload: { url: `${target.url}${path}` } });
    expect(await first.exited).toBe('SIGKILL');
    expect(target.hits(path)).toBe(0);

    const second = agent(srv, 'a');
    const done = await waitForCommand(client, submitted.id, isSettled);
    expect(done).toMatchObject({ status: 'COMPLETED', attempts: 2, result: { body: { n: 1 } } });
    expect(target.hits(path)).toBe(1);
    await waitForOutput(second, /recovery: 1 command\(s\) interrupted by a crash; reporting 1 outcome\(s\)/);
  });

  it('server killed while the agent runs a 2 s DELAY: after its restart the report is taken, executed once', async () => {
    const { server, agent } = stack();
    const first = await server();
    const client = api(first);
    const worker = agent(first, 'a');
    const submitted = await client.submit({ type: 'DELAY', payload: { ms: 2000 } });
    await waitForCommand(client, submitted.id, (c) => c.status === 'RUNNING');
    expect(await first.kill('SIGKILL')).toBe('SIGKILL');
    // The DELAY ends while the server is down, and the agent keeps trying to report it.
    await waitForOutput(worker, new RegExp(`report of ${submitted.id} failed \\(attempt 1\\)`), { timeoutMs: 6_000 });
    await server({}, first.port);
    const done = await waitForCommand(client, submitted.id, isSettled);
    expect(done).toMatchObject({ status: 'COMPLETED', attempts: 1, result: { ok: true } });
    expect(executionsIn(worker, submitted.id)).toBe(1);
  });

  it('agent killed mid-execution: its lease runs out and another agent runs the command', async () => {
    const { server, agent } = stack();
    const srv = await server({ LEASE_MS: '1500' });
    const client = api(srv);
    const doomed = agent(srv, 'doomed', { AGENT_ID: 'doomed' });
    const submitted = await client.submit({ type: 'DELAY', payload: { ms: 1000 } });
    await waitForCommand(client, submitted.id, (c) => c.status === 'RUNNING' && c.agentId === 'doomed');
    await doomed.kill('SIGKILL');
    agent(srv, 'rescuer', { AGENT_ID: 'rescuer' });
    const done = await waitForCommand(client, submitted.id, isSettled);
    expect(done).toMatchObject({ status: 'COMPLETED', agentId: 'rescuer', attempts: 2, result: { ok: true } });
  });

  it('agent frozen past its lease (SIGSTOP): on waking it stops that attempt, reports nothing, and runs it afresh', async () => {
    const { server, agent } = stack();
    const srv = await server({ LEASE_MS: '1000' });
    const client = api(srv);
    const frozen = agent(srv, 'a');
    // Longer than the lease, so on waking the lease deadline is due before the DELAY would end.
    const submitted = await client.submit({ type: 'DELAY', payload: { ms: 2000 } });
    await waitForCommand(client, submitted.id, (c) => c.status === 'RUNNING');
    process.kill(frozen.pid, 'SIGSTOP');
    await waitForCommand(client, submitted.id, (c) => c.status === 'PENDING' && c.error === 'lease expired');
    process.kill(frozen.pid, 'SIGCONT');
    await waitForOutput(frozen, new RegExp(`DELAY ${submitted.id} stopped, lease lost`));
    // Had it reported, the server would have taken it (the late holder's report is accepted
    // until someone claims the command) and it would no longer read "lease expired".
    expect(await client.get(submitted.id)).toMatchObject({ error: 'lease expired', attempts: 1 });
    await waitForOutput(frozen, new RegExp(`DELAY ${submitted.id} started \\(attempt 2 of 3\\)`));
    expect(frozen.output()).not.toMatch(new RegExp(`DELAY ${submitted.id} (COMPLETED|FAILED)`));
  });

  it('a command this agent already completed is not executed again when it is leased to it again', async () => {
    const { server, agent, dbPath } = stack();
    const srv = await server();
    const client = api(srv);
    const path = '/count?replay';
    const submitted = await client.submit({ type: 'HTTP_GET_JSON', payload: { url: `${target.url}${path}` } });
    // As after a report that came too late (409: another agent had the lease meanwhile):
    // the outcome is kept, dropped from reporting, and must be what a new lease gets.
    const kept = completed({ status: 200, ok: true, body: { kept: true }, truncated: false, bytesReturned: 13, tookMs: 1, error: null });
    const db = openDatabase(dbPath('a'));
    const outbox = new Outbox(db);
    outbox.begin(submitted.id, 'an-older-lease', 'HTTP_GET_JSON');
    outbox.finish(submitted.id, 'an-older-lease', kept);
    outbox.drop(submitted.id, 'an-older-lease', 'report answered 409');
    db.close();

    const worker = agent(srv, 'a');
    const done = await waitForCommand(client, submitted.id, isSettled);
    expect(done).toMatchObject({ status: 'COMPLETED', attempts: 1, result: kept.result });
    expect(target.hits(path)).toBe(0);
    // The agent's stdout reaches this process through a pipe, maybe after the server's answer did.
    await waitForOutput(worker, /already finished here \(COMPLETED\): reporting the kept outcome/);
  });

  it('--kill-after=SECONDS SIGKILLs the agent wherever it is (here: retrying polls to a server that is not there)', async () => {
    const { dbPath } = stack();
    const started = Date.now();
    const doomed = startAgent({ SERVER_URL: `http://127.0.0.1:${await freePort()}`, IDEMPOTENCY_DB_PATH: dbPath('a') }, ['--kill-after=0.5']);
    expect(await doomed.exited).toBe('SIGKILL');
    expect(Date.now() - started).toBeGreaterThanOrEqual(500);
    expect(doomed.output()).toMatch(/crash drill: SIGKILL now: timer/);
  });
});
