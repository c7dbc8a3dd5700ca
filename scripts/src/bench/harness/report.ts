/**
 * What a scenario hands back (named figures, with a unit and maybe a goal), how repeated runs are
 * summarised (min / median / max), printed as a table and written as JSON.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { median } from './stats.js';

export interface Goal {
  op: '<=' | '>=';
  value: number;
}

export interface Figure {
  name: string;
  value: number;
  unit: string;
  goal?: Goal;
}

export interface RunResult {
  figures: Figure[];
  /** Anything else worth keeping in the JSON (raw distributions, counts, notes). */
  details?: Record<string, unknown>;
}

export interface FigureSummary {
  name: string;
  unit: string;
  runs: number[];
  min: number;
  median: number;
  max: number;
  goal?: Goal;
  /** Judged on the median. */
  goalMet?: boolean;
}

export function summarise(runs: RunResult[]): FigureSummary[] {
  const byName = new Map<string, { unit: string; goal?: Goal; values: number[] }>();
  for (const run of runs) {
    for (const figure of run.figures) {
      const entry = byName.get(figure.name) ?? { unit: figure.unit, ...(figure.goal ? { goal: figure.goal } : {}), values: [] };
      entry.values.push(figure.value);
      byName.set(figure.name, entry);
    }
  }
  return [...byName].map(([name, { unit, goal, values }]) => {
    const mid = median(values);
    return {
      name,
      unit,
      runs: values,
      min: Math.min(...values),
      median: mid,
      max: Math.max(...values),
      ...(goal ? { goal, goalMet: goal.op === '<=' ? mid <= goal.value : mid >= goal.value } : {}),
    };
  });
}

export function machine() {
  const list = cpus();
  return {
    cores: list.length,
    cpuModel: list[0]?.model ?? 'unknown',
    node: process.version,
    platform: `${process.platform} ${release()}`,
    totalMemGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
  };
}

export function formatNumber(value: number): string {
  if (!Number.isFinite(value)) return String(value);
  const abs = Math.abs(value);
  if (abs >= 1000) return Math.round(value).toLocaleString('en-US');
  if (abs >= 100) return value.toFixed(0);
  if (abs >= 10) return value.toFixed(1);
  if (abs >= 1) return value.toFixed(2);
  return value.toFixed(3);
}

export function printTable(title: string, rows: FigureSummary[]): void {
  const header = ['figure', 'unit', 'min', 'median', 'max', 'runs', 'goal'];
  const body = rows.map((r) => [
    r.name,
    r.unit,
    formatNumber(r.min),
    formatNumber(r.median),
    formatNumber(r.max),
    String(r.runs.length),
    r.goal ? `${r.goal.op} ${formatNumber(r.goal.value)} ${r.goalMet ? 'met' : 'NOT met'}` : '',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((row) => (row[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i >= 2 && i <= 5 ? c.padStart(widths[i] ?? 0) : c.padEnd(widths[i] ?? 0))).join('  ');
  console.log(`\n${title}`);
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const row of body) console.log(line(row));
}

/** Writes `<outDir>/<scenario>-<timestamp>.json` and answers its path. */
export function writeJson(outDir: string, scenario: string, content: unknown): string {
  mkdirSync(outDir, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const path = join(outDir, `${scenario}-${stamp}.json`);
  writeFileSync(path, `${JSON.stringify(content, null, 2)}\n`);
  return path;
}
