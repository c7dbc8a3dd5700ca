/**
 * The claim's events built by PostgreSQL (postgres-command-json.ts, claimLogged): the same text
 * rowToCommand and JSON.stringify give, ids in order, carried by the notification as the other
 * writes' are.
 */
import pg from 'pg';
import { afterEach, describe, expect, inject, test } from 'vitest';
import { rowToCommand, type CommandRow } from '../src/store/command-rows.js';
import { commandJsonSql, utf16LengthSql } from '../src/store/postgres-command-json.js';
import { carriedEvents, parseNotice } from '../src/store/postgres-notice.js';
import { pgTypes } from '../src/store/postgres-rows.js';
import { CHANNEL } from '../src/store/postgres-statements.js';
import { PostgresCommandStore } from '../src/store/postgres.js';
import { createDatabase } from '../../test-support/postgres.js';
import { waitFor } from '../../test-support/processes.js';

const adminUrl = inject('postgresUrl');

describe('claim events built in SQL', () => {
  const stores: PostgresCommandStore[] = [];
  const clients: pg.Client[] = [];
  afterEach(async () => {
    for (const store of stores.splice(0)) await store.close();
    for (const client of clients.splice(0)) await client.end();
  });

  async function open() {
    const url = await createDatabase(adminUrl, 'claim_events');
    const store = await PostgresCommandStore.open({ connectionString: url, poolSize: 2 });
    stores.push(store);
    // The store's type parsers (bigint times as numbers), so that rowToCommand reads these rows as the store's.
    const db = new pg.Client({ connectionString: url, types: pgTypes });
    await db.connect();
    clients.push(db);
    return { store, db, url };
  }

  test('commandJsonSql is JSON.stringify(rowToCommand(row)), byte for byte, for every field null or set', async () => {
    const { store, db } = await open();
    const odd = 'quote " backslash \\ newline \n tab \t control \u0001 é € 😀';
    const { command } = await store.submit({
      type: 'HTTP_GET_JSON',
      payload: { url: 'http://example.test/a?b=1', note: odd } as never,
      queue: 'q-1',
      priority: 7,
      runAt: '2030-01-02T03:04:05.006Z',
      concurrencyKey: `key ${odd}`,
      concurrencyLimit: 3,
    } as never);
    await store.submit({ type: 'DELAY', payload: { ms: 1 } });
    // Every nullable column set on the first command, with times that test the milliseconds' edges.
    await db.query(
      `UPDATE commands SET status = 'RUNNING', result = $2, error = $3, agent_id = $4, lease_id = 'l', lease_expires_at = 1999999999999,
         cancel_requested = 1, progress = $5, started_at = 1700000000001, finished_at = 1700000000999, available_at = 0
       WHERE id = $1`,
      [command.id, JSON.stringify({ nested: [1, 2.5, null, odd], empty: {} }), odd, `agent ${odd}`, JSON.stringify({ percent: 50, message: odd })],
    );
    const { rows } = await db.query<CommandRow & { json: string }>(`SELECT c.*, ${commandJsonSql('c')} AS json FROM commands c ORDER BY seq`);
    expect(rows).toHaveLength(2);
    for (const row of rows) expect(row.json).toBe(JSON.stringify(rowToCommand(row)));
  });

  test('utf16LengthSql counts as JavaScript does: astral characters twice', async () => {
    const { db } = await open();
    for (const text of ['', 'ascii', 'é€', '😀', 'a😀b𝄞c€', '\u0001\u007f']) {
      const { rows } = await db.query<{ n: number }>(`SELECT ${utf16LengthSql('$1::text')} AS n`, [text]);
      expect(Number(rows[0]!.n), JSON.stringify(text)).toBe(text.length);
    }
  });

  test("a claim's events: in the log with the next ids, counted, and carried by its notification as the log has them", async () => {
    const { store, db, url } = await open();
    const listener = new pg.Client({ connectionString: url });
    await listener.connect();
    clients.push(listener);
    const heard: string[] = [];
    listener.on('notification', (m) => heard.push(m.payload ?? ''));
    await listener.query(`LISTEN ${CHANNEL}`);
    await store.submitBatch([
      { type: 'DELAY', payload: { ms: 1 } },
      { type: 'DELAY', payload: { ms: 2 }, priority: 5 },
      { type: 'HTTP_GET_JSON', payload: { url: 'http://example.test/😀' } } as never,
    ]);
    const claimed = await store.claimBatch('agent-1', 60_000, 3);
    expect(claimed.map((c) => c.priority)).toEqual([5, 0, 0]);
    const log = await store.eventsSince(3, 10);
    expect(log.map((e) => [e.seq, e.transition, e.command.id])).toEqual(claimed.map((c, i) => [4 + i, 'claim', c.id]));
    for (const [i, event] of log.entries()) expect(event.data).toBe(JSON.stringify(rowToCommand((await db.query<CommandRow>('SELECT * FROM commands WHERE id = $1', [claimed[i]!.id])).rows[0]!)));
    expect(await store.countByStatus()).toMatchObject({ PENDING: 0, RUNNING: 3 });
    await waitFor(async () => heard.some((p) => parseNotice(p)?.lastSeq === 6), { timeoutMs: 5_000, what: "the claim's notification" });
    const notice = parseNotice(heard.find((p) => parseNotice(p)?.lastSeq === 6))!;
    expect(notice.available).toBe(false);
    const carried = carriedEvents(notice)!;
    expect(carried.map(({ seq, kind, transition, data, command }) => ({ seq, kind, transition, data, command }))).toEqual(
      log.map(({ seq, kind, transition, data, command }) => ({ seq, kind, transition, data, command })),
    );
  });
});
