/**
 * Routing with real processes (SPEC §9): agents advertise their queues (AGENT_QUEUES) and types on
 * each poll and get only those commands; a drained agent finishes what it runs, reports, exits 0.
 */
import type { AgentView, Command } from '@agent-executor/common';
import { expect, test } from 'vitest';
import { waitFor } from '../../test-support/processes.js';
import { api, useStack, waitForCommand } from './stack.js';

const stack = useStack();

async function post(url: string, body?: unknown): Promise<Response> {
  return fetch(url, {
    method: 'POST',
    ...(body === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
  });
}
const submit = async (url: string, body: unknown) => (await (await post(`${url}/commands`, body)).json()) as Command;
const agentsOf = async (url: string) => ((await (await fetch(`${url}/agents`)).json()) as AgentView[]);

test('each agent runs only the commands of the queues it serves; GET /agents shows what it advertises', async () => {
  const { server, agent } = stack();
  const srv = await server();
  agent(srv, 'plain', { AGENT_ID: 'plain' });
  agent(srv, 'gpu', { AGENT_ID: 'gpu', AGENT_QUEUES: 'gpu,batch' });
  const onGpu = await Promise.all(Array.from({ length: 4 }, () => submit(srv.url, { type: 'DELAY', payload: { ms: 1 }, queue: 'gpu' })));
  const onDefault = await Promise.all(Array.from({ length: 4 }, () => submit(srv.url, { type: 'DELAY', payload: { ms: 1 } })));
  const client = api(srv);
  for (const c of onGpu) expect((await waitForCommand(client, c.id, (x) => x.status === 'COMPLETED')).agentId).toBe('gpu');
  for (const c of onDefault) expect((await waitForCommand(client, c.id, (x) => x.status === 'COMPLETED')).agentId).toBe('plain');
  const agents = await agentsOf(srv.url);
  expect(agents.find((a) => a.id === 'gpu')).toMatchObject({ queues: ['gpu', 'batch'], types: ['DELAY', 'HTTP_GET_JSON'], state: 'active', concurrency: 1 });
  expect(agents.find((a) => a.id === 'plain')).toMatchObject({ queues: ['default'], version: expect.any(String), hostname: expect.any(String) });
});

test('drain: the agent stops claiming, finishes its running command, reports it and exits 0', async () => {
  const { server, agent } = stack();
  const srv = await server();
  const worker = agent(srv, 'drained', { AGENT_ID: 'drained', LONG_POLL_WAIT: '20' });
  const long = await submit(srv.url, { type: 'DELAY', payload: { ms: 1_500 } });
  const client = api(srv);
  await waitForCommand(client, long.id, (c) => c.status === 'RUNNING');
  expect((await post(`${srv.url}/agents/drained/drain`)).status).toBe(200);
  const after = await submit(srv.url, { type: 'DELAY', payload: { ms: 1 } });
  expect(await worker.exited, worker.output()).toBe(0);
  expect((await client.get(long.id)).status, 'the running command was finished and reported').toBe('COMPLETED');
  expect((await client.get(after.id)).status, 'nothing more was claimed').toBe('PENDING');
  await waitFor(async () => (await agentsOf(srv.url)).find((a) => a.id === 'drained')?.state === 'draining', { what: 'draining shown' });
});
