/**
 * A small SVG bar chart for the peers scenario (horizontal bars in labelled groups), written
 * beside the JSON it was drawn from. Plain SVG 1.1 text, no library: it renders on GitHub.
 */

export interface BarGroup {
  name: string;
  bars: Array<{ label: string; value: number; highlight?: boolean }>;
}

const PLOT_W = 460;
const VALUE_W = 90;
/** Width of a character of 12 px sans-serif, generously: labels are right-aligned to the bars. */
const CHAR_W = 6.8;
const BAR_H = 18;
const GAP = 6;
const GROUP_GAP = 14;
const TOP = 44;

function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function formatValue(value: number): string {
  return value >= 100 ? Math.round(value).toLocaleString('en-US') : value.toFixed(value >= 10 ? 1 : 2);
}

export function barChartSvg(title: string, unit: string, groups: BarGroup[], footnote = ''): string {
  const max = Math.max(1e-9, ...groups.flatMap((g) => g.bars.map((b) => (Number.isFinite(b.value) ? b.value : 0))));
  const labelW = Math.ceil(16 + CHAR_W * Math.max(...groups.flatMap((g) => g.bars.map((b) => b.label.length)), 10));
  const width = labelW + PLOT_W + VALUE_W;
  const parts: string[] = [];
  let y = TOP;
  for (const group of groups) {
    parts.push(`<text x="10" y="${y + 12}" font-weight="bold">${escapeXml(group.name)}</text>`);
    y += BAR_H + GAP;
    for (const bar of group.bars) {
      const value = Number.isFinite(bar.value) ? bar.value : 0;
      const w = Math.max(1, (value / max) * PLOT_W);
      const fill = bar.highlight ? '#2f6fdf' : '#9aa5b1';
      parts.push(
        `<text x="${labelW - 8}" y="${y + 13}" text-anchor="end">${escapeXml(bar.label)}</text>`,
        `<rect x="${labelW}" y="${y}" width="${w.toFixed(1)}" height="${BAR_H}" fill="${fill}"/>`,
        `<text x="${(labelW + w + 6).toFixed(1)}" y="${y + 13}">${escapeXml(Number.isFinite(bar.value) ? formatValue(bar.value) : '—')}</text>`,
      );
      y += BAR_H + GAP;
    }
    y += GROUP_GAP;
  }
  const height = y + (footnote ? 24 : 6);
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="#ffffff"/>`,
    `<text x="10" y="22" font-size="15" font-weight="bold">${escapeXml(title)} (${escapeXml(unit)})</text>`,
    ...parts,
    footnote ? `<text x="10" y="${height - 10}" fill="#555555" font-size="11">${escapeXml(footnote)}</text>` : '',
    '</svg>',
    '',
  ].join('\n');
}
