import { setTimeout as sleep } from 'node:timers/promises';
import { DelayPayload } from '@agent-executor/common';
import type { Executor } from './index.js';
import { parsePayload } from './payload.js';

export interface DelayResult {
  ok: true;
  tookMs: number;
}

/** Waits `ms`. The wait ends early, with the signal's reason, when the attempt is aborted. */
export const delay: Executor<DelayResult> = async (payload, context) => {
  const { trackProgress } = context;
  const { ms } = parsePayload(DelayPayload, payload);
  const started = performance.now();
  trackProgress(() => {
    const elapsed = Math.min(ms, Math.round(performance.now() - started));
    return { percent: ms === 0 ? 100 : Math.floor((elapsed / ms) * 100), message: `${elapsed} of ${ms} ms` };
  });
  // A 0 ms timer still waits for the next timers phase (about 1 ms): DELAY 0 needs no wait at all.
  if (ms > 0) await sleep(ms, undefined, { signal: context.signal });
  else if (context.aborted ?? true) context.signal.throwIfAborted();
  return { ok: true, tookMs: Math.round(performance.now() - started) };
};
