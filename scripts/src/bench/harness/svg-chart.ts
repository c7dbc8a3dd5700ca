/**
 * A small SVG line-chart writer for bench results: one panel per quantity (each with its own
 * y axis and unit), sharing an x axis, laid out in a grid. No dependency: the charts are plain
 * SVG text that any browser or GitHub renders, so BENCHMARKS.md can link them.
 */

export interface Series {
  name: string;
  /** [x, y] pairs, in x order. Non-finite y values leave a gap. */
  points: Array<[number, number]>;
}

export interface Panel {
  title: string;
  unit: string;
  series: Series[];
  /** The y axis starts at 0 (default) rather than at the smallest value. */
  yFromZero?: boolean;
}

export interface ChartSpec {
  title: string;
  xLabel: string;
  panels: Panel[];
  /** Panels per row (default 2). */
  columns?: number;
  panelWidth?: number;
  panelHeight?: number;
}

const COLOURS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b'];
const MARGIN = { left: 64, right: 16, top: 28, bottom: 40 };

/** Round tick values spanning [min, max]: steps of 1, 2 or 5 × a power of ten. */
export function niceTicks(min: number, max: number, target = 5): number[] {
  if (!Number.isFinite(min) || !Number.isFinite(max)) return [0, 1];
  if (max === min) {
    const pad = max === 0 ? 1 : Math.abs(max) * 0.1;
    return niceTicks(min - pad, max + pad, target);
  }
  const raw = (max - min) / target;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = ([1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw) ?? 10 * power) as number;
  const ticks: number[] = [];
  const first = Math.floor(min / step);
  // Multiples of the step, not a running sum: 0.1 + 0.1 + 0.1 overshoots 0.3.
  for (let k = first; k * step <= max + step * 1e-9; k++) ticks.push(Number((k * step).toPrecision(12)));
  if ((ticks.at(-1) ?? max) < max) ticks.push(Number(((ticks.at(-1) ?? 0) + step).toPrecision(12)));
  return ticks;
}

function label(value: number): string {
  const abs = Math.abs(value);
  if (abs >= 1e6) return `${Number((value / 1e6).toPrecision(3))}M`;
  if (abs >= 1e4) return `${Number((value / 1e3).toPrecision(3))}k`;
  return String(Number(value.toPrecision(4)));
}

function escape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function panelSvg(panel: Panel, xTicks: number[], width: number, height: number, xLabel: string): string {
  const plotW = width - MARGIN.left - MARGIN.right;
  const plotH = height - MARGIN.top - MARGIN.bottom;
  const ys = panel.series.flatMap((s) => s.points.map(([, y]) => y)).filter(Number.isFinite);
  const yMin = panel.yFromZero === false ? Math.min(...ys) : Math.min(0, ...ys);
  const yTicks = niceTicks(ys.length ? yMin : 0, ys.length ? Math.max(...ys) : 1);
  const [x0, x1] = [xTicks[0] as number, xTicks.at(-1) as number];
  const [y0, y1] = [yTicks[0] as number, yTicks.at(-1) as number];
  const px = (x: number) => MARGIN.left + ((x - x0) / (x1 - x0 || 1)) * plotW;
  const py = (y: number) => MARGIN.top + plotH - ((y - y0) / (y1 - y0 || 1)) * plotH;
  const out: string[] = [];
  out.push(`<text x="${MARGIN.left}" y="18" font-weight="bold">${escape(panel.title)} (${escape(panel.unit)})</text>`);
  for (const t of yTicks) {
    out.push(`<line x1="${MARGIN.left}" x2="${MARGIN.left + plotW}" y1="${py(t).toFixed(1)}" y2="${py(t).toFixed(1)}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${MARGIN.left - 6}" y="${(py(t) + 4).toFixed(1)}" text-anchor="end">${label(t)}</text>`);
  }
  for (const t of xTicks) {
    out.push(`<line x1="${px(t).toFixed(1)}" x2="${px(t).toFixed(1)}" y1="${MARGIN.top + plotH}" y2="${MARGIN.top + plotH + 4}" stroke="#333"/>`);
    out.push(`<text x="${px(t).toFixed(1)}" y="${MARGIN.top + plotH + 16}" text-anchor="middle">${label(t)}</text>`);
  }
  out.push(
    `<rect x="${MARGIN.left}" y="${MARGIN.top}" width="${plotW}" height="${plotH}" fill="none" stroke="#333"/>`,
    `<text x="${MARGIN.left + plotW / 2}" y="${height - 6}" text-anchor="middle">${escape(xLabel)}</text>`,
  );
  panel.series.forEach((s, i) => {
    const colour = COLOURS[i % COLOURS.length] as string;
    // A gap (non-finite y) starts a new line segment.
    const runs: string[][] = [[]];
    for (const [x, y] of s.points) {
      if (Number.isFinite(y)) (runs.at(-1) as string[]).push(`${px(x).toFixed(1)},${py(y).toFixed(1)}`);
      else runs.push([]);
    }
    for (const run of runs.filter((r) => r.length > 0)) {
      out.push(`<polyline class="series" data-series="${escape(s.name)}" fill="none" stroke="${colour}" stroke-width="2" points="${run.join(' ')}"/>`);
      for (const point of run) {
        const [cx, cy] = point.split(',');
        out.push(`<circle cx="${cx}" cy="${cy}" r="2.5" fill="${colour}"/>`);
      }
    }
    if (panel.series.length > 1) {
      out.push(`<text x="${MARGIN.left + plotW - 4}" y="${MARGIN.top + 14 + i * 14}" text-anchor="end" fill="${colour}">${escape(s.name)}</text>`);
    }
  });
  return out.join('\n');
}

/** The whole chart as an SVG document. */
export function lineChartSvg(spec: ChartSpec): string {
  const columns = Math.max(1, Math.min(spec.columns ?? 2, spec.panels.length));
  const width = spec.panelWidth ?? 440;
  const height = spec.panelHeight ?? 260;
  const rows = Math.ceil(spec.panels.length / columns);
  const xs = spec.panels.flatMap((p) => p.series.flatMap((s) => s.points.map(([x]) => x))).filter(Number.isFinite);
  const xTicks = niceTicks(Math.min(0, ...xs), xs.length ? Math.max(...xs) : 1);
  const totalW = columns * width;
  const totalH = rows * height + 30;
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${totalW}" height="${totalH}" viewBox="0 0 ${totalW} ${totalH}" font-family="sans-serif" font-size="11">`,
    `<rect width="${totalW}" height="${totalH}" fill="#fff"/>`,
    `<text x="${totalW / 2}" y="20" text-anchor="middle" font-size="14" font-weight="bold">${escape(spec.title)}</text>`,
  ];
  spec.panels.forEach((panel, i) => {
    const x = (i % columns) * width;
    const y = 30 + Math.floor(i / columns) * height;
    parts.push(`<g class="panel" transform="translate(${x},${y})">`, panelSvg(panel, xTicks, width, height, spec.xLabel), '</g>');
  });
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}
