/**
 * Each size limit from both sides, over real HTTP: the largest request the contract allows is
 * accepted and stored whole, one byte more is refused. (The refusals alone are in http-limits and
 * routes tests; a limit set too low would pass those and fail here.)
 */
import { describe, expect, test } from 'vitest';
import { MAX_BODY_BYTES, MAX_RESULT_BYTES, type ClaimedCommand, type Command } from '@agent-executor/common';
import { countCommands, listen, useApp } from './helpers.js';

const { build } = useApp();

const send = (base: string, method: string, path: string, body: string) =>
  fetch(`${base}${path}`, { method, headers: { 'content-type': 'application/json' }, body });

/** `json` padded with trailing whitespace (still valid JSON) to exactly `bytes` bytes. */
function padTo(json: string, bytes: number): string {
  const size = Buffer.byteLength(json);
  if (size > bytes) throw new Error(`${size} bytes is already over ${bytes}`);
  return json + ' '.repeat(bytes - size);
}

/** A result whose JSON is exactly `bytes` bytes: `{"s":"xxx…"}`. */
function resultOf(bytes: number): { s: string } {
  return { s: 'x'.repeat(bytes - Buffer.byteLength('{"s":""}')) };
}

describe('limits from both sides', () => {
  test('a batch submit of exactly 1 MiB is stored whole; 1 MiB + 1 byte is a 413 and stores nothing', async () => {
    const { app, store } = await build();
    const base = await listen(app);
    // 500 commands with 2 000-character URLs: about 0.98 MiB of real content.
    const commands = Array.from({ length: 500 }, (_, i) => ({
      type: 'HTTP_GET_JSON',
      payload: { url: `https://example.com/${String(i).padStart(4, '0')}/${'a'.repeat(1975)}` },
    }));
    const json = JSON.stringify({ commands });
    expect(Buffer.byteLength(json)).toBeGreaterThan(MAX_BODY_BYTES - 32 * 1024);

    const over = await send(base, 'POST', '/commands/batch', padTo(json, MAX_BODY_BYTES + 1));
    expect(over.status).toBe(413);
    expect(await countCommands(store)).toBe(0);

    const atLimit = await send(base, 'POST', '/commands/batch', padTo(json, MAX_BODY_BYTES));
    expect(atLimit.status, await atLimit.clone().text()).toBe(201);
    const stored = (await atLimit.json()) as { commands: Command[] };
    expect(stored.commands).toHaveLength(500);
    expect(await countCommands(store)).toBe(500);
    const last = await store.get(stored.commands[499]!.id);
    expect(last?.payload).toEqual(commands[499]!.payload);
  });

  test('a result of exactly 256 KiB is stored and read back whole; one byte more is a 413 and changes nothing', async () => {
    const { app, store } = await build();
    const base = await listen(app);
    await store.submitBatch([{ type: 'DELAY', payload: { ms: 1 } }, { type: 'DELAY', payload: { ms: 1 } }]);
    const a = (await store.claim('agent-1', 60_000)) as ClaimedCommand;
    const b = (await store.claim('agent-1', 60_000)) as ClaimedCommand;

    const tooBig = resultOf(MAX_RESULT_BYTES + 1);
    const refused = await send(base, 'PUT', `/commands/${a.id}/result`, JSON.stringify({ agentId: 'agent-1', leaseId: a.leaseId, result: tooBig }));
    expect(refused.status).toBe(413);
    expect((await store.get(a.id))?.status).toBe('RUNNING');

    const justFits = resultOf(MAX_RESULT_BYTES);
    expect(Buffer.byteLength(JSON.stringify(justFits))).toBe(MAX_RESULT_BYTES);
    const accepted = await send(base, 'PUT', `/commands/${a.id}/result`, JSON.stringify({ agentId: 'agent-1', leaseId: a.leaseId, result: justFits }));
    expect(accepted.status, await accepted.clone().text()).toBe(200);
    expect((await store.get(a.id))?.result).toEqual(justFits);
    const read = (await (await fetch(`${base}/commands/${a.id}`)).json()) as Command;
    expect(read.result).toEqual(justFits);

    // 255 KiB, the size the audit asked for, through the batched route.
    const result255 = resultOf(255 * 1024);
    const batch = await send(base, 'PUT', '/commands/results', JSON.stringify({
      reports: [{ id: b.id, agentId: 'agent-1', leaseId: b.leaseId, result: result255 }],
    }));
    expect(batch.status).toBe(200);
    expect(((await batch.json()) as { results: Array<{ statusCode: number }> }).results[0]?.statusCode).toBe(200);
    expect((await store.get(b.id))?.result).toEqual(result255);
  });

  test('three 255 KiB results in one batched report (under 1 MiB) are all stored; a 257 KiB one among them is refused alone', async () => {
    const { app, store } = await build();
    const base = await listen(app);
    await store.submitBatch(Array.from({ length: 4 }, () => ({ type: 'DELAY' as const, payload: { ms: 1 } })));
    const leased: ClaimedCommand[] = [];
    for (let i = 0; i < 4; i++) leased.push((await store.claim('agent-1', 60_000)) as ClaimedCommand);
    const reports = leased.slice(0, 3).map((c, i) => ({ id: c.id, agentId: 'agent-1', leaseId: c.leaseId, result: resultOf(255 * 1024 - i) }));
    const body = JSON.stringify({ reports });
    expect(Buffer.byteLength(body)).toBeLessThan(MAX_BODY_BYTES);
    const res = await send(base, 'PUT', '/commands/results', body);
    expect(res.status, await res.clone().text()).toBe(200);
    expect(((await res.json()) as { results: Array<{ statusCode: number }> }).results.map((r) => r.statusCode)).toEqual([200, 200, 200]);
    for (const [i, c] of leased.slice(0, 3).entries()) expect((await store.get(c.id))?.result).toEqual(reports[i]!.result);

    const d = leased[3]!;
    const big = await send(base, 'PUT', '/commands/results', JSON.stringify({
      reports: [{ id: d.id, agentId: 'agent-1', leaseId: d.leaseId, result: resultOf(257 * 1024) }],
    }));
    expect(big.status).toBe(413);
    expect((await store.get(d.id))?.status).toBe('RUNNING');
  });
});
