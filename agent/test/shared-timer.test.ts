/** The agent's one timer for attempt deadlines: each callback at its time, cancelled ones never. */
import { describe, expect, it } from 'vitest';
import { SharedTimer } from '../src/shared-timer.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('shared timer', () => {
  it('fires each entry once, not before its time, in time order, whatever order they were added in', async () => {
    const timer = new SharedTimer();
    const start = performance.now();
    const fired: Array<{ name: string; at: number }> = [];
    const at = (name: string) => () => fired.push({ name, at: performance.now() - start });
    timer.after(60, at('60'));
    timer.after(20, at('20'));
    timer.after(40, at('40'));
    await sleep(150);
    expect(fired.map((f) => f.name)).toEqual(['20', '40', '60']);
    for (const f of fired) expect(f.at).toBeGreaterThanOrEqual(Number(f.name));
    expect(timer.size).toBe(0);
  });

  it('a cancelled entry never fires, and the others still do', async () => {
    const timer = new SharedTimer();
    const fired: string[] = [];
    const first = timer.after(10, () => fired.push('first'));
    timer.after(30, () => fired.push('second'));
    timer.cancel(first);
    timer.cancel(undefined);
    await sleep(80);
    expect(fired).toEqual(['second']);
  });

  it('an entry added by a callback (a heartbeat re-arming itself) runs too; one that throws does not stop the others', async () => {
    const timer = new SharedTimer();
    const fired: string[] = [];
    const errors: unknown[] = [];
    const onError = (err: unknown) => errors.push(err);
    process.on('uncaughtException', onError);
    try {
      timer.after(10, () => {
        fired.push('tick');
        timer.after(10, () => fired.push('tock'));
      });
      timer.after(10, () => {
        throw new Error('a bug in one callback');
      });
      timer.after(10, () => fired.push('other'));
      await sleep(80);
    } finally {
      process.off('uncaughtException', onError);
    }
    expect(fired).toEqual(['tick', 'other', 'tock']);
    expect(errors).toHaveLength(1);
  });
});
