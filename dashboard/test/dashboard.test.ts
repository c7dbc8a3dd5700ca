/// <reference lib="dom" />
/**
 * The dashboard in a real browser (headless Chromium from npm) against real server and agent
 * processes: the live table, a server SIGKILL mid-stream, the submit form's 400s, cancel and bulk
 * retry, the token prompt, and no console errors on any page.
 */
import { randomUUID } from 'node:crypto';
import Database from 'better-sqlite3';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import type { Command } from '@agent-executor/common';
import { killAll, startAgent, startServer, tempDir, waitFor, type RunningProcess, type RunningServer } from '../../test-support/processes.js';
import { HttpApi } from '../../test-support/http-api.js';
import { closeAllClients, openStream } from '../../test-support/sse-clients.js';
import { launchBrowser, openPage, type WatchedPage } from './browser.js';

let browser: Browser;
let dir: ReturnType<typeof tempDir>;
let passed = true;
/** A server without agents unless a test starts one: commands stay PENDING until it does. */
let server: RunningServer;
let api: HttpApi;
const pages: WatchedPage[] = [];
let agents = 0;

beforeAll(async () => {
  dir = tempDir('dashboard-test');
  [browser, server] = await Promise.all([launchBrowser(), startServer({ DB_PATH: `${dir.path}/main.db` })]);
  api = new HttpApi(server.url);
}, 60_000);

afterEach(async (context) => {
  if (context.task.result?.state === 'fail') passed = false;
  closeAllClients();
  for (const { page } of pages.splice(0)) await page.context().close();
});

afterAll(async () => {
  await browser?.close();
  await killAll();
  dir?.cleanup(passed);
});

function agentFor(target: RunningServer, env: Record<string, string> = {}): RunningProcess {
  agents++;
  return startAgent({ SERVER_URL: target.url, IDEMPOTENCY_DB_PATH: `${dir.path}/agent-${agents}.db`, AGENT_ID: `agent-${agents}`, ...env });
}

async function open(url: string, noise: Parameters<typeof openPage>[2] = {}): Promise<Page> {
  const watched = await openPage(browser, url, { paths: ['/agents', '/queues'], ...noise });
  pages.push(watched);
  return watched.page;
}

function expectNoConsoleErrors(): void {
  for (const { errors } of pages) expect(errors).toEqual([]);
}

/** Waits until the live table holds `status` for a command; `undefined`: until the row has left it. */
const waitForStatus = (page: Page, id: string, status: string | undefined, timeout = 15_000) =>
  page.waitForFunction(
    ([commandId, wanted]) =>
      (window as unknown as { dashboard: { table?: { status: (id: string) => string | undefined } } }).dashboard.table?.status(commandId!) === wanted,
    [id, status] as const,
    { timeout },
  );

