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
    queue: 'default', priority: 0, runAt: null, concurrencyKey: null, concurrencyLimit: null,
  };
}

describe('heartbeat', () => {
  it('learns the lease length from the server clock alone, whenever the claim arrives', async () => {
    const client = new ServerClient({ serverUrls: ['http://127.0.0.1:9'], agentId: 'a', token: undefined, log });
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
    const client = new ServerClient({ serverUrls: [`http://127.0.0.1:${await freePort()}`], agentId: 'a', token: undefined, log });
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

describe('heartbeat through a server restart', () => {
  /** A heartbeat endpoint that can go away (connections refused, as after a SIGKILL) and come back on its port. */
  async function restartableServer(port: number) {
    const { createServer } = await import('node:http');
    let renewals = 0;
    const server = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        renewals++;
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ leaseExpiresAt: new Date(Date.now() + 3_000).toISOString(), cancelRequested: false }));
      });
    });
    const listen = () => new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    await listen();
    return {
      renewals: () => renewals,
      down: () => {
        server.closeAllConnections();
        return new Promise<void>((resolve) => server.close(() => resolve()));
      },
      up: listen,
    };
  }

  it('renews as soon as the server is back, not a whole interval later: a restart shorter than the lease keeps it', async () => {
    // Lease 3 s, renewals every 1 s. The server dies right after a renewal and is back 2.2 s later:
    // the renewals due 1 s and 2 s after it fail, and the next one due (3 s after) would come at
    // the very deadline. The agent still had 0.8 s to renew; it must use them, not give the work up.
    const port = await freePort();
    const server = await restartableServer(port);
    const client = new ServerClient({ serverUrls: [`http://127.0.0.1:${port}`], agentId: 'a', token: undefined, log });
    const receivedAt = Date.now();
    let lost: string | undefined;
    const beat = new Heartbeat({
      client,
      agentId: 'a',
      command: claimed(receivedAt, 3_000),
      receivedAt,
      progress: () => undefined,
      onLost: (why) => (lost = why),
      onCancel: () => {},
      log,
    });
    try {
      beat.start();
      while (server.renewals() === 0) await new Promise((r) => setTimeout(r, 10));
      await server.down();
      await new Promise((r) => setTimeout(r, 2_200));
      await server.up();
      const before = server.renewals();
      // Past the deadline the last renewal before the restart gave (3 s after it was sent).
      await new Promise((r) => setTimeout(r, 1_300));
      expect(lost).toBeUndefined();
      expect(server.renewals()).toBeGreaterThan(before);
    } finally {
      beat.stop();
      await client.close();
      await server.down().catch(() => {});
    }
  });
});
