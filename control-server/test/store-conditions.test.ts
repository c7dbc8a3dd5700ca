/**
 * What a client sees when storage misbehaves after or instead of a commit: a committed write is
 * answered as committed, and a full database (SQLITE_FULL, made real with PRAGMA max_page_count
 * on a real file) answers 503 with Retry-After, is reported on /health and /metrics, keeps
 * serving reads and recovers by itself.
 */
import type Database from 'better-sqlite3';
import { describe, expect, test } from 'vitest';
import type { Command } from '@agent-executor/common';
import type { CommandStore } from '../src/store/store.js';
import { delay, expectErrorShape, httpGet, submit, useApp } from './helpers.js';

const { build } = useApp();
/** The SQLite connection of a test app's store (useApp() builds SQLite stores in this file). */
const dbOf = (store: CommandStore) => (store as unknown as { db: Database.Database }).db;

describe('a committed write is answered as committed', () => {
  test("a throwing 'event' listener: submit still answers 201, the command is stored, the other listeners still hear it", async () => {
    const { app, store } = await build();
    const heard: string[] = [];
    store.events.on('event', () => {
      throw new Error('a listener with a bug');
    });
    store.events.on('event', (event) => heard.push(event.command.id));
    const created = await submit(app, delay(1)); // expects 201
    expect((await app.inject({ method: 'GET', url: `/commands/${created.id}` })).json()).toMatchObject({ id: created.id, status: 'PENDING' });
    expect(heard).toEqual([created.id]);
    const claimed = await app.inject({ method: 'GET', url: '/commands/next?agentId=agent-1' });
    expect(claimed.statusCode).toBe(200);
    const { leaseId } = claimed.json<{ leaseId: string }>();
    const reported = await app.inject({ method: 'PUT', url: `/commands/${created.id}/result`, payload: { agentId: 'agent-1', leaseId, result: {} } });
    expect(reported.statusCode, reported.body).toBe(200);
  });

  test('a failing event-log prune after the commit: the write still answers 201', async () => {
    const { app, store } = await build();
    const db = dbOf(store);
    // The prune runs after every 1 000 events; make its DELETE fail.
    db.exec(`CREATE TRIGGER no_prune BEFORE DELETE ON events BEGIN SELECT RAISE(ABORT, 'prune refused'); END`);
    const batch = { commands: Array.from({ length: 1000 }, () => delay(1)) };
    const res = await app.inject({ method: 'POST', url: '/commands/batch', payload: batch });
    expect(res.statusCode, res.body).toBe(201);
    // Make the prune have something to delete: events older than its limit (24 h, and 100 000 rows).
    db.exec(`UPDATE events SET created_at = 0; INSERT INTO events (seq, command_id, kind, transition, data, created_at) VALUES (200000, 'x', 'status', 'submit', '{}', 0)`);
    const again = await app.inject({ method: 'POST', url: '/commands/batch', payload: batch });
    expect(again.statusCode, again.body).toBe(201);
    expect((await store.countByStatus()).PENDING).toBe(2000);
  });
});

describe('a full database (SQLITE_FULL)', () => {
  test('writes answer 503 + Retry-After saying the database is full; /health 503, /metrics 1; reads work; it recovers by itself', async () => {
    const { app, store } = await build();
    const db = dbOf(store);
    const stored = await submit(app, delay(1));
    // The file may not grow past a few pages more than it has now: a real SQLITE_FULL.
    db.pragma(`max_page_count = ${(db.pragma('page_count', { simple: true }) as number) + 2}`);
    const big = httpGet(`https://example.com/${'a'.repeat(1900)}`);
    let full;
    for (let i = 0; i < 50 && !full; i++) {
      const res = await app.inject({ method: 'POST', url: '/commands', payload: big });
      if (res.statusCode !== 201) full = res;
    }
    if (!full) throw new Error('the database never filled up');
    expect(full.statusCode, full.body).toBe(503);
    expectErrorShape(full.json(), 503);
    expect(full.json().message).toMatch(/database is full/);
    expect(Number(full.headers['retry-after'])).toBeGreaterThan(0);
    const counted = await store.countByStatus();

    const health = await app.inject({ method: 'GET', url: '/health' });
    expect(health.statusCode).toBe(503);
    expect(health.json().message).toMatch(/database is full/);
    const metrics = await app.inject({ method: 'GET', url: '/metrics' });
    expect(metrics.body).toMatch(/^agent_executor_database_full 1$/m);
    // Reads keep working.
    expect((await app.inject({ method: 'GET', url: `/commands/${stored.id}` })).statusCode).toBe(200);
    expect((await app.inject({ method: 'GET', url: '/commands?limit=5' })).statusCode).toBe(200);
    // Other writes are refused the same way, not with a 500; nothing of them is stored.
    const batch = await app.inject({ method: 'POST', url: '/commands/batch', payload: { commands: Array.from({ length: 50 }, () => big) } });
    expect(batch.statusCode, batch.body).toBe(503);
    expect(await store.countByStatus()).toEqual(counted);
    expect((await app.inject({ method: 'GET', url: '/health' })).statusCode, 'still full').toBe(503);

    // Space returns: the health check notices by itself, and writes work again.
    db.pragma('max_page_count = 1073741823');
    const healthy = await app.inject({ method: 'GET', url: '/health' });
    expect(healthy.statusCode, healthy.body).toBe(200);
    expect((await app.inject({ method: 'GET', url: '/metrics' })).body).toMatch(/^agent_executor_database_full 0$/m);
    const after: Command = await submit(app, big);
    expect(after.status).toBe('PENDING');
  });

  test('a write that succeeds after a full moment clears the condition without a health check', async () => {
    const { app, store } = await build();
    const db = dbOf(store);
    db.pragma(`max_page_count = ${(db.pragma('page_count', { simple: true }) as number) + 1}`);
    const big = httpGet(`https://example.com/${'a'.repeat(1900)}`);
    for (let i = 0; i < 50 && !store.isFull(); i++) await app.inject({ method: 'POST', url: '/commands', payload: big });
    expect(store.isFull()).toBe(true);
    db.pragma('max_page_count = 1073741823');
    await submit(app, big);
    expect(store.isFull()).toBe(false);
    expect((await app.inject({ method: 'GET', url: '/metrics' })).body).toMatch(/^agent_executor_database_full 0$/m);
  });
});
