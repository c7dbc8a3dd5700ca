import { get, post } from '../api.js';
import { h } from '../dom.js';
import { ago, count } from '../format.js';
import type { Page } from '../main.js';
import { listOf, unavailable } from './unavailable.js';

const REFRESH_MS = 2000;

/** `GET /agents` (SPEC §9), refreshed every 2 s, with a drain button per active agent. */
export const agentsPage: Page = (main) => {
  const body = h('div', { class: 'agents' });
  const message = h('p', { class: 'message', role: 'status', 'aria-live': 'polite' });
  main.append(h('h1', null, 'Agents'), message, body);
  let timer = 0;

  async function refresh(): Promise<void> {
    try {
      draw(listOf(await get<unknown>('/agents')));
      timer = window.setTimeout(() => void refresh(), REFRESH_MS);
    } catch (error) {
      body.replaceChildren(unavailable(error, 'The agents list'));
    }
  }

  async function drain(id: string): Promise<void> {
    if (!confirm(`Drain agent ${id}? It stops taking commands, finishes what it runs and exits.`)) return;
    try {
      await post(`/agents/${encodeURIComponent(id)}/drain`);
      message.textContent = `Agent ${id} is draining.`;
    } catch (error) {
      message.textContent = `Drain failed: ${(error as Error).message}`;
    }
    clearTimeout(timer);
    await refresh();
  }

  function draw(agents: Record<string, unknown>[]): void {
    if (agents.length === 0) {
      body.replaceChildren(h('p', { class: 'note' }, 'No agent seen in the last hour.'));
      return;
    }
    const cellsOf = (a: Record<string, unknown>) => {
      const id = String(a['id']);
      const state = String(a['state'] ?? '');
      return [
        h('td', { class: 'mono' }, id),
        h('td', null, String(a['hostname'] ?? '—')),
        h('td', null, String(a['version'] ?? '—')),
        h('td', null, list(a['queues'])),
        h('td', null, list(a['types'])),
        h('td', { class: 'num' }, `${count(Number(a['inFlight'] ?? 0))} / ${count(Number(a['concurrency'] ?? 0))}`),
        h('td', null, typeof a['lastSeenAt'] === 'string' ? ago(a['lastSeenAt']) : '—'),
        h('td', null, h('span', { class: `state state-${state}` }, state)),
        h('td', null, state === 'active' ? h('button', { type: 'button', class: 'danger', 'aria-label': `Drain ${id}`, onclick: () => void drain(id) }, 'Drain') : ''),
      ];
    };
    body.replaceChildren(
      h(
        'div',
        { class: 'scroll-x' },
        h(
          'table',
          null,
          h('caption', null, `${agents.length} agent${agents.length === 1 ? '' : 's'}, ${agents.filter((a) => a['state'] === 'active').length} active`),
          h('thead', null, h('tr', null, ...['Agent', 'Host', 'Version', 'Queues', 'Types', 'In flight / concurrency', 'Last seen', 'State', ''].map((t) => h('th', { scope: 'col' }, t)))),
          h('tbody', null, ...agents.map((a) => h('tr', null, ...cellsOf(a)))),
        ),
      ),
    );
  }

  void refresh();
  return () => clearTimeout(timer);
};

function list(value: unknown): string {
  return Array.isArray(value) ? value.join(', ') : value === undefined ? '—' : String(value);
}
