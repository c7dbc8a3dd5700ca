/**
 * Failover with real processes (SPEC §8): two control servers on one store, an agent given both
 * URLs, and the server it works with killed under it.
 *
 * The two servers share one SQLite file, which stands in for the shared PostgreSQL of a real
 * deployment: WAL mode lets two processes read and write one file, every write is a BEGIN
 * IMMEDIATE transaction waited for through busy_timeout, and B starts after A has migrated the
 * file. What does not cross processes is the in-process wake-up (a submit on A does not wake a
 * poll waiting on B), so commands go to the server the agent is polling at that moment.
 */
import { describe, expect, it } from 'vitest';
import { waitForOutput } from '../../test-support/processes.js';
import { firstServer } from '../src/failover.js';
import { api, executionsIn, isSettled, useStack, waitForCommand } from './stack.js';

const stack = useStack();
const AGENT_ID = 'failover-agent';

describe('agent failover between two servers', () => {
  it('a server killed while its command runs: heartbeats, the report and later polls go to the other', async () => {
    const { server, agent } = stack();
    // A short lease: heartbeats every second, and a lease that could not be renewed anywhere
    // would run out (and the command run again) well within the DELAY.
    const a = await server({ LEASE_MS: '3000' });
    const b = await server({ LEASE_MS: '3000', LOG_LEVEL: 'info' });
    // The agent starts at the server its id picks; the list is ordered so that is A.
    const urls = firstServer(AGENT_ID, 2) === 0 ? [a.url, b.url] : [b.url, a.url];
    // Two slots: while the DELAY runs the agent also has a long-poll waiting on A.
    const worker = agent(a, 'agent', { SERVER_URL: urls.join(','), AGENT_ID, CONCURRENCY: '2' });
    await waitForOutput(worker, new RegExp(`"serverUrl":"${a.url}"`));

    const delay = await api(a).submit({ type: 'DELAY', payload: { ms: 5000 } });
    // Leased at A and renewed there at least once.
    await waitForCommand(api(a), delay.id, (c) => (c.progress?.percent ?? 0) > 0, { what: 'a heartbeat on A' });
    await a.kill('SIGKILL');

    const done = await waitForCommand(api(b), delay.id, isSettled, { timeoutMs: 20_000 });
    expect(done).toMatchObject({ status: 'COMPLETED', attempts: 1, agentId: AGENT_ID });
    expect(executionsIn(worker, delay.id)).toBe(1);
    // The lease taken at A was renewed at B, and the outcome reported to B. B's log reaches us
    // through a pipe, possibly after the answer that showed the command COMPLETED: wait for it.
    await waitForOutput(b, new RegExp(`"url":"/commands/${delay.id}/heartbeat"`));
    await waitForOutput(b, new RegExp(`"url":"/commands/(${delay.id}/result|results(\\?brief=true)?)"`));
    // One switch, logged once, though the poll and a heartbeat both failed on A.
    const switches = worker.output().split('\n').filter((line) => line.includes('switching to'));
    expect(switches).toHaveLength(1);
    expect(switches[0]).toContain(`"to":"${b.url}"`);

    // New work submitted to B is picked up: the agent polls B now.
    const next = await api(b).submit({ type: 'DELAY', payload: { ms: 10 } });
    expect(await waitForCommand(api(b), next.id, isSettled)).toMatchObject({ status: 'COMPLETED', attempts: 1, agentId: AGENT_ID });
    await waitForOutput(b, /"url":"\/commands\/next\?/);
  });
});
