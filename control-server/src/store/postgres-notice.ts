/**
 * The notification a committed write sends (LISTEN/NOTIFY, one per transaction that logged
 * events, at its commit or just after it: postgres-group-commit.ts): who wrote, the last event
 * id, whether work appeared, and — when they fit in a
 * notification — the events themselves, so that the other replicas hand them on without reading
 * them back from the log (a query per notification per replica, before).
 *
 * Payload: `<replica> <lastSeq> <available>[ <header>\n<data><data>…]`. The header is a JSON array
 * of `[kind, transition, createdAt, length]`, one per event in id order (the last one is
 * `lastSeq`); `length` is the length (in UTF-16 units, as JavaScript counts) of that event's data,
 * the command as JSON, which follow the header back to back. PostgreSQL delivers notifications
 * in commit order, and ids are in commit order, so a replica that has delivered every event
 * before the first one carried can hand these on as they are; otherwise it reads the gap first.
 * Events that do not fit (PostgreSQL's limit is 8000 bytes) are read from the log, as every
 * event was before. A replica of an older version reads the first three fields only.
 */
import type { NewEvent } from './event-log.js';
import type { StoredEvent, Transition } from './store.js';

export interface Notice {
  replica: string;
  lastSeq: number;
  available: boolean;
  /** The header and data of the events, unparsed (see carriedEvents); undefined: read the log. */
  events: string | undefined;
}

/** The payload's limit is 8000 bytes: room for the first three fields (a UUID and two numbers). */
const MAX_EVENTS_BYTES = 7_900;

/** The events part of the payload, or null when it would not fit. */
export function noticeEvents(events: readonly NewEvent[]): string | null {
  if (events.length === 0) return null;
  // A batch too large (most of a 100-command submit's) is known before its text is built.
  let length = 0;
  for (const e of events) length += e.data.length;
  if (length > MAX_EVENTS_BYTES) return null;
  const header = JSON.stringify(events.map((e) => [e.kind, e.transition, e.createdAt, e.data.length]));
  const text = `${header}\n${events.map((e) => e.data).join('')}`;
  // Bytes exceed UTF-16 units only for non-ASCII text: count them only when it could matter.
  if (text.length > MAX_EVENTS_BYTES || (text.length * 3 > MAX_EVENTS_BYTES && Buffer.byteLength(text) > MAX_EVENTS_BYTES)) {
    return null;
  }
  return text;
}

/**
 * The payload, as the statement that logs events builds it at commit (postgres-statements.ts:
 * logEvents), for a notification sent after the commit instead.
 */
export function formatNotice(replica: string, lastSeq: number, available: boolean, events: string | null): string {
  return `${replica} ${lastSeq} ${available ? '1' : '0'}${events === null ? '' : ` ${events}`}`;
}

export function parseNotice(payload: string | undefined): Notice | undefined {
  if (payload === undefined) return undefined;
  const fields = /^(\S+) (\d+) ([01])(?: ([^]*))?$/.exec(payload);
  if (!fields) return undefined;
  const lastSeq = Number(fields[2]);
  if (!Number.isSafeInteger(lastSeq)) return undefined;
  return { replica: fields[1]!, lastSeq, available: fields[3] === '1', events: fields[4] };
}

type HeaderEntry = [StoredEvent['kind'], Transition, number, number];

/** The events a notice carries, in id order; undefined when it carries none or they do not parse. */
export function carriedEvents(notice: Notice): StoredEvent[] | undefined {
  const text = notice.events;
  if (text === undefined) return undefined;
  try {
    const cut = text.indexOf('\n');
    const header = JSON.parse(text.slice(0, cut)) as HeaderEntry[];
    if (!Array.isArray(header) || header.length === 0) return undefined;
    const first = notice.lastSeq - header.length + 1;
    let at = cut + 1;
    const events = header.map(([kind, transition, createdAt, length], i): StoredEvent => {
      const data = text.slice(at, (at += length));
      return { seq: first + i, kind, transition, command: JSON.parse(data) as StoredEvent['command'], data, createdAt };
    });
    return at === text.length ? events : undefined;
  } catch {
    return undefined;
  }
}
