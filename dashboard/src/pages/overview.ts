import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { ApiError, get } from '../api.js';
import { h } from '../dom.js';
import { count, duration, rate } from '../format.js';
import type { Page } from '../main.js';
import { STATUSES, type Stats } from '../types.js';
import { listOf, unavailable } from './unavailable.js';
import { queuesTable } from './queues.js';

const WINDOW_S = 120;
const REFRESH_MS = 2000;
/** Dispatch latency is summed over this many recent seconds. */
const LATENCY_WINDOW_S = 10;

/**
 * Counts by status (`GET /stats`, every 2 s), and from the live stream: completed and failed per
 * second over the last two minutes, and dispatch latency (from available to claimed). Queue
 * depth and agents online come from routing's `/queues` and `/agents` where the server has them.
 */
export const overviewPage: Page = (main, stream) => {
  const cards = h('div', { class: 'cards' });
  const latency = h('p', { class: 'latency', id: 'latency' }, 'Dispatch latency: waiting for a command to start…');
  const chartBox = h('div', { class: 'chart', role: 'img', 'aria-label': 'Completed and failed per second, last two minutes' });
  const queues = h('div', null);
  const agents = h('p', { id: 'agents-online' });
  main.append(
    h('h1', null, 'Overview'),
    cards,
    h('h2', null, 'Throughput'),
    chartBox,
    latency,
    h('h2', null, 'Queues'),
    queues,
    h('h2', null, 'Agents'),
    agents,
  );

  // Per-second buckets, keyed by whole epoch seconds.
  const completed = new Map<number, number>();
  const failed = new Map<number, number>();
  const latencies: { at: number; ms: number }[] = [];
  const unsubscribe = stream.subscribe({
    change: (command, kind) => {
      if (kind !== 'status') return;
      const second = Math.floor(Date.now() / 1000);
      if (command.status === 'COMPLETED') completed.set(second, (completed.get(second) ?? 0) + 1);
      else if (command.status === 'FAILED') failed.set(second, (failed.get(second) ?? 0) + 1);
      else if (command.status === 'RUNNING' && command.startedAt && command.updatedAt === command.startedAt) {
        latencies.push({ at: Date.now(), ms: Math.max(0, Date.parse(command.startedAt) - Date.parse(command.availableAt)) });
      }
    },
  });

  const styles = getComputedStyle(document.documentElement);
  const plot = new uPlot(
    {
      width: Math.max(280, chartBox.clientWidth || 600),
      height: 220,
      legend: { live: false },
      scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, Math.max(5, max)] } },
      axes: [
        { stroke: styles.getPropertyValue('--fg'), grid: { stroke: styles.getPropertyValue('--grid') } },
        { stroke: styles.getPropertyValue('--fg'), grid: { stroke: styles.getPropertyValue('--grid') }, label: 'per second', size: 60 },
      ],
      series: [
        {},
        { label: 'completed /s', stroke: styles.getPropertyValue('--ok'), width: 2 },
        { label: 'failed /s', stroke: styles.getPropertyValue('--bad'), width: 2 },
      ],
    },
    [[], [], []],
    chartBox,
  );
  const resize = new ResizeObserver(() => plot.setSize({ width: Math.max(280, chartBox.clientWidth), height: 220 }));
  resize.observe(chartBox);

  function drawChart(): void {
    const now = Math.floor(Date.now() / 1000);
    const xs: number[] = [];
    const ok: number[] = [];
    const bad: number[] = [];
    // The current second is still filling: the chart ends at the last whole one.
    for (let s = now - WINDOW_S; s < now; s++) {
      xs.push(s);
      ok.push(completed.get(s) ?? 0);
      bad.push(failed.get(s) ?? 0);
    }
    for (const map of [completed, failed]) for (const key of map.keys()) if (key < now - WINDOW_S) map.delete(key);
    plot.setData([xs, ok, bad]);
    const last = (values: number[]) => values.slice(-5).reduce((a, b) => a + b, 0) / 5;
    cards.querySelector('#rate-completed')?.replaceChildren(rate(last(ok)));
    cards.querySelector('#rate-failed')?.replaceChildren(rate(last(bad)));
    while (latencies.length > 0 && latencies[0]!.at < Date.now() - LATENCY_WINDOW_S * 1000) latencies.shift();
    if (latencies.length > 0) {
      const sorted = latencies.map((l) => l.ms).sort((a, b) => a - b);
      const pick = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
      latency.textContent = `Dispatch latency (available → claimed), last ${LATENCY_WINDOW_S} s: median ${duration(pick(0.5))}, p95 ${duration(pick(0.95))}, over ${count(sorted.length)} starts`;
    }
  }

  function drawCards(stats: Stats): void {
    cards.replaceChildren(
      ...STATUSES.map((s) =>
        h('div', { class: `card status-${s.toLowerCase()}` }, h('span', { class: 'card-label' }, s), h('span', { class: 'card-value', id: `count-${s}` }, count(stats.counts[s]))),
      ),
      h('div', { class: 'card' }, h('span', { class: 'card-label' }, 'Completed'), h('span', { class: 'card-value', id: 'rate-completed' }, '—')),
      h('div', { class: 'card' }, h('span', { class: 'card-label' }, 'Failed'), h('span', { class: 'card-value', id: 'rate-failed' }, '—')),
    );
  }

  let timer = 0;
  let routing = true;
  async function refresh(): Promise<void> {
    try {
      drawCards(await get<Stats>('/stats'));
    } catch (error) {
      cards.replaceChildren(h('p', { class: 'error' }, (error as Error).message));
    }
    if (routing) {
      try {
        queues.replaceChildren(queuesTable(listOf(await get<unknown>('/queues'))));
        const list = listOf(await get<unknown>('/agents'));
        const active = list.filter((a) => a['state'] === 'active').length;
        agents.textContent = `${count(active)} agent${active === 1 ? '' : 's'} online (${count(list.length)} seen in the last hour)`;
      } catch (error) {
        // Without routing there is nothing to poll for: say so once.
        if (error instanceof ApiError && error.status === 404) routing = false;
        queues.replaceChildren(unavailable(error, 'Queue depth'));
        agents.replaceChildren(unavailable(error, 'The agents list'));
      }
    }
    drawChart();
    timer = window.setTimeout(() => void refresh(), REFRESH_MS);
  }
  const ticker = window.setInterval(drawChart, 1000);
  void refresh();

  return () => {
    unsubscribe();
    clearTimeout(timer);
    clearInterval(ticker);
    resize.disconnect();
    plot.destroy();
  };
};
