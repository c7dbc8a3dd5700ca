import { ApiError, call, nextPage, post } from '../api.js';
import { h } from '../dom.js';
import { count, duration, time } from '../format.js';
import type { Page } from '../main.js';
import { STATUSES, TYPES, type Command } from '../types.js';
import { setText, VirtualTable, type Column } from '../virtual-table.js';

/** The most rows kept: beyond it the oldest are dropped (load them again with "Load older"). */
const MAX_ROWS = 100_000;
const PAGE_SIZE = 500;

interface Filters {
  status: string;
  type: string;
  queue: string;
  agentId: string;
  /** Created within this many minutes; 0: any time. */
  withinMin: number;
  search: string;
}

/**
 * The live table: a page of `GET /commands` under the server-side filters, then every change from
 * the page's one event stream, applied once per animation frame. A command that stops matching
 * the filters (a PENDING one that starts, under status=PENDING) leaves the table.
 */
export const commandsPage: Page = (main, stream) => {
  const params = new URLSearchParams(location.hash.split('?')[1] ?? '');
  const filters: Filters = {
    status: params.get('status') ?? '',
    type: params.get('type') ?? '',
    queue: params.get('queue') ?? '',
    agentId: params.get('agentId') ?? '',
    withinMin: Number(params.get('within') ?? 0) || 0,
    search: params.get('q') ?? '',
  };
  const rows = new Map<string, Command>();
  let order: string[] = [];
  let next: string | undefined;
  let incoming: Command[] = [];
  let buffering = true;
  let frame = 0;

  const columns: Column<string>[] = [
    {
      title: 'Command',
      width: 'minmax(9rem, 2.2fr)',
      render: (id, cell) => {
        let link = cell.firstElementChild as HTMLAnchorElement | null;
        if (!link) link = cell.appendChild(h('a', { class: 'mono' }));
        if (link.dataset['id'] !== id) {
          link.dataset['id'] = id;
          link.href = `#/commands/${id}`;
          link.textContent = id;
        }
      },
    },
    { title: 'Type', width: 'minmax(6rem, 1fr)', render: (id, cell) => setText(cell, rows.get(id)?.type ?? '') },
    {
      title: 'Status',
      width: 'minmax(7rem, 1fr)',
      render: (id, cell) => {
        const c = rows.get(id);
        const status = c?.status ?? '';
        const text = c?.status === 'RUNNING' && c.progress ? `RUNNING ${Math.round(c.progress.percent)} %` : status;
        setText(cell, text);
        if (cell.dataset['status'] !== status) {
          cell.dataset['status'] = status;
          cell.className = `status status-${status.toLowerCase()}`;
        }
      },
    },
    { title: 'Queue', width: 'minmax(5rem, 0.8fr)', wide: true, render: (id, cell) => setText(cell, rows.get(id)?.queue ?? '—') },
    { title: 'Attempts', width: '5.5rem', wide: true, render: (id, cell) => setText(cell, attemptsOf(rows.get(id))) },
    { title: 'Agent', width: 'minmax(6rem, 1fr)', wide: true, render: (id, cell) => setText(cell, rows.get(id)?.agentId ?? '—') },
    { title: 'Created', width: 'minmax(6rem, 1fr)', render: (id, cell) => setText(cell, time(rows.get(id)?.createdAt)) },
    { title: 'Took', width: '6rem', wide: true, render: (id, cell) => setText(cell, tookOf(rows.get(id))) },
  ];
  const table = new VirtualTable(columns, (id) => id, 'Commands');
  const summary = h('p', { class: 'summary', role: 'status', 'aria-live': 'polite' });
  const message = h('p', { class: 'message', role: 'status' });
  const older = h('button', { type: 'button', onclick: () => void loadOlder() }, 'Load older');
  older.hidden = true;

  const select = (name: keyof Filters, label: string, options: readonly string[]) =>
    field(label, name, h('select', { id: `f-${name}`, name }, h('option', { value: '' }, 'any'), ...options.map((o) => h('option', { value: o, selected: filters[name] === o }, o))));
  const text = (name: keyof Filters, label: string, placeholder: string) =>
    field(label, name, h('input', { id: `f-${name}`, name, type: 'search', value: String(filters[name]), placeholder, autocomplete: 'off' }));
  const within = field(
    'Created',
    'withinMin',
    h(
      'select',
      { id: 'f-withinMin', name: 'withinMin' },
      ...[
        [0, 'any time'],
        [5, 'last 5 min'],
        [60, 'last hour'],
        [1440, 'last 24 h'],
      ].map(([v, t]) => h('option', { value: String(v), selected: filters.withinMin === v }, String(t))),
    ),
  );
  const form = h(
    'form',
    { class: 'filters', role: 'search', 'aria-label': 'Filter commands' },
    text('search', 'Search id', 'command id'),
    select('status', 'Status', STATUSES),
    select('type', 'Type', TYPES),
    text('queue', 'Queue', 'any'),
    text('agentId', 'Agent', 'any'),
    within,
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const id = filters.search.trim();
    // An exact id opens the command.
    if (/^[0-9a-f-]{36}$/i.test(id)) location.hash = `#/commands/${id}`;
  });
  form.addEventListener('change', (event) => {
    const target = event.target as HTMLInputElement | HTMLSelectElement;
    const name = target.name as keyof Filters;
    const serverSide = name === 'status' || name === 'type' || name === 'queue' || name === 'agentId';
    (filters as unknown as Record<string, unknown>)[name] = name === 'withinMin' ? Number(target.value) : target.value;
    history.replaceState(null, '', `#/commands?${filterParams().toString()}`);
    if (serverSide) void reload();
    else redraw();
  });
  form.addEventListener('input', (event) => {
    const target = event.target as HTMLInputElement;
    if (target.name !== 'search') return;
    filters.search = target.value;
    redraw();
  });

  const bulk = h(
    'div',
    { class: 'bulk', role: 'group', 'aria-label': 'Bulk actions on the type, queue and agent filters' },
    h('button', { type: 'button', id: 'bulk-retry', onclick: () => void bulkAction('retry-failed', 'Retry every FAILED command') }, 'Retry all FAILED…'),
    h('button', { type: 'button', id: 'bulk-cancel', class: 'danger', onclick: () => void bulkAction('cancel-pending', 'Cancel every PENDING command') }, 'Cancel all PENDING…'),
  );

  main.append(h('h1', null, 'Commands'), form, h('div', { class: 'toolbar' }, summary, bulk), message, table.element, h('div', { class: 'more' }, older));

  const unsubscribe = stream.subscribe({
    change: (command) => {
      incoming.push(command);
      if (!buffering && frame === 0) frame = requestAnimationFrame(flush);
    },
    reset: () => void reload(),
  });

  function filterParams(): URLSearchParams {
    const p = new URLSearchParams();
    for (const key of ['status', 'type', 'queue', 'agentId'] as const) if (filters[key] !== '') p.set(key, filters[key]);
    if (filters.withinMin) p.set('within', String(filters.withinMin));
    if (filters.search) p.set('q', filters.search);
    return p;
  }

  function matchesServerFilters(c: Command): boolean {
    return (
      (filters.status === '' || c.status === filters.status) &&
      (filters.type === '' || c.type === filters.type) &&
      (filters.queue === '' || (c.queue ?? 'default') === filters.queue) &&
      (filters.agentId === '' || c.agentId === filters.agentId)
    );
  }

  /** Changes from the stream (and while loading, those that came meanwhile), once per frame. */
  function flush(): void {
    frame = 0;
    const batch = incoming;
    incoming = [];
    const added: string[] = [];
    let removed = false;
    for (const command of batch) {
      const current = rows.get(command.id);
      if (!matchesServerFilters(command)) {
        if (current && rows.delete(command.id)) removed = true;
        continue;
      }
      // A change replayed from before the page read its list must not turn a row back.
      if (current && current.updatedAt > command.updatedAt) continue;
      if (!current) added.push(command.id);
      rows.set(command.id, command);
    }
    if (removed) order = order.filter((id) => rows.has(id));
    if (added.length > 0) {
      // Ids are UUIDv7 (time-ordered): newest first is descending id order.
      added.sort(descending);
      order = order.length === 0 || added.at(-1)! > order[0]! ? added.concat(order) : [...rows.keys()].sort(descending);
    }
    if (order.length > MAX_ROWS) {
      for (const id of order.splice(MAX_ROWS)) rows.delete(id);
    }
    redraw();
  }

  function redraw(): void {
    const search = filters.search.trim().toLowerCase();
    const since = filters.withinMin ? new Date(Date.now() - filters.withinMin * 60_000).toISOString() : '';
    const shown = search === '' && since === '' ? order : order.filter((id) => (search === '' || id.includes(search)) && (since === '' || rows.get(id)!.createdAt >= since));
    table.setRows(shown);
    setText(summary, `${count(shown.length)} command${shown.length === 1 ? '' : 's'} shown${next ? ' (older ones not loaded)' : ''}`);
  }

  async function reload(): Promise<void> {
    buffering = true;
    incoming = [];
    rows.clear();
    order = [];
    const p = filterParams();
    p.delete('within');
    p.delete('q');
    p.set('limit', String(PAGE_SIZE));
    await load(`/commands?${p.toString()}`);
  }

  async function loadOlder(): Promise<void> {
    if (next) await load(next);
  }

  async function load(url: string): Promise<void> {
    setText(message, '');
    try {
      const { body, headers } = await call<Command[]>('GET', url);
      for (const command of body) {
        if (rows.has(command.id)) continue;
        rows.set(command.id, command);
        order.push(command.id);
      }
      next = nextPage(headers);
    } catch (error) {
      setText(message, error instanceof ApiError && error.status === 400 ? `The server refused the filter: ${error.message}` : String((error as Error).message));
    }
    older.hidden = next === undefined;
    buffering = false;
    flush();
  }

  async function bulkAction(path: 'retry-failed' | 'cancel-pending', what: string): Promise<void> {
    const body: Record<string, string> = {};
    if (filters.type) body['type'] = filters.type;
    if (filters.queue) body['queue'] = filters.queue;
    if (filters.agentId) body['agentId'] = filters.agentId;
    const scope = Object.entries(body).map(([k, v]) => `${k}=${v}`).join(', ') || 'all types, queues and agents';
    if (!confirm(`${what} (${scope})?`)) return;
    try {
      const { count: n } = await post<{ count: number }>(`/commands/${path}`, body);
      setText(message, `${path === 'retry-failed' ? 'Retried' : 'Canceled'} ${count(n)} command${n === 1 ? '' : 's'}.`);
    } catch (error) {
      setText(message, `Failed: ${(error as Error).message}`);
    }
  }

  // For the browser tests: the table's model (the DOM holds only the rows in view).
  debugHandle()['table'] = { ids: () => order.slice(), status: (id: string) => rows.get(id)?.status };

  void reload();
  return () => {
    delete debugHandle()['table'];
    unsubscribe();
    cancelAnimationFrame(frame);
    table.destroy();
  };
};

function debugHandle(): Record<string, unknown> {
  return (window as unknown as { dashboard: Record<string, unknown> }).dashboard;
}

function field(label: string, name: string, control: HTMLElement): HTMLElement {
  return h('div', { class: 'field' }, h('label', { for: `f-${name}` }, label), control);
}

const descending = (a: string, b: string) => (a < b ? 1 : a > b ? -1 : 0);

function attemptsOf(c: Command | undefined): string {
  return c ? `${c.attempts} / ${c.maxAttempts}` : '';
}

function tookOf(c: Command | undefined): string {
  if (!c?.startedAt) return '—';
  const end = c.finishedAt ? Date.parse(c.finishedAt) : Date.now();
  return duration(end - Date.parse(c.startedAt));
}
