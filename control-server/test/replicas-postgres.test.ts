/**
 * Two real server processes (control-server/dist/main.js) on one PostgreSQL database, as behind a
 * load balancer: a change made through replica A reaches a client of replica B live and in order,
 * a poll waiting on B is handed work submitted through A, and a resume on B from an id seen on A
 * loses nothing.
 */
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, inject, test } from 'vitest';
import type { ClaimedCommand, Command } from '@agent-executor/common';
import { firstServer } from '../../agent/src/failover.js';
import { HttpApi } from '../../test-support/http-api.js';
import { createDatabase } from '../../test-support/postgres.js';
import { killAll, startAgent, startServer, tempDir, waitFor, waitForOutput, type RunningServer } from '../../test-support/processes.js';
import { closeAllClients, eventSource } from '../../test-support/sse-clients.js';

let a: RunningServer;
let b: RunningServer;
let dir: ReturnType<typeof tempDir>;
let databaseUrl: string;
let failed = false;

beforeAll(async () => {
  dir = tempDir('replicas-postgres');
  const env = {
    DATABASE_URL: (databaseUrl = await createDatabase(inject('postgresUrl'), 'replicas_e2e')),
    DB_PATH: `${dir.path}/unused.db`,
    LEASE_MS: '5000',
  };
  // Both at once: the migrations are taken in turn under the advisory lock.
  [a, b] = await Promise.all([startServer(env), startServer(env)]);
});
afterEach(({ task }) => {
  if (task.result?.state === 'fail') failed = true;
  closeAllClients();
});
afterAll(async () => {
  if (failed) console.error(`replica A:\n${a?.output()}\nreplica B:\n${b?.output()}`);
  await killAll();
  dir?.cleanup(!failed);
});

describe('two server replicas on one PostgreSQL', () => {
  test('a poll waiting on B is handed, at once, the command submitted through A', async () => {
    const poll = fetch(`${b.url}/commands/next?agentId=agent-b&wait=20`);
    await new Promise((resolve) => setTimeout(resolve, 200)); // the poll is waiting on B
    const submittedAt = Date.now();
    const command = await new HttpApi(a.url).submit({ type: 'DELAY', payload: { ms: 1 } });
    const res = await poll;
    expect(res.status).toBe(200);
    expect(((await res.json()) as ClaimedCommand).id).toBe(command.id);
    expect(Date.now() - submittedAt).toBeLessThan(2_000);
  });

  test('a client of B sees, live and in order, every change made through A; a resume on B from an id seen on A loses nothing', async () => {
    const apiA = new HttpApi(a.url);
    // Both from the log's end now: an event of the previous test that one replica hears late
    // (through NOTIFY, under load) is then before the start of both streams, not in one of them.
    const db = new pg.Client({ connectionString: databaseUrl });
    await db.connect();
    const start = (await db.query<{ seq: number }>('SELECT last_seq::integer AS seq FROM event_counter')).rows[0]!.seq;
    await db.end();
    const onA = eventSource(`${a.url}/events?lastEventId=${start}`);
    const onB = eventSource(`${b.url}/events?lastEventId=${start}`);
    await onA.until(() => onA.opens > 0, 'open');
    await onB.until(() => onB.opens > 0, 'open');

    const commands: Command[] = [];
    for (let i = 0; i < 5; i++) commands.push(await apiA.submit({ type: 'DELAY', payload: { ms: i } }));
    for (let i = 0; i < 3; i++) {
      const claimed = await apiA.claim('agent-a');
      await apiA.heartbeat(claimed, { percent: 50 });
      await apiA.report(claimed, { result: { ok: true, tookMs: i } });
    }
    const expected = 5 + 3 * 3;
    await onA.until(() => onA.events.length >= expected, `${expected} events on A`);
    await onB.until(() => onB.events.length >= expected, `${expected} events on B`);
    const ids = onA.events.map((e) => e.id);
    for (let i = 1; i < ids.length; i++) expect(ids[i]).toBeGreaterThan(ids[i - 1]!);
    // B saw exactly what A saw, in the same order, with the same contents.
    expect(onB.events).toEqual(onA.events);
    expect(onB.events.slice(0, 5).map((e) => e.command.id)).toEqual(commands.map((c) => c.id));

    // A client that saw up to the 4th event on A reconnects to B.
    const seen = onA.events[3]!.id;
    const resumed = eventSource(`${b.url}/events?lastEventId=${seen}`);
    await resumed.until(() => resumed.events.length >= expected - 4, 'the events after the resume point');
    expect(resumed.events).toEqual(onA.events.slice(4));
  });

  // Last: it kills replica A.
  test('an agent given both URLs fails over when replica A is killed, and every command completes through B', async () => {
    // The agent starts at the server its id picks (agent/src/failover.ts): list A there.
    const AGENT_ID = 'agent-failover';
    const urls = firstServer(AGENT_ID, 2) === 0 ? [a.url, b.url] : [b.url, a.url];
    const agent = startAgent({
      SERVER_URL: urls.join(','),
      AGENT_ID,
      IDEMPOTENCY_DB_PATH: `${dir.path}/agent.db`,
      CONCURRENCY: '2',
      LONG_POLL_WAIT: '5',
    });
    const apiB = new HttpApi(b.url);
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) ids.push((await apiB.submit({ type: 'DELAY', payload: { ms: 150 } })).id);
    const completed = async () =>
      (await Promise.all(ids.map((id) => apiB.get(id)))).filter((c) => c.status === 'COMPLETED').length;
    await waitFor(async () => (await completed()) >= 3, { what: '3 commands completed through A', timeoutMs: 20_000 });
    await a.kill('SIGKILL');
    await waitForOutput(agent, /switching to/, { timeoutMs: 20_000 });
    await waitFor(async () => (await completed()) === ids.length, { what: 'all 20 completed', timeoutMs: 40_000 });
    const commands = await Promise.all(ids.map((id) => apiB.get(id)));
    expect(commands.every((c) => c.status === 'COMPLETED' && c.error === null)).toBe(true);
    await agent.kill('SIGKILL');
  }, 90_000);
});
