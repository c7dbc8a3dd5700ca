/// <reference lib="dom" />
/**
 * Headless Chromium for the dashboard's tests, from npm: @sparticuz/chromium carries the browser
 * in the package and unpacks it to /tmp when first asked (nothing is downloaded), and
 * playwright-core drives it.
 */
import chromium from '@sparticuz/chromium';
import { chromium as playwright, type Browser, type ConsoleMessage, type Page } from 'playwright-core';

const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  // Without it Chromium takes its language from LANG (unset here: "en-US@posix", which Intl refuses).
  '--lang=en-US',
];

export async function launchBrowser(): Promise<Browser> {
  return playwright.launch({ executablePath: await chromium.executablePath(), args: FLAGS, headless: true });
}

/** Console errors a page may show because the test made them happen on purpose. */
export interface ExpectedNoise {
  /** Statuses of failed requests the test provokes (a 400 from a bad form, a 401 from a wrong token). */
  statuses?: number[];
  /** Paths whose failure is expected (`/agents` answers 404 without routing). */
  paths?: string[];
  /** The server is killed on purpose: refused connections are expected. */
  serverDown?: boolean;
}

export interface WatchedPage {
  page: Page;
  /** Console errors and uncaught exceptions that were not expected. */
  errors: string[];
}

/** A new page whose console errors and page errors are collected, minus what the test provokes. */
export async function openPage(browser: Browser, url: string, noise: ExpectedNoise = {}, viewport = { width: 1280, height: 800 }): Promise<WatchedPage> {
  const context = await browser.newContext({ viewport, locale: 'en-US' });
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(`page error: ${error.message}`));
  page.on('console', (message: ConsoleMessage) => {
    if (message.type() !== 'error') return;
    const text = message.text();
    const where = message.location().url;
    const status = /status of (\d{3})/.exec(text)?.[1];
    if (status && noise.statuses?.includes(Number(status))) return;
    if (noise.paths?.some((path) => where.includes(path))) return;
    if (noise.serverDown && /ERR_CONNECTION_REFUSED|ERR_CONNECTION_RESET|ERR_EMPTY_RESPONSE|ERR_INCOMPLETE_CHUNKED_ENCODING|ERR_NETWORK_CHANGED/.test(text)) return;
    errors.push(`console: ${text} (${where})`);
  });
  await page.goto(url);
  return { page, errors };
}
