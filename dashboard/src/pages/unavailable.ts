import { ApiError } from '../api.js';
import { h } from '../dom.js';

/** What a page shows when the server lacks its route: routing (SPEC §9) is not on every server. */
export function unavailable(error: unknown, what: string): HTMLElement {
  if (error instanceof ApiError && error.status === 404) {
    return h('p', { class: 'note', role: 'note' }, `${what} is not available on this server (it answers 404: it has no routing, SPEC §9).`);
  }
  return h('p', { class: 'error', role: 'alert' }, `Could not load ${what.toLowerCase()}: ${(error as Error).message}`);
}

/** The array in an answer: a bare array, or the first array property of an object. */
export function listOf(answer: unknown): Record<string, unknown>[] {
  if (Array.isArray(answer)) return answer as Record<string, unknown>[];
  if (answer && typeof answer === 'object') {
    const found = Object.values(answer).find(Array.isArray);
    if (found) return found as Record<string, unknown>[];
  }
  return [];
}
