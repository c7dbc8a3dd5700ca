/// <reference lib="dom" />
/**
 * The README's screenshots (docs/screenshots/*.png), from a real run: a server, three agents and
 * a few hundred commands (DELAYs, HTTP_GET_JSON calls to a local JSON target, some failing).
 * Run: `npm run screenshots`.
 */
import { createServer } from 'node:http';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { afterAll, test } from 'vitest';
import type { Command } from '@agent-executor/common';
import { killAll, REPO_ROOT, startAgent, startServer, tempDir } from '../../test-support/processes.js';
import { launchBrowser, openPage } from '../test/browser.js';

const OUT = join(REPO_ROOT, 'docs/screenshots');
const dir = tempDir('dashboard-screenshots');
const target = createServer((req, res) => {
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify({ path: req.url, ok: true, items: [1, 2, 3] }));
});

afterAll(async () => {
  await killAll();
  target.close();
  dir.cleanup(true);
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('screenshots of every page', async () => {
  mkdirSync(OUT, { recursive: true });
  await new Promise<void>((resolve) => target.listen(0, '127.0.0.1', resolve));
  const json = `http://127.0.0.1:${(target.address() as AddressInfo).port}`;
  const server = await startServer({ DB_PATH: `${dir.path}/shots.db` });
  for (let i = 1; i <= 3; i++) {
    startAgent({ SERVER_URL: server.url, IDEMPOTENCY_DB_PATH: `${dir.path}/agent-${i}.db`, AGENT_ID: `agent-${i}`, CONCURRENCY: '4' });
  }
  const browser = await launchBrowser();
  const { page } = await openPage(browser, `${server.url}/ui/#/`, { paths: ['/agents', '/queues'] });
  await page.locator('#connection[data-state="live"]').waitFor();

  // A few hundred commands over ~15 s, so the throughput chart has a shape.
  const submit = (commands: unknown[]) =>
    fetch(`${server.url}/commands/batch`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ commands }) });
  for (let round = 0; round < 15; round++) {
    const batch: unknown[] = [];
    for (let i = 0; i < 20; i++) {
      const n = round * 20 + i;
      if (n % 10 === 3) batch.push({ type: 'HTTP_GET_JSON', payload: { url: `http://127.0.0.1:1/unreachable/${n}` }, maxAttempts: 1 });
      else if (n % 3 === 0) batch.push({ type: 'HTTP_GET_JSON', payload: { url: `${json}/items/${n}` } });
      else batch.push({ type: 'DELAY', payload: { ms: 50 + ((n * 37) % 400) } });
    }
    await submit(batch);
    await sleep(1000);
  }
  // Some still running (with progress) and some waiting when the pictures are taken.
  await submit(Array.from({ length: 16 }, (_, i) => ({ type: 'DELAY', payload: { ms: 40_000 + i * 1000 } })));
  await sleep(3000);

  await page.screenshot({ path: join(OUT, 'overview.png') });

  await page.goto(`${server.url}/ui/#/commands`);
  await page.locator('.vt-row[data-key]').first().waitFor();
  await sleep(500);
  await page.screenshot({ path: join(OUT, 'commands.png') });

  const running = (await (await fetch(`${server.url}/commands?status=RUNNING&limit=1`)).json()) as Command[];
  await page.goto(`${server.url}/ui/#/commands/${running[0]!.id}`);
  await page.locator('#progress').waitFor();
  await sleep(1500);
  await page.screenshot({ path: join(OUT, 'command.png'), fullPage: true });

  const failed = (await (await fetch(`${server.url}/commands?status=FAILED&limit=1`)).json()) as Command[];
  await page.goto(`${server.url}/ui/#/commands/${failed[0]!.id}`);
  await page.locator('#error').waitFor();
  await page.screenshot({ path: join(OUT, 'command-failed.png'), fullPage: true });

  await page.goto(`${server.url}/ui/#/submit`);
  await page.fill('#field-payload-ms', '-5');
  await page.click('#submit');
  await page.locator('[data-path="payload.ms"] .field-error').filter({ hasText: /\S/ }).waitFor();
  await page.screenshot({ path: join(OUT, 'submit.png') });

  await page.goto(`${server.url}/ui/#/agents`);
  await page.locator('.note, table').first().waitFor();
  await page.screenshot({ path: join(OUT, 'agents.png') });
  await page.goto(`${server.url}/ui/#/queues`);
  await page.locator('.note, table').first().waitFor();
  await page.screenshot({ path: join(OUT, 'queues.png') });

  // Dark (the system's choice) and a narrow window.
  const dark = await browser.newContext({ viewport: { width: 1280, height: 800 }, locale: 'en-US', colorScheme: 'dark' });
  const darkPage = await dark.newPage();
  await darkPage.goto(`${server.url}/ui/#/commands`);
  await darkPage.locator('.vt-row[data-key]').first().waitFor();
  await sleep(500);
  await darkPage.screenshot({ path: join(OUT, 'commands-dark.png') });
  const narrow = await browser.newContext({ viewport: { width: 390, height: 800 }, locale: 'en-US', deviceScaleFactor: 1 });
  const narrowPage = await narrow.newPage();
  await narrowPage.goto(`${server.url}/ui/#/commands`);
  await narrowPage.locator('.vt-row[data-key]').first().waitFor();
  await sleep(500);
  await narrowPage.screenshot({ path: join(OUT, 'commands-narrow.png') });

  // The token prompt, on a server with API_TOKEN.
  const guarded = await startServer({ DB_PATH: `${dir.path}/token.db`, API_TOKEN: 'screenshot-token-0123456789' });
  const tokenPage = await (await browser.newContext({ viewport: { width: 1280, height: 600 }, locale: 'en-US' })).newPage();
  await tokenPage.goto(`${guarded.url}/ui/`);
  await tokenPage.fill('#token', 'wrong-token');
  await tokenPage.keyboard.press('Enter');
  await tokenPage.locator('dialog .error').waitFor();
  await tokenPage.screenshot({ path: join(OUT, 'token.png') });
  await browser.close();
});
