import { ApiError, get, post, streamUrl } from '../api.js';
import { clear, h } from '../dom.js';
import { dateTime, duration, time } from '../format.js';
import type { Page } from '../main.js';
import type { Command } from '../types.js';

interface HistoryEntry {
  id: number;
  kind: string;
  command: Command;
}

/**
 * One command: where it is now, its history (the per-command stream from event 0 replays every
 * change the log still holds, then goes on live until the command ends), cancel and retry.
 */
export const commandPage =
  (id: string): Page =>
  (main) => {
    let command: Command | undefined;
    const history: HistoryEntry[] = [];
    const details = h('section', { class: 'details', 'aria-label': 'Command details' });
    const progress = h('div', { class: 'progress-wrap' });
    const actions = h('div', { class: 'actions' });
    const message = h('p', { class: 'message', role: 'status', 'aria-live': 'polite' });
    const historyList = h('ol', { class: 'history', 'aria-label': 'Event history' });
    main.append(
      h('p', null, h('a', { href: '#/commands' }, '← Commands')),
      h('h1', null, 'Command ', h('span', { class: 'mono' }, id)),
      actions,
      message,
      progress,
      details,
      h('h2', null, 'History'),
      historyList,
    );

    let source: EventSource | undefined;
    let ticker = 0;

    const cancel = h('button', { type: 'button', id: 'cancel', class: 'danger', onclick: () => void act('cancel') }, 'Cancel');
    const retry = h('button', { type: 'button', id: 'retry', onclick: () => void act('retry') }, 'Retry');
    actions.append(cancel, retry);

    async function act(action: 'cancel' | 'retry'): Promise<void> {
      message.textContent = '';
      try {
        show(await post<Command>(`/commands/${id}/${action}`));
        message.textContent = action === 'cancel' ? 'Cancel requested.' : 'Retried: waiting for an agent.';
        // A retried command lives again: follow it from where the history stopped.
        if (action === 'retry') follow(history.at(-1)?.id ?? 0);
      } catch (error) {
        message.textContent = `${action} failed: ${(error as Error).message}`;
      }
    }

    function show(next: Command): void {
      if (command && command.updatedAt > next.updatedAt) return;
      command = next;
      cancel.disabled = !(next.status === 'PENDING' || (next.status === 'RUNNING' && !next.cancelRequested));
      retry.disabled = next.status !== 'FAILED';
      clear(details);
      const rows: [string, Node | string][] = [
        ['Status', h('span', { class: `status status-${next.status.toLowerCase()}`, id: 'status' }, next.status + (next.cancelRequested ? ' (cancel requested)' : ''))],
        ['Type', next.type],
        ['Payload', h('pre', null, JSON.stringify(next.payload, null, 2))],
        ['Attempts', `${next.attempts} of ${next.maxAttempts}`],
        ['Agent', next.agentId ?? '—'],
        ['Timeout', duration(next.timeoutMs)],
        ['Created', dateTime(next.createdAt)],
        ['Started', dateTime(next.startedAt)],
        ['Finished', dateTime(next.finishedAt)],
      ];
      if (next.queue !== undefined) rows.push(['Queue', next.queue]);
      if (next.priority !== undefined) rows.push(['Priority', String(next.priority)]);
      if (next.waitingFor !== undefined && next.waitingFor !== null && next.status === 'PENDING') {
        rows.push(['Waiting for', h('pre', { id: 'waiting-for' }, typeof next.waitingFor === 'string' ? next.waitingFor : JSON.stringify(next.waitingFor, null, 2))]);
      }
      if (next.status === 'PENDING' && Date.parse(next.availableAt) > Date.now()) rows.push(['Available at', dateTime(next.availableAt)]);
      if (next.result !== null) rows.push(['Result', h('pre', { id: 'result' }, JSON.stringify(next.result, null, 2))]);
      if (next.error !== null) rows.push(['Error', h('pre', { id: 'error', class: 'error' }, next.error)]);
      details.append(h('dl', null, ...rows.flatMap(([k, v]) => [h('dt', null, k), h('dd', null, v)])));
      drawProgress();
    }

    /** A running DELAY moves its bar by the clock between heartbeats; the agent's own figure wins when ahead. */
    function drawProgress(): void {
      const c = command;
      if (!c || (c.status !== 'RUNNING' && !(c.status === 'COMPLETED' && c.type === 'DELAY'))) {
        clear(progress);
        return;
      }
      let percent = c.progress?.percent ?? 0;
      if (c.status === 'COMPLETED') percent = 100;
      else if (c.type === 'DELAY' && c.startedAt) {
        const ms = Number((c.payload as { ms?: number }).ms ?? 0);
        const byClock = ms > 0 ? ((Date.now() - Date.parse(c.startedAt)) / ms) * 100 : 100;
        percent = Math.max(percent, Math.min(99, byClock));
      }
      const rounded = Math.round(percent);
      let bar = progress.querySelector('progress');
      if (!bar) {
        progress.replaceChildren(h('label', { for: 'progress' }, 'Progress '), (bar = h('progress', { id: 'progress', max: '100' })), h('span', { class: 'pct' }));
      }
      bar.value = rounded;
      progress.querySelector('.pct')!.textContent = ` ${rounded} %${c.progress?.message ? ` — ${c.progress.message}` : ''}`;
    }

    function drawHistory(): void {
      historyList.replaceChildren(
        ...history.map((e) =>
          h(
            'li',
            null,
            h('time', { datetime: e.command.updatedAt }, time(e.command.updatedAt)),
            ' ',
            h('span', { class: `status status-${e.command.status.toLowerCase()}` }, e.command.status),
            e.kind === 'progress' && e.command.progress ? ` progress ${Math.round(e.command.progress.percent)} %` : '',
            e.command.agentId ? ` on ${e.command.agentId}` : '',
            e.command.error ? ` — ${e.command.error}` : '',
            h('span', { class: 'muted' }, ` (event ${e.id})`),
          ),
        ),
      );
    }

    function follow(after: number): void {
      source?.close();
      source = new EventSource(streamUrl(`/commands/${encodeURIComponent(id)}/events`, { lastEventId: String(after) }));
      const onEvent = (kind: string) => (event: MessageEvent<string>) => {
        const eventId = Number(event.lastEventId);
        const c = JSON.parse(event.data) as Command;
        if (!history.some((e) => e.id === eventId)) {
          history.push({ id: eventId, kind, command: c });
          drawHistory();
        }
        show(c);
      };
      source.addEventListener('status', onEvent('status'));
      source.addEventListener('progress', onEvent('progress'));
      source.addEventListener('reset', () => {
        message.textContent = 'The older history of this command was pruned from the event log; showing it from now on.';
      });
      // The server ends the stream once the command has finished; the browser's reconnect gets a 204 and stops.
      source.onerror = () => {
        if (command && (command.status === 'COMPLETED' || command.status === 'FAILED')) source?.close();
      };
    }

    void (async () => {
      try {
        show(await get<Command>(`/commands/${encodeURIComponent(id)}`));
        follow(0);
        ticker = window.setInterval(drawProgress, 250);
      } catch (error) {
        message.textContent = error instanceof ApiError && error.status === 404 ? `No command ${id} on this server.` : (error as Error).message;
        actions.hidden = true;
      }
    })();

    return () => {
      source?.close();
      clearInterval(ticker);
    };
  };
