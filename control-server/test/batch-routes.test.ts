import type { ClaimedCommand, Command } from '@agent-executor/common';
import { describe, expect, test } from 'vitest';
import { countCommands, delay, expectErrorShape, useApp } from './helpers.js';

const { build } = useApp();

describe('batched routes', () => {
  test('POST /commands/batch stores every command in order and answers 201 with their ids', async () => {
    const { app, store } = await build();
    const res = await app.inject({
      method: 'POST',
      url: '/commands/batch',
      payload: { commands: [delay(1), delay(2), { type: 'HTTP_GET_JSON', payload: { url: 'http://example.com/' } }] },
    });
    expect(res.statusCode, res.body).toBe(201);
    const { commands } = res.json<{ commands: Array<Command & { commandId: string }> }>();
    expect(commands.map((c) => c.payload)).toEqual([{ ms: 1 }, { ms: 2 }, { url: 'http://example.com/' }]);
    expect(commands.every((c) => c.commandId === c.id && c.status === 'PENDING')).toBe(true);
    expect(await countCommands(store)).toBe(3);
  });

  test('one invalid command in a batch is a 400 naming it, and nothing is stored', async () => {
    const { app, store } = await build();
    const res = await app.inject({
      method: 'POST',
      url: '/commands/batch',
      payload: { commands: [delay(1), delay(-2)] },
    });
    expect(res.statusCode).toBe(400);
    expectErrorShape(res.json(), 400);
    expect(res.json<{ message: string }>().message).toContain('commands.1.payload.ms');
    expect(await countCommands(store)).toBe(0);
  });

  test.each([
    ['an empty batch', { commands: [] }],
    ['more than 1000', { commands: Array.from({ length: 1001 }, () => delay(0)) }],
    ['not an array', { commands: delay(1) }],
    ['an unknown field', { commands: [delay(1)], extra: true }],
  ])('%s is a 400 and stores nothing', async (_name, payload) => {
    const { app, store } = await build();
    const res = await app.inject({ method: 'POST', url: '/commands/batch', payload });
    expect(res.statusCode).toBe(400);
    expectErrorShape(res.json(), 400);
    expect(await countCommands(store)).toBe(0);
  });

  test('GET /commands/next-batch leases up to max commands, oldest first, each with its own lease', async () => {
    const { app } = await build();
    await app.inject({ method: 'POST', url: '/commands/batch', payload: { commands: [delay(1), delay(2), delay(3)] } });
    const first = await app.inject({ method: 'GET', url: '/commands/next-batch?agentId=batcher&max=2' });
    expect(first.statusCode).toBe(200);
    const { commands } = first.json<{ commands: ClaimedCommand[] }>();
    expect(commands.map((c) => c.payload)).toEqual([{ ms: 1 }, { ms: 2 }]);
    expect(new Set(commands.map((c) => c.leaseId)).size).toBe(2);
    expect(commands.every((c) => c.status === 'RUNNING' && c.agentId === 'batcher')).toBe(true);

    const second = await app.inject({ method: 'GET', url: '/commands/next-batch?agentId=batcher&max=2' });
    expect(second.json<{ commands: ClaimedCommand[] }>().commands.map((c) => c.payload)).toEqual([{ ms: 3 }]);
    const empty = await app.inject({ method: 'GET', url: '/commands/next-batch?agentId=batcher' });
    expect(empty.statusCode).toBe(204);
    const tooMany = await app.inject({ method: 'GET', url: '/commands/next-batch?agentId=batcher&max=101' });
    expect(tooMany.statusCode).toBe(400);
  });

  test('PUT /commands/results answers each report as the single route would, and one bad report spoils none', async () => {
    const { app, store } = await build();
    await app.inject({ method: 'POST', url: '/commands/batch', payload: { commands: [delay(1), delay(2)] } });
    const { commands } = (await app.inject({ method: 'GET', url: '/commands/next-batch?agentId=a&max=2' })).json<{
      commands: ClaimedCommand[];
    }>();
    const [one, two] = commands as [ClaimedCommand, ClaimedCommand];
    const reports = [
      { id: one.id, agentId: 'a', leaseId: one.leaseId, result: { ok: true, tookMs: 1 } },
      { id: 'no-such-command', agentId: 'a', result: {} },
      { id: two.id, agentId: 'someone-else', leaseId: two.leaseId, result: {} },
      { id: two.id, agentId: 'a', leaseId: two.leaseId, status: 'FAILED', error: 'boom', retryable: false },
    ];
    const res = await app.inject({ method: 'PUT', url: '/commands/results', payload: { reports } });
    expect(res.statusCode, res.body).toBe(200);
    const { results } = res.json<{ results: Array<{ id: string; statusCode: number; command?: Command }> }>();
    expect(results.map((r) => r.statusCode)).toEqual([200, 404, 409, 200]);
    expect(results[0]?.command?.status).toBe('COMPLETED');
    expect(results[3]?.command?.status).toBe('FAILED');
    expect((await store.get(one.id))?.result).toEqual({ ok: true, tookMs: 1 });
    expect((await store.get(two.id))?.error).toBe('boom');

    // The same batch again changes nothing: the taken reports replay as 200.
    const again = await app.inject({ method: 'PUT', url: '/commands/results', payload: { reports } });
    expect(again.json<{ results: Array<{ statusCode: number }> }>().results.map((r) => r.statusCode)).toEqual([
      200, 404, 409, 200,
    ]);
    expect((await store.get(two.id))?.status).toBe('FAILED');
  });
});
