/**
 * The server serialises its answers as they are (no zod parse on the way out: see app.ts), so this
 * suite is what keeps them to the schemas of common/ that the OpenAPI document publishes. Every
 * JSON answer of a whole client-and-agent session is checked against the schema its route declares
 * for that status: it must parse, and parsing must not drop anything (no field the contract does
 * not name leaks out).
 */
import { isDeepStrictEqual } from 'node:util';
import type { ClaimedCommand } from '@agent-executor/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { expect, test } from 'vitest';
import type { ZodType } from 'zod';
import { delay, useApp } from './helpers.js';

const { build } = useApp();

interface Checked {
  route: string;
  statusCode: number;
  problem?: string;
}

test('every JSON answer matches the schema its route declares for its status, with nothing extra', async () => {
  const checked: Checked[] = [];
  const checkAnswer = async (request: FastifyRequest, reply: FastifyReply, payload: unknown) => {
    const type = String(reply.getHeader('content-type') ?? '');
    if (!type.startsWith('application/json') || typeof payload !== 'string') return payload;
    const route = `${request.method} ${request.routeOptions.url ?? request.url}`;
    const schemas = request.routeOptions.schema?.response as Record<number, ZodType> | undefined;
    const schema = schemas?.[reply.statusCode];
    if (!schema) {
      checked.push({ route, statusCode: reply.statusCode, problem: 'no schema declared for this status' });
      return payload;
    }
    const body: unknown = JSON.parse(payload);
    const parsed = schema.safeParse(body);
    let problem: string | undefined;
    if (!parsed.success) problem = parsed.error.message;
    else if (!isDeepStrictEqual(parsed.data, body)) problem = `fields outside the schema: ${payload}`;
    checked.push({ route, statusCode: reply.statusCode, ...(problem ? { problem } : {}) });
    return payload;
  };
  const { app } = await build({
    env: { LEASE_MS: '60000' },
    beforeReady: (app) => app.addHook('onSend', checkAnswer),
  });

  const call = (method: 'GET' | 'POST' | 'PUT', url: string, payload?: object, headers?: Record<string, string>) =>
    app.inject({ method, url, ...(payload ? { payload } : {}), ...(headers ? { headers } : {}) });

  await call('GET', '/health');
  const first = (await call('POST', '/commands', delay(5), { 'idempotency-key': 'k-1' })).json<{ id: string }>();
  await call('POST', '/commands', delay(5), { 'idempotency-key': 'k-1' }); // 200 replay
  await call('POST', '/commands', delay(6), { 'idempotency-key': 'k-1' }); // 422
  await call('POST', '/commands/batch', { commands: [delay(1), { type: 'HTTP_GET_JSON', payload: { url: 'http://127.0.0.1:9/' } }] });
  await call('POST', '/commands', { type: 'DELAY', payload: { ms: -1 } }); // 400
  await call('GET', '/commands?limit=2');
  await call('GET', `/commands/${first.id}`);
  await call('GET', '/commands/no-such-id'); // 404

  const claimed = (await call('GET', '/commands/next?agentId=shape-agent')).json<ClaimedCommand>();
  await call('POST', `/commands/${claimed.id}/heartbeat`, {
    agentId: 'shape-agent',
    leaseId: claimed.leaseId,
    progress: { percent: 50, message: 'half way' },
  });
  await call('POST', `/commands/${claimed.id}/heartbeat`, { agentId: 'someone-else', leaseId: 'x' }); // 409
  await call('PUT', `/commands/${claimed.id}/result`, {
    agentId: 'shape-agent',
    leaseId: claimed.leaseId,
    status: 'FAILED',
    error: 'broken on purpose',
  });
  await call('PUT', `/commands/${claimed.id}/result`, { agentId: 'late', status: 'COMPLETED' }); // 409
  await call('POST', `/commands/${claimed.id}/retry`);
  const batch = (await call('GET', '/commands/next-batch?agentId=shape-agent&max=10')).json<{
    commands: ClaimedCommand[];
  }>();
  await call('PUT', '/commands/results', {
    reports: batch.commands.map((c) => ({ id: c.id, agentId: 'shape-agent', leaseId: c.leaseId, status: 'COMPLETED', result: { ok: true } })),
  });
  const pending = (await call('POST', '/commands', delay(1000))).json<{ id: string }>();
  await call('POST', `/commands/${pending.id}/cancel`);
  await call('POST', `/commands/${pending.id}/cancel`); // 409
  // Routing (SPEC §9): a PENDING command with waitingFor, the fleet's routes.
  const keyed = { concurrencyKey: 'shape-key', concurrencyLimit: 1, queue: 'shapes', priority: 3 };
  await call('POST', '/commands', delay(1, keyed));
  const held = (await call('POST', '/commands', delay(1, keyed))).json<{ id: string }>();
  await call('GET', `/commands/${held.id}`);
  await call('GET', '/agents');
  await call('GET', '/queues');
  await call('POST', '/agents/shape-agent/drain');
  await call('POST', '/agents/nobody/drain'); // 404

  const problems = checked.filter((c) => c.problem !== undefined);
  expect(problems, JSON.stringify(problems, null, 2)).toEqual([]);
  const seen = new Set(checked.map((c) => `${c.route} ${c.statusCode}`));
  for (const expected of [
    'GET /health 200',
    'POST /commands 201',
    'POST /commands 200',
    'POST /commands 422',
    'POST /commands 400',
    'POST /commands/batch 201',
    'GET /commands 200',
    'GET /commands/:id 200',
    'GET /commands/:id 404',
    'GET /commands/next 200',
    'POST /commands/:id/heartbeat 200',
    'POST /commands/:id/heartbeat 409',
    'PUT /commands/:id/result 200',
    'PUT /commands/:id/result 409',
    'POST /commands/:id/retry 200',
    'GET /commands/next-batch 200',
    'PUT /commands/results 200',
    'POST /commands/:id/cancel 200',
    'POST /commands/:id/cancel 409',
    'GET /agents 200',
    'GET /queues 200',
    'POST /agents/:id/drain 200',
    'POST /agents/:id/drain 404',
  ]) {
    expect(seen, `${expected} was answered and checked`).toContain(expected);
  }
});
