import { get } from '../api.js';
import { h } from '../dom.js';
import { count, duration } from '../format.js';
import type { Page } from '../main.js';
import { listOf, unavailable } from './unavailable.js';

const REFRESH_MS = 2000;

/** `GET /queues` (SPEC §9): per queue, PENDING and RUNNING, the oldest PENDING's age, its agents. */
export const queuesPage: Page = (main) => {
  const body = h('div', { class: 'queues' });
  main.append(h('h1', null, 'Queues'), body);
  let timer = 0;

  async function refresh(): Promise<void> {
    try {
      body.replaceChildren(queuesTable(listOf(await get<unknown>('/queues'))));
      timer = window.setTimeout(() => void refresh(), REFRESH_MS);
    } catch (error) {
      body.replaceChildren(unavailable(error, 'The queues list'));
    }
  }

  void refresh();
  return () => clearTimeout(timer);
};

/**
 * The queues as a table, column by column as the server names them (the routing branch's field
 * names are not fixed yet): a name, counts, an age in ms, a list of agents.
 */
export function queuesTable(queues: Record<string, unknown>[]): HTMLElement {
  if (queues.length === 0) return h('p', { class: 'note' }, 'No queue has commands.');
  const keys = [...new Set(queues.flatMap((q) => Object.keys(q)))];
  return h(
    'div',
    { class: 'scroll-x' },
    h(
      'table',
      null,
      h('thead', null, h('tr', null, ...keys.map((k) => h('th', { scope: 'col' }, label(k))))),
      h('tbody', null, ...queues.map((q) => h('tr', null, ...keys.map((k) => h('td', { class: typeof q[k] === 'number' ? 'num' : '' }, cell(k, q[k])))))),
    ),
  );
}

function label(key: string): string {
  return key.replace(/([a-z])([A-Z])/g, '$1 $2').replace(/^./, (c) => c.toUpperCase());
}

function cell(key: string, value: unknown): string {
  if (value === null || value === undefined) return '—';
  if (Array.isArray(value)) return value.map((v) => (typeof v === 'object' && v ? String((v as { id?: unknown }).id ?? JSON.stringify(v)) : String(v))).join(', ') || '—';
  if (typeof value === 'number') return /ms$/i.test(key) ? duration(value) : /age|seconds|s$/i.test(key) && /age/i.test(key) ? `${count(value)} s` : count(value);
  return String(value);
}
