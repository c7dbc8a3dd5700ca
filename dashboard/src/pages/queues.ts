import { get } from '../api.js';
import { h } from '../dom.js';
import { count, duration } from '../format.js';
import type { QueueView } from '@agent-executor/common';
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

/** The queues as a table (`QueueView` of SPEC §9): name, counts, the oldest PENDING's age, agents. */
export function queuesTable(queues: Record<string, unknown>[]): HTMLElement {
  if (queues.length === 0) return h('p', { class: 'note' }, 'No queue has commands.');
  const views = queues as unknown as QueueView[];
  const th = (text: string, numeric = false) => h('th', { scope: 'col', class: numeric ? 'num' : '' }, text);
  return h(
    'div',
    { class: 'scroll-x' },
    h(
      'table',
      null,
      h('thead', null, h('tr', null, th('Queue'), th('Pending', true), th('Running', true), th('Oldest pending', true), th('Agents serving it'))),
      h(
        'tbody',
        null,
        ...views.map((q) =>
          h(
            'tr',
            null,
            h('td', null, q.queue),
            h('td', { class: 'num' }, count(q.pending)),
            h('td', { class: 'num' }, count(q.running)),
            h('td', { class: 'num' }, q.oldestPendingAgeMs === null ? '—' : duration(q.oldestPendingAgeMs)),
            h('td', null, q.agents.join(', ') || 'none'),
          ),
        ),
      ),
    ),
  );
}