describe('the live table', () => {
  test('shows a submitted command going PENDING → RUNNING → COMPLETED as it happens', async () => {
    const page = await open(`${server.url}/ui/#/commands`);
    await page.locator('#connection[data-state="live"]').waitFor();
    const command = await api.submit({ type: 'DELAY', payload: { ms: 1500 } });
    await waitForStatus(page, command.id, 'PENDING');
    // The row is drawn (newest first: the top row).
    await page.locator(`[data-key="${command.id}"] .status-pending`).waitFor();
    const agent = agentFor(server);
    await waitForStatus(page, command.id, 'RUNNING');
    await page.locator(`[data-key="${command.id}"] .status-running`).waitFor();
    await waitForStatus(page, command.id, 'COMPLETED');
    await page.locator(`[data-key="${command.id}"] .status-completed`).waitFor();
    await agent.kill();
    expectNoConsoleErrors();
  });

  test('a server SIGKILLed and restarted mid-stream: the page resumes with no duplicate and no gap', async () => {
    const db = `${dir.path}/restart.db`;
    let target = await startServer({ DB_PATH: db });
    const agent = agentFor(target, { CONCURRENCY: '4' });
    const page = await open(`${target.url}/ui/#/commands`, { serverDown: true });
    await page.locator('#connection[data-state="live"]').waitFor();
    await page.evaluate(() => {
      const seen: string[] = [];
      (window as unknown as { states: string[] }).states = seen;
      const element = document.getElementById('connection')!;
      new MutationObserver(() => seen.push(element.dataset['state'] ?? '')).observe(element, { attributes: true });
    });

    // A steady flow of submits, through the kill and the restart (refused meanwhile).
    let producing = true;
    const producer = (async () => {
      while (producing) {
        const body = { commands: Array.from({ length: 5 }, () => ({ type: 'DELAY', payload: { ms: 20 } })) };
        await fetch(`${target.url}/commands/batch`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }).catch(() => undefined);
        await new Promise((r) => setTimeout(r, 60));
      }
    })();
    await page.waitForFunction(() => (window as unknown as { dashboard: { stream: { seenIds: number[] } } }).dashboard.stream.seenIds.length > 50);
    await target.kill('SIGKILL');
    target = await startServer({ DB_PATH: db }, target.port);
    await page.locator('#connection[data-state="live"]').waitFor({ timeout: 15_000 });
    await new Promise((r) => setTimeout(r, 800));
    producing = false;
    await producer;

    // Everything settles: the agent finishes and reports what it ran through the restart.
    const settled = await waitFor(
      async () => {
        const stats = (await (await fetch(`${target.url}/stats`)).json()) as { counts: Record<string, number>; lastEventId: number };
        return stats.counts['PENDING'] === 0 && stats.counts['RUNNING'] === 0 && stats;
      },
      { timeoutMs: 30_000, what: 'every command finished' },
    );
    await page.waitForFunction(
      (last) => (window as unknown as { dashboard: { stream: { lastEventId: number } } }).dashboard.stream.lastEventId >= last,
      settled.lastEventId,
      { timeout: 15_000 },
    );
    const seen = await page.evaluate(() => (window as unknown as { dashboard: { stream: { seenIds: number[] } } }).dashboard.stream.seenIds);
    const states = await page.evaluate(() => (window as unknown as { states: string[] }).states);
    expect(states, 'the page saw the stream drop').toContain('reconnecting');

    // The server's own log from the first event the page saw: the page got exactly these.
    const log = await openStream(`${target.url}/events?lastEventId=${seen[0]! - 1}`);
    await log.transcript.until(() => log.transcript.events.at(-1)?.id === settled.lastEventId, 'the whole log', 10_000);
    log.close();
    expect(seen).toEqual(log.transcript.events.map((e) => e.id));

    // And the table holds each command once, in the state the server has it in.
    const listed = (await (await fetch(`${target.url}/commands?limit=1000`)).json()) as Command[];
    const table = await page.evaluate(() => {
      const t = (window as unknown as { dashboard: { table: { ids: () => string[]; status: (id: string) => string } } }).dashboard.table;
      return t.ids().map((id) => [id, t.status(id)]);
    });
    expect(new Set(table.map(([id]) => id)).size).toBe(table.length);
    expect(table).toEqual(listed.map((c) => [c.id, c.status]));
    expect(listed.length).toBeGreaterThan(50);
    await agent.kill();
    expectNoConsoleErrors();
  }, 60_000);
  test('a resume past the pruned log (a reset event) reloads the table', async () => {
    const db = `${dir.path}/reset.db`;
    let target = await startServer({ DB_PATH: db });
    const targetApi = new HttpApi(target.url);
    const known = await targetApi.submit({ type: 'DELAY', payload: { ms: 10 } });
    const page = await open(`${target.url}/ui/#/commands`, { serverDown: true });
    await waitForStatus(page, known.id, 'PENDING');
    await target.kill('SIGKILL');

    // While the server is down, changes the page never sees are written and pruned from the log:
    // a command whose only events are gone, then one event about a command the page knows.
    const sqlite = new Database(db);
    const row = sqlite.prepare('SELECT * FROM commands WHERE id = ?').get(known.id) as Record<string, unknown>;
    const { seq: _seq, ...columns } = row;
    const hidden = { ...columns, id: randomUUID(), idempotency_key: null };
    const names = Object.keys(hidden);
    sqlite.prepare(`INSERT INTO commands (${names.join(', ')}) VALUES (${names.map((n) => `@${n}`).join(', ')})`).run(hidden);
    const addEvent = sqlite.prepare("INSERT INTO events (command_id, kind, transition, data, created_at) VALUES (?, 'status', 'submit', ?, ?)");
    for (let i = 0; i < 3; i++) addEvent.run(hidden.id, JSON.stringify({ ...known, id: hidden.id }), Date.now());
    const last = Number(addEvent.run(known.id, JSON.stringify(known), Date.now()).lastInsertRowid);
    sqlite.prepare('DELETE FROM events WHERE seq < ?').run(last);
    sqlite.close();

    target = await startServer({ DB_PATH: db }, target.port);
    // Only a reload (GET /commands) can bring the hidden command: no event about it is left.
    await waitForStatus(page, hidden.id, 'PENDING');
    const ids = await page.evaluate(() => (window as unknown as { dashboard: { table: { ids: () => string[] } } }).dashboard.table.ids());
    expect(ids.sort()).toEqual([known.id, hidden.id].sort());
    await target.kill();
    expectNoConsoleErrors();
  });
});

