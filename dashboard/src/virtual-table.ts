import { h } from './dom.js';

export interface Column<T> {
  title: string;
  /** CSS grid track, e.g. `minmax(8rem, 2fr)`. */
  width: string;
  /** Hidden in a narrow window. */
  wide?: boolean;
  render: (row: T, cell: HTMLElement) => void;
}

const ROW_HEIGHT = 34;
const OVERSCAN = 8;

/**
 * A long list drawn as a window: only the rows in view (plus a few) exist in the DOM, reused as
 * the list scrolls or changes, so 10 000 or 100 000 rows cost what 30 do. Redrawn at most once
 * per animation frame, however many changes arrive in between.
 */
export class VirtualTable<T> {
  readonly element: HTMLElement;
  private readonly viewport: HTMLElement;
  private readonly spacer: HTMLElement;
  private readonly body: HTMLElement;
  private rows: readonly T[] = [];
  private pool: HTMLElement[] = [];
  private frame = 0;

  constructor(
    private readonly columns: readonly Column<T>[],
    private readonly key: (row: T) => string,
    label: string,
  ) {
    const template = columns.map((c) => c.width).join(' ');
    const header = h(
      'div',
      { class: 'vt-row vt-head', role: 'row', style: `grid-template-columns: ${template}` },
      ...columns.map((c) => h('span', { role: 'columnheader', class: c.wide ? 'wide' : '' }, c.title)),
    );
    this.body = h('div', { class: 'vt-body', role: 'rowgroup' });
    this.spacer = h('div', { class: 'vt-spacer' }, this.body);
    this.viewport = h('div', { class: 'vt-viewport', tabindex: '0', 'aria-label': `${label} (scrollable)` }, this.spacer);
    this.element = h('div', { class: 'vt', role: 'table', 'aria-label': label, style: `--vt-columns: ${template}` }, header, this.viewport);
    this.viewport.addEventListener('scroll', () => this.schedule(), { passive: true });
    new ResizeObserver(() => this.schedule()).observe(this.viewport);
  }

  /** The rows to show; drawn at the next animation frame. */
  setRows(rows: readonly T[]): void {
    this.rows = rows;
    this.schedule();
  }

  schedule(): void {
    if (this.frame === 0) this.frame = requestAnimationFrame(() => this.draw());
  }

  destroy(): void {
    cancelAnimationFrame(this.frame);
  }

  private draw(): void {
    this.frame = 0;
    this.spacer.style.height = `${this.rows.length * ROW_HEIGHT}px`;
    const first = Math.max(0, Math.floor(this.viewport.scrollTop / ROW_HEIGHT) - OVERSCAN);
    const visible = Math.ceil((this.viewport.clientHeight || 600) / ROW_HEIGHT) + 2 * OVERSCAN;
    const last = Math.min(this.rows.length, first + visible);
    this.body.style.transform = `translateY(${first * ROW_HEIGHT}px)`;
    while (this.pool.length < last - first) {
      const row = h('div', { class: 'vt-row', role: 'row' }, ...this.columns.map((c) => h('span', { role: 'cell', class: c.wide ? 'wide' : '' })));
      this.pool.push(row);
      this.body.append(row);
    }
    for (let i = 0; i < this.pool.length; i++) {
      const element = this.pool[i]!;
      const row = this.rows[first + i];
      if (row === undefined || first + i >= last) {
        element.hidden = true;
        continue;
      }
      element.hidden = false;
      element.dataset['key'] = this.key(row);
      this.columns.forEach((column, c) => column.render(row, element.children[c] as HTMLElement));
    }
  }
}

/** Sets a cell's text only when it changed: most cells stay the same from frame to frame. */
export function setText(cell: HTMLElement, text: string): void {
  if (cell.textContent !== text) cell.textContent = text;
}
