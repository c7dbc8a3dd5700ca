import { jsonDepth, MAX_RESULT_BYTES, MAX_RESULT_DEPTH } from '@agent-executor/common';
import { failed, type Outcome } from './outcome.js';

/** The error of an outcome whose result had to be cut down to be reportable. */
export const RESULT_TOO_LARGE = 'result too large';

/**
 * Whether the server will take `result`: nested at most MAX_RESULT_DEPTH deep (measured first,
 * without recursion, because JSON.stringify overflows the stack on a deep enough value) and at
 * most MAX_RESULT_BYTES as JSON. The size is the re-serialised one: a body of numbers like `1e20`
 * grows four-fold when parsed and written again.
 */
export function resultFits(result: unknown): boolean {
  if (result === undefined || result === null || typeof result !== 'object') {
    return result === undefined || Buffer.byteLength(JSON.stringify(result)) <= MAX_RESULT_BYTES;
  }
  return jsonDepth(result) <= MAX_RESULT_DEPTH && Buffer.byteLength(JSON.stringify(result)) <= MAX_RESULT_BYTES;
}

/**
 * An outcome the server will take. One whose result would not fit (SPEC §3) is cut down: a
 * COMPLETED one becomes FAILED `result too large`, not retryable (running it again would fetch
 * the same thing); a FAILED one keeps its own error and retryability (a 503 is still worth a
 * retry), with `; result too large` added. Never an outcome stuck in the outbox.
 */
export function fitOutcome(outcome: Outcome): Outcome {
  return resultFits(outcome.result) ? outcome : tooLarge(outcome, cutDown(outcome.result));
}

/**
 * For an outcome the server refused anyway (413, 400: a server with other limits): a smaller
 * one, or undefined when there is nothing left to cut. The cut-down result first, then none at
 * all, so a report refused again and again ends after two steps.
 */
export function shrinkOutcome(outcome: Outcome): Outcome | undefined {
  if (outcome.result === null || outcome.result === undefined) return undefined;
  const cut = cutDown(outcome.result);
  const smaller = cut !== null && JSON.stringify(cut) !== JSON.stringify(outcome.result) ? cut : null;
  return tooLarge(outcome, smaller);
}

function tooLarge(outcome: Outcome, result: unknown): Outcome {
  if (outcome.status === 'COMPLETED') return failed(RESULT_TOO_LARGE, false, result);
  const error = outcome.error.endsWith(RESULT_TOO_LARGE) ? outcome.error : `${outcome.error}; ${RESULT_TOO_LARGE}`;
  return failed(error, outcome.retryable, result);
}

/**
 * What is kept of a result that does not fit: an object's small fields (an HTTP_GET_JSON
 * result's status, bytesReturned, tookMs…), with its `body` dropped, its `text` shortened and
 * its `error` saying why. Null when even that does not fit or the result is not an object.
 */
function cutDown(result: unknown): unknown {
  if (result === null || typeof result !== 'object' || Array.isArray(result)) return null;
  const cut: Record<string, unknown> = { ...(result as Record<string, unknown>) };
  if ('body' in cut) cut.body = null;
  if ('error' in cut) cut.error = RESULT_TOO_LARGE;
  const text = cut.text;
  if (typeof text === 'string') {
    delete cut.text;
    if (!resultFits(cut)) return null;
    // What is left of the limit once the other fields are written, with room for `"text":,`.
    const room = MAX_RESULT_BYTES - Buffer.byteLength(JSON.stringify(cut)) - 16;
    cut.text = fitText(text, room);
  }
  return resultFits(cut) ? cut : null;
}

/**
 * The longest start of `text` (to within a fifth) whose JSON string is at most `maxJsonBytes`:
 * text of binary or control-heavy bodies can grow several-fold as JSON (`\u0000` is six bytes).
 */
export function fitText(text: string, maxJsonBytes: number): string {
  let fitted = text;
  while (fitted.length > 0 && Buffer.byteLength(JSON.stringify(fitted)) > maxJsonBytes) {
    fitted = fitted.slice(0, Math.floor(fitted.length * 0.8));
  }
  return fitted;
}