describe('the command page and the submit form', () => {
  test("shows a 400's messages beside the fields, then a valid DELAY completing with its progress bar", async () => {
    const page = await open(`${server.url}/ui/#/submit`, { statuses: [400] });
    await page.fill('#field-payload-ms', '-5');
    await page.click('#submit');
    const msError = page.locator('[data-path="payload.ms"] .field-error');
    await msError.filter({ hasText: /\S/ }).waitFor();
    expect(await msError.textContent()).toMatch(/>=\s*0|too small/i);
    expect(await page.getAttribute('#field-payload-ms', 'aria-invalid')).toBe('true');

    // A cross-field rule of the API lands on its field too.
    await page.fill('#field-payload-ms', '2000');
    await page.fill('#field-timeoutMs', '1000');
    await page.click('#submit');
    const timeoutError = page.locator('[data-path="timeoutMs"] .field-error');
    await timeoutError.filter({ hasText: /\S/ }).waitFor();
    expect(await timeoutError.textContent()).toMatch(/greater than payload\.ms/);
    expect(await msError.textContent()).toBe('');

    // Valid: the page moves to the new command, which an agent then runs to the end.
    await page.fill('#field-timeoutMs', '');
    await page.click('#submit');
    await page.waitForURL(/#\/commands\/[0-9a-f-]{36}$/);
    await page.locator('#status', { hasText: 'PENDING' }).waitFor();
    const agent = agentFor(server);
    await page.locator('#status', { hasText: 'RUNNING' }).waitFor({ timeout: 15_000 });
    await page.waitForFunction(() => Number(document.querySelector<HTMLProgressElement>('#progress')?.value ?? 0) > 0);
    await page.locator('#status', { hasText: 'COMPLETED' }).waitFor({ timeout: 15_000 });
    expect(await page.locator('#progress').evaluate((p) => (p as HTMLProgressElement).value)).toBe(100);
    expect(await page.locator('.history li').count()).toBeGreaterThanOrEqual(3); // submit, claim, report
    await agent.kill();
    expectNoConsoleErrors();
  });

  test('cancel on the command page; bulk retry of every FAILED and bulk cancel of every PENDING', async () => {
    const [a, b, c] = [await api.submit({ type: 'DELAY', payload: { ms: 10 } }), await api.submit({ type: 'DELAY', payload: { ms: 10 } }), await api.submit({ type: 'DELAY', payload: { ms: 10 } })];
    const page = await open(`${server.url}/ui/#/commands/${a.id}`);
    page.on('dialog', (dialog) => void dialog.accept());
    await page.locator('#status', { hasText: 'PENDING' }).waitFor();
    await page.click('#cancel');
    await page.locator('#status', { hasText: 'FAILED' }).waitFor();
    expect(await page.locator('#error').textContent()).toBe('canceled');
    expect(await page.isDisabled('#cancel')).toBe(true);
    expect(await page.isEnabled('#retry')).toBe(true);

    // Bulk retry from the table filtered on FAILED: the rows leave it live as they turn PENDING.
    await page.goto(`${server.url}/ui/#/commands?status=FAILED`);
    await waitForStatus(page, a.id, 'FAILED');
    const failed = ((await (await fetch(`${server.url}/stats`)).json()) as { counts: { FAILED: number } }).counts.FAILED;
    await page.click('#bulk-retry');
    await page.locator('.message', { hasText: `Retried ${failed} command` }).waitFor();
    expect((await api.get(a.id)).status).toBe('PENDING');
    await waitForStatus(page, a.id, undefined);

    await page.goto(`${server.url}/ui/#/commands?status=PENDING`);
    await waitForStatus(page, b.id, 'PENDING');
    await page.click('#bulk-cancel');
    await page.locator('.message', { hasText: /Canceled \d+ command/ }).waitFor();
    for (const id of [a.id, b.id, c.id]) expect(await api.get(id)).toMatchObject({ status: 'FAILED', error: 'canceled' });
    // The rows leave the PENDING table live, as their events arrive over the stream.
    await waitForStatus(page, c.id, undefined);
    expectNoConsoleErrors();
  });
});

describe('every page', () => {
  test('renders without a console error, and is usable with the keyboard alone', async () => {
    const command = await api.submit({ type: 'DELAY', payload: { ms: 10 } });
    const page = await open(`${server.url}/ui/`);
    for (const [hash, heading] of [
      ['#/', 'Overview'],
      ['#/commands', 'Commands'],
      [`#/commands/${command.id}`, 'Command'],
      ['#/submit', 'Submit a command'],
      ['#/agents', 'Agents'],
      ['#/queues', 'Queues'],
    ] as const) {
      await page.goto(`${server.url}/ui/${hash}`);
      await page.locator('h1', { hasText: heading }).waitFor();
    }
    // Without routing (SPEC §9) the agents page says so instead of failing.
    await page.goto(`${server.url}/ui/#/agents`);
    await page.locator('.note, table').first().waitFor();

    // Keyboard: the skip link first, then the nav; the submit form by Tab and Enter alone.
    await page.goto(`${server.url}/ui/#/submit`);
    await page.locator('#field-payload-ms').waitFor();
    await page.keyboard.press('Tab');
    expect(await page.evaluate(() => document.activeElement?.textContent)).toBe('Skip to content');
    await page.focus('#type');
    await page.keyboard.press('Tab');
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('field-payload-ms');
    await page.keyboard.press('Control+A');
    await page.keyboard.type('10');
    await page.keyboard.press('Enter');
    await page.waitForURL(/#\/commands\/[0-9a-f-]{36}$/);
    expectNoConsoleErrors();
  });
});

describe('with API_TOKEN set', () => {
  test('the page asks for the token, says when it is wrong, and works with the right one', async () => {
    const token = 'dashboard-token-0123456789';
    const guarded = await startServer({ DB_PATH: `${dir.path}/token.db`, API_TOKEN: token });
    const command = await new HttpApi(guarded.url, token).submit({ type: 'DELAY', payload: { ms: 10 } });
    const page = await open(`${guarded.url}/ui/#/commands`, { statuses: [401] });
    await page.locator('dialog #token').waitFor();
    await page.fill('#token', 'not-the-token');
    await page.keyboard.press('Enter');
    await page.locator('dialog .error', { hasText: 'refused that token' }).waitFor();
    await page.fill('#token', token);
    await page.keyboard.press('Enter');
    // The API calls (header) and the stream (?access_token=) both get through.
    await page.locator('#connection[data-state="live"]').waitFor();
    await waitForStatus(page, command.id, 'PENDING');
    expect(await page.evaluate(() => sessionStorage.getItem('agent-executor.token'))).toBe(token);
    expectNoConsoleErrors();
    await guarded.kill();
  });
});
