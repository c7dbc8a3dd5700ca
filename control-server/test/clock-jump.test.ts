/**
 * SPEC §7: a forward step of the server's wall clock does not expire live leases at once. The
 * server's clock is injected: its wall clock is real time plus an offset the test steps, its
 * monotonic clock is the real one, as when NTP steps the system time.
 */
import { performance } from 'node:perf_hooks';
import { describe, expect, test } from 'vitest';
import type { ClaimedCommand } from '@agent-executor/common';
import { ClockJumpDetector } from '../src/clock.js';
import type { StoredEvent } from '../src/store/store.js';
import { waitFor } from '../../test-support/processes.js';
import { delay, SteppedClock, submit, useApp } from './helpers.js';

const { build } = useApp();


const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('ClockJumpDetector', () => {
  test('reports a forward step of the wall clock, not real time passing, small drift or a backward step', async () => {
    const clock = new SteppedClock();
    const detector = new ClockJumpDetector(clock, 500);
    await sleep(50);
    expect(detector.forwardJump(), 'time passing on both clocks').toBe(0);
    clock.step(200);
    expect(detector.forwardJump(), 'a step under the threshold').toBe(0);
    clock.step(-600_000);
    expect(detector.forwardJump(), 'a backward step').toBe(0);
    clock.step(600_000);
    const jump = detector.forwardJump();
    expect(jump).toBeGreaterThan(599_000);
    expect(jump).toBeLessThan(601_000);
    expect(detector.forwardJump(), 'counted once').toBe(0);
  });
});

describe('a forward step of the wall clock', () => {
  test('expires no lease until LEASE_MS after it was noticed; leases renewed meanwhile survive', async () => {
    const leaseMs = 2000;
    const clock = new SteppedClock();
    const { app, store } = await build({ env: { LEASE_MS: String(leaseMs) }, clock });
    const expired: Array<{ id: string; at: number }> = [];
    store.events.on('event', (event: StoredEvent) => {
      if (event.transition === 'expire') expired.push({ id: event.command.id, at: performance.now() });
    });
    for (let i = 0; i < 3; i++) await submit(app, delay(60_000));
    const claim = await app.inject({ method: 'GET', url: '/commands/next-batch?agentId=agent-1&max=3' });
    expect(claim.statusCode).toBe(200);
    const [renewed, ...abandoned] = claim.json<{ commands: ClaimedCommand[] }>().commands;
    if (!renewed || abandoned.length !== 2) throw new Error('expected 3 claimed commands');
    const claimedAt = performance.now();

    await sleep(200);
    clock.step(10 * 60_000);
    const steppedAt = performance.now();

    // Past the leases' own end (2 s after the claim, in real time) and past the start-up grace:
    // without the grace every lease would have expired here.
    await sleep(claimedAt + 1.5 * leaseMs - performance.now());
    expect(expired, 'leases expired by the step').toEqual([]);
    for (const command of [renewed, ...abandoned]) expect((await store.get(command.id))?.status).toBe('RUNNING');

    const beat = await app.inject({
      method: 'POST',
      url: `/commands/${renewed.id}/heartbeat`,
      payload: { agentId: 'agent-1', leaseId: renewed.leaseId },
    });
    expect(beat.statusCode, beat.body).toBe(200);

    // The two that nobody renewed expire once the grace ends, the renewed one does not.
    await waitFor(() => expired.length === 2, { what: 'the abandoned leases to expire', timeoutMs: 3 * leaseMs });
    expect(expired.map((e) => e.id).sort()).toEqual(abandoned.map((c) => c.id).sort());
    for (const { at } of expired) expect(at - steppedAt).toBeGreaterThanOrEqual(leaseMs);
    expect((await store.get(renewed.id))?.status).toBe('RUNNING');
  });
});
