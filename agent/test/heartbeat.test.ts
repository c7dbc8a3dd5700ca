import type { ClaimedCommand } from '@agent-executor/common';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { freePort } from '../../test-support/processes.js';
import { Heartbeat } from '../src/heartbeat.js';
import { ServerClient } from '../src/server-client.js';

const log = pino({ level: 'silent' });

function claimed(startedAt: number, leaseMs: number): ClaimedCommand {
  const iso = (ms: number) => new Date(ms).toISOString();
  return {
    id: 'c1',
    type: 'DELAY',
    payload: { ms: 1 },
    status: 'RUNNING',
    result: null,
    error: null,
    agentId: 'a',
    attempts: 1,
    maxAttempts: 3,
    timeoutMs: 60_000,
    leaseId: 'L1',
    leaseExpiresAt: iso(startedAt + leaseMs),
    availableAt: iso(startedAt),
    cancelRequested: false,
    progress: null,
    createdAt: iso(startedAt),
    updatedAt: iso(startedAt),
    startedAt: iso(startedAt),
    finishedAt: null,
  };
}

describe('heartbeat', () => {
  it('learns the lease length from the server clock alone, whenever the claim arrives', async () => {
    const client = new ServerClient({ serverUrl: 'http://127.0.0.1:9', agentId: 'a', token: undefined, log });
    // The claim was made an hour ago by our clock: a skewed clock or a slow answer changes nothing.
    const beat = new Heartbeat({
      client,
      agentId: 'a',
      command: claimed(Date.now() - 3_600_000, 9_000),
      receivedAt: Date.now(),
      progress: () => undefined,
      onLost: () => {},
      onCancel: () => {},
      log,
    });
    expect(beat.leaseMs).toBe(9_000);
    expect(beat.intervalMs).toBe(3_000);
    await client.close();
  });

  it('gives the work up when no renewal succeeds within one lease (server unreachable)', async () => {
    const client = new ServerClient({ serverUrl: `http://127.0.0.1:${await freePort()}`, agentId: 'a', token: undefined, log });
    const receivedAt = Date.now();
    const lost = await new Promise<{ why: string; after: number }>((resolve) => {
      const beat = new Heartbeat({
        client,
        agentId: 'a',
        command: claimed(receivedAt, 300),
        receivedAt,
        progress: () => undefined,
        onLost: (why) => resolve({ why, after: Date.now() - receivedAt }),
        onCancel: () => {},
        log,
      });
      beat.start();
    });
    expect(lost.why).toBe('not renewed within 300 ms');
    expect(lost.after).toBeGreaterThanOrEqual(295);
    await client.close();
  });
});
