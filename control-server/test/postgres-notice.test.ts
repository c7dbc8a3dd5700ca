/** The notification format of the PostgreSQL store (postgres-notice.ts), without a database. */
import { describe, expect, test } from 'vitest';
import type { NewEvent } from '../src/store/event-log.js';
import { carriedEvents, noticeEvents, parseNotice } from '../src/store/postgres-notice.js';

const event = (id: string, extra = ''): NewEvent => {
  const command = { id, status: 'PENDING', note: extra } as unknown as NewEvent['command'];
  return { commandId: id, kind: 'status', transition: 'submit', command, data: JSON.stringify(command), createdAt: 1_700_000_000_000 };
};

describe('notifications', () => {
  test('events round-trip: ids counted back from the last one, data and command as written', () => {
    const events = [event('a'), event('b', 'é€😀'), event('c')];
    const notice = parseNotice(`replica-1 42 1 ${noticeEvents(events)!}`)!;
    expect(notice).toMatchObject({ replica: 'replica-1', lastSeq: 42, available: true });
    const carried = carriedEvents(notice)!;
    expect(carried.map((e) => e.seq)).toEqual([40, 41, 42]);
    expect(carried.map((e) => e.data)).toEqual(events.map((e) => e.data));
    expect(carried.map((e) => e.command)).toEqual(events.map((e) => e.command));
    expect(carried[1]).toMatchObject({ kind: 'status', transition: 'submit', createdAt: 1_700_000_000_000 });
  });

  test('events over 7 900 bytes are not carried (PostgreSQL refuses payloads of 8000); bytes, not characters, count', () => {
    expect(noticeEvents([event('a', 'x'.repeat(7_000))])).not.toBeNull();
    expect(noticeEvents([event('a', 'x'.repeat(8_000))])).toBeNull();
    // 3 000 characters of 3 bytes each: 9 000 bytes.
    expect(noticeEvents([event('a', '€'.repeat(3_000))])).toBeNull();
    expect(noticeEvents([])).toBeNull();
  });

  test("an older replica's notice (three fields) carries nothing; a damaged one is read from the log instead", () => {
    const old = parseNotice('replica-2 7 0')!;
    expect(old).toEqual({ replica: 'replica-2', lastSeq: 7, available: false, events: undefined });
    expect(carriedEvents(old)).toBeUndefined();
    const text = noticeEvents([event('a'), event('b')])!;
    expect(carriedEvents(parseNotice(`r 9 1 ${text.slice(0, -3)}`)!), 'data cut short').toBeUndefined();
    expect(carriedEvents(parseNotice(`r 9 1 ${text}xyz`)!), 'data left over').toBeUndefined();
    expect(carriedEvents(parseNotice('r 9 1 not json\n{}')!)).toBeUndefined();
    expect(parseNotice('r x 1')).toBeUndefined();
    expect(parseNotice(undefined)).toBeUndefined();
  });
});
