/** The peers scenario's headline: one table of medians, and two SVG charts beside the JSON. */
import { writeFileSync } from 'node:fs';
import { formatNumber, type FigureSummary, type RunResult } from '../harness/report.js';
import { barChartSvg, type BarGroup } from '../scenarios/peers-chart.js';
import { cpu, dispatch, FSYNC, LABEL, MODE_LABEL, rate, ratio, type Row } from './rows.js';

/** The headline table: one row per system and mode, medians over the runs. */
export function printHeadline(summary: FigureSummary[], runs: RunResult[], jsonFile: string): void {
  const median = (name: string) => summary.find((s) => s.name === name)?.median;
  const cell = (value: number | undefined, suffix = '') => (value === undefined ? '—' : `${formatNumber(value)}${suffix}`);
  const header = ['system', 'mode', 'completed/s', 'CPU µs/job server + workers', 'dispatch p50 / p99 ms', 'ours / BullMQ', 'ours / graphile-worker'];
  const body: string[][] = [];
  const throughputGroups: BarGroup[] = [
    { name: 'one job per add', bars: [] },
    { name: 'batched adds', bars: [] },
  ];
  const latencyGroups: BarGroup[] = [
    { name: 'dispatch p50', bars: [] },
    { name: 'dispatch p99', bars: [] },
  ];
  for (const row of Object.keys(LABEL) as Row[]) {
    if (median(rate(row, 'single')) === undefined) continue;
    const ours = row === 'full' || row === 'normal';
    for (const mode of ['single', 'batch'] as const) {
      const completed = median(rate(row, mode));
      body.push([
        LABEL[row],
        MODE_LABEL[row][mode],
        cell(completed),
        `${cell(median(cpu(row, mode, 'server')))} + ${cell(median(cpu(row, mode, 'workers')))}`,
        `${cell(median(dispatch(row, 'p50')))} / ${cell(median(dispatch(row, 'p99')))}`,
        ours ? cell(median(ratio(row, 'bullmq', mode)), '×') : '',
        ours ? cell(median(ratio(row, 'graphile', mode)), '×') : '',
      ]);
      throughputGroups[mode === 'single' ? 0 : 1]?.bars.push({ label: `${LABEL[row]}, ${MODE_LABEL[row][mode]}`, value: completed ?? Number.NaN, highlight: ours });
    }
    latencyGroups[0]?.bars.push({ label: LABEL[row], value: median(dispatch(row, 'p50')) ?? Number.NaN, highlight: ours });
    latencyGroups[1]?.bars.push({ label: LABEL[row], value: median(dispatch(row, 'p99')) ?? Number.NaN, highlight: ours });
  }
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (i >= 2 ? c.padStart(widths[i] ?? 0) : c.padEnd(widths[i] ?? 0))).join('  ');
  const versions = runs.map((r) => [r.details?.bullmqVersions, r.details?.graphileVersions].filter(Boolean).join('; '))[0] ?? '';
  const fsync = `write 4 KiB + fsync on this disk: p50 ${cell(median(FSYNC.p50))} ms, p99 ${cell(median(FSYNC.p99))} ms`;
  console.log(`\npeers — medians over ${runs.length} run(s); ratios are same-run ratios, then their median`);
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of body) console.log(line(r));
  console.log(`${fsync}${versions ? `\n${versions}` : ''}`);
  console.log(`load average (1 min) at the start / end of each run: ${loadAverages(runs)}`);
  const skipped = new Set(runs.flatMap((r) => (r.details?.skipped as string[] | undefined) ?? []));
  for (const why of skipped) console.log(`skipped: ${why}`);

  const base = jsonFile.replace(/\.json$/, '');
  const note = `median of ${runs.length} run(s); 2 workers × 8; ${fsync}; load average ${loadAverages(runs)}`;
  writeFileSync(`${base}-throughput.svg`, barChartSvg('Completed jobs per second, ours vs peers', 'jobs/s', throughputGroups, note));
  writeFileSync(`${base}-dispatch.svg`, barChartSvg('Dispatch latency, one job at a time', 'ms', latencyGroups, note));
  console.log(`wrote ${base}-throughput.svg and ${base}-dispatch.svg`);
}

/** main.ts records the load average beside each run: on a shared machine it is part of the figure. */
function loadAverages(runs: RunResult[]): string {
  return runs
    .map((r) => (r as RunResult & { loadAverage?: { before: number[]; after: number[] } }).loadAverage)
    .map((l) => (l ? `${(l.before[0] ?? 0).toFixed(1)} / ${(l.after[0] ?? 0).toFixed(1)}` : '?'))
    .join(', ');
}
