/**
 * A short chaos run with replicas: two server processes on one PostgreSQL, two agents given both
 * URLs; replicas are SIGKILLed (one at a time, and both at once) and restarted on their ports, an
 * agent is SIGKILLed and restarted, while commands run. Nothing is lost and every command
 * completes once.
 */
import pg from 'pg';
import { afterAll, expect, inject, test } from 'vitest';
import { createDatabase } from '../../test-support/postgres.js';
import {
  freePort,
  killAll,
  startAgent,
  startServer,
  tempDir,
  waitFor,
  type RunningProcess,
  type RunningServer,
} from '../../test-support/processes.js';

const dir = tempDir('replica-kills');
let failed = true;
afterAll(async () => {
  await killAll();
  dir.cleanup(!failed);
});

test('replicas and an agent SIGKILLed while 120 commands run: every command completes, once', async () => {
  const url = await createDatabase(inject('postgresUrl'), 'replica_kills');
  const env = { DATABASE_URL: url, DB_PATH: `${dir.path}/unused.db`, LEASE_MS: '3000' };
  const ports = [await freePort(), await freePort()];
  const servers: RunningServer[] = await Promise.all(ports.map((port) => startServer(env, port)));
  const urls = ports.map((port) => `http://127.0.0.1:${port}`);
  const agentEnv = (i: number) => ({
    SERVER_URL: urls.join(','),
    IDEMPOTENCY_DB_PATH: `${dir.path}/agent-${i}.db`,
    AGENT_ID: `agent-${i}`,
    CONCURRENCY: '4',
    LONG_POLL_WAIT: '2',
  });
  const agents: RunningProcess[] = [startAgent(agentEnv(0)), startAgent(agentEnv(1))];

  /** Submits through whichever replica answers. */
  const submit = async (i: number): Promise<string> => {
    for (let attempt = 0; ; attempt++) {
      const base = urls[(i + attempt) % urls.length];
      try {
        const res = await fetch(`${base}/commands`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'idempotency-key': `cmd-${i}` },
          body: JSON.stringify({ type: 'DELAY', payload: { ms: 20 + (i % 5) * 20 }, maxAttempts: 20 }),
        });
        if (res.status === 201 || res.status === 200) return ((await res.json()) as { id: string }).id;
      } catch {
        // that replica is down: the next one
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  };
  const restart = async (i: number) => {
    await servers[i]!.kill('SIGKILL');
    servers[i] = await startServer(env, ports[i]);
  };

  const ids: string[] = [];
  const submitting = (async () => {
    for (let i = 0; i < 120; i++) ids.push(await submit(i));
  })();
  const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
  await pause(700);
  await restart(0);
  await pause(700);
  await restart(1);
  await pause(500);
  await agents[0]!.kill('SIGKILL');
  agents[0] = startAgent(agentEnv(0));
  await pause(700);
  await Promise.all([servers[0]!.kill('SIGKILL'), servers[1]!.kill('SIGKILL')]); // both at once
  servers.splice(0, 2, ...(await Promise.all(ports.map((port) => startServer(env, port)))));
  await submitting;

  const db = new pg.Client({ connectionString: url });
  await db.connect();
  try {
    const counts = async () =>
      (await db.query<{ status: string; n: number }>('SELECT status, count(*)::int AS n FROM commands GROUP BY status')).rows;
    await waitFor(async () => (await counts()).every((r) => r.status === 'COMPLETED'), {
      what: 'every command COMPLETED',
      timeoutMs: 60_000,
      intervalMs: 250,
    }).catch(async (err: unknown) => {
      // What a stall needs to be read: where the commands are, and what each process said.
      const said = [...servers.map((p, i) => [`replica ${i}`, p] as const), ...agents.map((p, i) => [`agent-${i}`, p] as const)].map(
        ([who, p]) => `--- ${who} (pid ${p.pid}, ${p.isRunning() ? 'running' : 'exited'}):\n${p.output().slice(-2_000)}`,
      );
      throw new Error(`${String(err)}\ncommands by status: ${JSON.stringify(await counts())}\n${said.join('\n')}`);
    });
    expect(await counts()).toEqual([{ status: 'COMPLETED', n: 120 }]);
    expect(new Set(ids).size).toBe(120);
    // Completed once: one report took each command to COMPLETED, and nothing changed it after.
    const { rows } = await db.query<{ command_id: string; n: number }>(
      `SELECT command_id, count(*)::int AS n FROM events WHERE transition = 'report' AND data LIKE '%"status":"COMPLETED"%'
       GROUP BY command_id`,
    );
    expect(rows).toHaveLength(120);
    expect(rows.filter((r) => r.n !== 1)).toEqual([]);
    // Event ids without a hole, whichever replica wrote them.
    const { rows: ids2 } = await db.query<{ seq: string }>('SELECT seq FROM events ORDER BY seq');
    expect(ids2.map((r) => Number(r.seq))).toEqual(ids2.map((_, i) => i + 1));
  } finally {
    await db.end();
  }
  failed = false;
}, 120_000);
