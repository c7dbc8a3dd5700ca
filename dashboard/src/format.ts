/** Times in the browser's own zone; numbers with their units. */
const timeFormat = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' });
const dateTimeFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'short', timeStyle: 'medium' });
const numberFormat = new Intl.NumberFormat();

export function time(iso: string | null | undefined): string {
  if (!iso) return '—';
  const date = new Date(iso);
  // Today: the time alone; earlier: the date too.
  return date.toDateString() === new Date().toDateString() ? timeFormat.format(date) : dateTimeFormat.format(date);
}

export function dateTime(iso: string | null | undefined): string {
  return iso ? dateTimeFormat.format(new Date(iso)) : '—';
}

export function count(n: number): string {
  return numberFormat.format(n);
}

export function duration(ms: number): string {
  if (!Number.isFinite(ms)) return '—';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
  if (ms < 3_600_000) return `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;
  return `${(ms / 3_600_000).toFixed(1)} h`;
}

export function rate(perSecond: number): string {
  return `${perSecond < 10 ? perSecond.toFixed(1) : count(Math.round(perSecond))} /s`;
}

export function ago(iso: string | null | undefined): string {
  if (!iso) return '—';
  return `${duration(Math.max(0, Date.now() - Date.parse(iso)))} ago`;
}
