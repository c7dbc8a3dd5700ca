/**
 * The real server process (`node control-server/dist/main.js`), killed with SIGKILL and started
 * again on the same database file: nothing it answered 201 for is lost, and no lease changes.
 */
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import type { ClaimedCommand, Command } from '@agent-executor/common';
import { killAll, SERVER_MAIN, startProcess, startServer, tempDir, waitFor } from '../../test-support/processes.js';

let dir: ReturnType<typeof tempDir> | undefined;
afterEach(async ({ task }) => {
  await killAll();
  dir?.cleanup(task.result?.state !== 'fail');
  dir = undefined;
});

const json = { 'content-type': 'application/json' };

async function submit(url: string, ms: number, key?: string): Promise<Command> {
  const res = await fetch(`${url}/commands`, {
    method: 'POST',
    headers: { ...json, ...(key ? { 'idempotency-key': key } : {}) },
    body: JSON.stringify({ type: 'DELAY', payload: { ms } }),
  });
  expect(res.status).toBe(201);
  const { commandId: _, ...command } = (await res.json()) as Command & { commandId: string };
  return command;
}

async function claim(url: string, agentId: string): Promise<ClaimedCommand> {
  const res = await fetch(`${url}/commands/next?agentId=${agentId}`);
  expect(res.status).toBe(200);
  return (await res.json()) as ClaimedCommand;
}

async function list(url: string): Promise<Command[]> {
  const res = await fetch(`${url}/commands?limit=1000`);
  expect(res.status).toBe(200);
  return (await res.json()) as Command[];
}

const withoutLease = ({ leaseId: _, ...command }: ClaimedCommand): Command => command;

describe('crash and restart of the real server process', () => {
  test('SIGKILL right after the answers: every 201 and every lease is there after a restart', async () => {
    dir = tempDir('crash-restart');
    const env = { DB_PATH: join(dir.path, 'commands.db'), LEASE_MS: '60000' };
    const first = await startServer(env);

    // Submitted concurrently, so several share one group commit.
    const submitted = await Promise.all(Array.from({ length: 30 }, (_, i) => submit(first.url, i, i % 3 === 0 ? `key-${i}` : undefined)));
    const claimed = await Promise.all(Array.from({ length: 6 }, (_, i) => claim(first.url, `agent-${i}`)));
    expect(await first.kill('SIGKILL')).toBe('SIGKILL');

    const second = await startServer(env);
    const expected = new Map(submitted.map((c) => [c.id, c]));
    for (const c of claimed) expected.set(c.id, withoutLease(c));
    const after = await list(second.url);
    expect(after).toHaveLength(30);
    for (const command of after) expect(command).toEqual(expected.get(command.id));

    // The lease ids survived too: each holder can still renew and report; a made-up lease cannot.
    for (const c of claimed) {
      const wrong = await fetch(`${second.url}/commands/${c.id}/heartbeat`, {
        method: 'POST',
        headers: json,
        body: JSON.stringify({ agentId: c.agentId, leaseId: 'made-up-lease' }),
      });
      expect(wrong.status).toBe(409);
      const renewed = await fetch(`${second.url}/commands/${c.id}/heartbeat`, {
        method: 'POST',
        headers: json,
        body: JSON.stringify({ agentId: c.agentId, leaseId: c.leaseId }),
      });
      expect(renewed.status).toBe(200);
      const reported = await fetch(`${second.url}/commands/${c.id}/result`, {
        method: 'PUT',
        headers: json,
        body: JSON.stringify({ agentId: c.agentId, leaseId: c.leaseId, result: { ok: true } }),
      });
      expect(reported.status).toBe(200);
    }
    // Idempotency keys survived: a resubmit answers the stored command, not a new one.
    const again = await fetch(`${second.url}/commands`, {
      method: 'POST',
      headers: { ...json, 'idempotency-key': 'key-3' },
      body: JSON.stringify({ type: 'DELAY', payload: { ms: 3 } }),
    });
    expect(again.status).toBe(200);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect(await list(second.url)).toHaveLength(30);
    expect(await second.kill('SIGTERM'), 'a graceful stop exits 0').toBe(0);
  });

  test('a lease that ran out while the server was down is given one LEASE_MS after the start, then expires', async () => {
    dir = tempDir('crash-restart');
    const dbPath = join(dir.path, 'commands.db');
    // A short lease before the crash, so it runs out while the server is down.
    const first = await startServer({ DB_PATH: dbPath, LEASE_MS: '300' });
    await submit(first.url, 1);
    const c = await claim(first.url, 'agent-1');
    await first.kill('SIGKILL');
    await waitFor(() => Date.now() > Date.parse(c.leaseExpiresAt) + 50, { what: 'the lease to run out', timeoutMs: 3000 });

    const leaseMs = 2000;
    const startedAt = Date.now();
    const second = await startServer({ DB_PATH: dbPath, LEASE_MS: String(leaseMs) });
    const right = (await list(second.url))[0];
    if (Date.now() - startedAt < leaseMs) {
      expect(right, 'still leased during the grace period after a start').toMatchObject({ status: 'RUNNING', leaseExpiresAt: c.leaseExpiresAt });
    }
    const expired = await waitFor(async () => {
      const [command] = await list(second.url);
      return command?.status === 'PENDING' ? command : undefined;
    }, { what: 'the reaper to requeue the lease', timeoutMs: leaseMs + 5000, intervalMs: 50 });
    expect(Date.parse(expired.updatedAt)).toBeGreaterThanOrEqual(startedAt + leaseMs);
    expect(expired).toMatchObject({ error: 'lease expired', attempts: 1 });
    // Nobody else has claimed it, so the holder's late report is still taken.
    const late = await fetch(`${second.url}/commands/${c.id}/result`, {
      method: 'PUT',
      headers: json,
      body: JSON.stringify({ agentId: 'agent-1', leaseId: c.leaseId, result: { ok: true } }),
    });
    expect(late.status).toBe(200);
  });

  test.each([
    ['PORT', 'abc'],
    ['LEASE_MS', '-1'],
    ['LOG_LEVEL', 'loud'],
    ['API_TOKEN', 'short'],
    ['SQLITE_SYNCHRONOUS', 'OFF'],
  ])('%s=%s stops the process with a message naming the variable', async (name, value) => {
    dir = tempDir('crash-restart');
    const proc = startProcess(SERVER_MAIN, [], { DB_PATH: join(dir.path, 'commands.db'), PORT: '0', [name]: value });
    const code = await proc.exited;
    expect(code).not.toBe(0);
    expect(typeof code).toBe('number');
    expect(proc.output()).toContain(name);
    expect(proc.output()).toMatch(/invalid configuration/);
  });
});
