/**
 * Builds the control server on a temp SQLite file and tears it down after each test.
 * `useApp()` registers the hooks: every app and store a test built is closed after it, and the
 * test fails when the app left something open (a listening socket, a connection, a waiting poll,
 * a timer of the server's code) or the store still answers after close. The temp dir is removed
 * when the test passed and kept, and named, when it failed.
 */
import { createHook } from 'node:async_hooks';
import { performance } from 'node:perf_hooks';
import Database from 'better-sqlite3';
import { afterAll, afterEach, beforeAll, beforeEach, expect } from 'vitest';
import type { Command } from '@agent-executor/common';
import { buildApp, loadConfig, SqliteCommandStore, type App, type CommandStore } from '../src/app.js';
import type { Clock } from '../src/clock.js';
import type { StoredEvent } from '../src/store/store.js';
import { tempDir } from '../../test-support/processes.js';

/** Real time, plus an offset the test steps forward, as when NTP steps the system time. */
export class SteppedClock implements Clock {
  private offset = 0;
  readonly wall = (): number => Date.now() + this.offset;
  readonly monotonic = (): number => performance.now();
  step(ms: number): void {
    this.offset += ms;
  }
}

/** Resolves with the next event of `transition` the store logs. */
export function nextEvent(store: CommandStore, transition: StoredEvent['transition']): Promise<StoredEvent> {
  return new Promise((resolve) => {
    const listener = (event: StoredEvent) => {
      if (event.transition !== transition) return;
      store.events.off('event', listener);
      resolve(event);
    };
    store.events.on('event', listener);
  });
}

/** A clock the test moves by hand, for the store's time-based logic (leases, backoff). */
export class TestClock {
  constructor(private at = Date.parse('2030-01-01T00:00:00.000Z')) {}
  readonly now = (): number => this.at;
  advance(ms: number): number {
    this.at += ms;
    return this.at;
  }
}

export interface BuildOptions {
  /** Environment for loadConfig, on top of LOG_LEVEL=silent. */
  env?: Record<string, string>;
  now?: () => number;
  /** The server's clock: the store reads its wall clock, the lease reaper both (overrides now). */
  clock?: Clock;
  random?: () => number;
  /** Runs before the app is ready, the last moment hooks can be added. */
  beforeReady?: (app: App) => void;
  /** The built dashboard to serve at /ui/ (default: the installed one). */
  dashboardDir?: string;
}

export interface TestApp {
  app: App;
  store: CommandStore;
  dbPath: string;
}

/** Opens the store of a test app: SQLite at `dbPath`, unless the file chose another store. */
export type TestStoreFactory = (dbPath: string, options: { now?: () => number; random?: () => number }) => Promise<CommandStore>;
/**
 * Runs one statement on the database of the store opened for `dbPath`, through a connection of
 * its own (as another process would); `?` marks the parameters.
 */
export type TestSql = (dbPath: string, text: string, values: unknown[]) => Promise<void>;
let openStore: TestStoreFactory = async (dbPath, options) => new SqliteCommandStore({ path: dbPath, ...options });
let execSql: TestSql = async (dbPath, text, values) => {
  const db = new Database(dbPath);
  try {
    db.prepare(text).run(...values);
  } finally {
    db.close();
  }
};
let kind: 'sqlite' | 'postgres' = 'sqlite';

/** Runs the file's apps on another store (the route suites run on PostgreSQL this way too). */
export function setTestStore(storeKind: 'postgres', factory: TestStoreFactory, exec?: TestSql): void {
  kind = storeKind;
  openStore = factory;
  if (exec) execSql = exec;
}

/** Runs one statement on a test store's database behind the store's back (see TestSql). */
export function execTestSql(dbPath: string, text: string, values: unknown[] = []): Promise<void> {
  return execSql(dbPath, text, values);
}

/** Opens a store of the kind the file runs on (for files that build their apps themselves). */
export function openTestStore(dbPath: string, options: { now?: () => number; random?: () => number } = {}): Promise<CommandStore> {
  return openStore(dbPath, options);
}

/** The store the file's apps run on. */
export function testStoreKind(): 'sqlite' | 'postgres' {
  return kind;
}

/**
 * Timers and immediates created by the server's own code (control-server/src), tracked from
 * creation until they fire or are cleared; what is still here after close is a leak. Vitest's own
 * timers are not counted, so the check does not depend on what the runner does meanwhile.
 */
const liveTimers = new Map<number, { type: string; stack: string }>();
const SERVER_SOURCE = /[\\/]control-server[\\/]src[\\/]/;
createHook({
  init(asyncId, type) {
    if (type !== 'Timeout' && type !== 'Immediate') return;
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 50;
    const stack = new Error().stack ?? '';
    Error.stackTraceLimit = limit;
    // Who called setTimeout/setImmediate: the first frame outside Node itself and this hook.
    const caller = stack.split('\n').find((line) => /^\s+at /.test(line) && !/node:|helpers\.ts/.test(line));
    if (caller !== undefined && SERVER_SOURCE.test(caller)) liveTimers.set(asyncId, { type, stack });
  },
  destroy(asyncId) {
    liveTimers.delete(asyncId);
  },
}).enable();

/**
 * Call once at the top of a test file (or describe). Returns `build` for the tests to use.
 * `scope: 'each'` (the default) gives every test its own apps, closed after it; `scope: 'all'`
 * keeps what is built until the file (or describe) is done, for tables of cases that must leave
 * the state unchanged anyway.
 */
export function useApp({ scope = 'each' }: { scope?: 'each' | 'all' } = {}): {
  build: (options?: BuildOptions) => Promise<TestApp>;
} {
  let built: TestApp[] = [];
  let dir: ReturnType<typeof tempDir> | undefined;
  let before = new Set<number>();
  let failed = false;

  const setUp = () => {
    built = [];
    failed = false;
    dir = tempDir('control-server-test');
    before = new Set(liveTimers.keys());
  };
  const tearDown = async () => {
    for (const { app, store } of built) {
      await app.close();
      await store.close();
    }
    try {
      for (const { app, store } of built) {
        expect(app.server.listening, 'the app still listens after close').toBe(false);
        expect(await openConnections(app), 'connections still open after close').toBe(0);
        expect(app.longPoll.size, 'polls still wait after close').toBe(0);
        await expect(store.ping(), 'the store still answers after close').rejects.toBeInstanceOf(Error);
      }
      await expectNoTimersLeft(before);
    } catch (err) {
      failed = true;
      throw err;
    } finally {
      dir?.cleanup(!failed);
      dir = undefined;
    }
  };

  afterEach(async ({ task }) => {
    if (task.result?.state === 'fail') failed = true;
    if (scope === 'each') await tearDown();
  });
  if (scope === 'each') beforeEach(setUp);
  else {
    beforeAll(setUp);
    afterAll(tearDown);
  }

  return {
    async build(options = {}) {
      if (!dir) throw new Error('useApp().build is for use inside a test');
      const dbPath = `${dir.path}/commands-${built.length}.db`;
      const config = loadConfig({ LOG_LEVEL: 'silent', DB_PATH: dbPath, ...options.env });
      const now = options.clock ? options.clock.wall : options.now;
      const store = await openStore(dbPath, {
        ...(now ? { now } : {}),
        ...(options.random ? { random: options.random } : {}),
      });
      const app = await buildApp(config, store, {
        ...(options.clock ? { clock: options.clock } : {}),
        ...(options.dashboardDir ? { dashboardDir: options.dashboardDir } : {}),
      });
      built.push({ app, store, dbPath });
      options.beforeReady?.(app);
      await app.ready();
      return { app, store, dbPath };
    },
  };
}

/** The server's timers alive now: pass to expectNoTimersLeft() to check that no new ones are left. */
export function serverTimers(): Set<number> {
  return new Set(liveTimers.keys());
}

/** A timer is cleared within a turn or two of the event loop after close: give it those turns. */
export async function expectNoTimersLeft(before: Set<number>): Promise<void> {
  let left: string[] = [];
  for (let turn = 0; turn < 20; turn++) {
    left = [...liveTimers].filter(([id]) => !before.has(id)).map(([, t]) => `${t.type} created at\n${t.stack}`);
    if (left.length === 0) return;
    await new Promise((resolve) => setImmediate(resolve));
  }
  expect(left, 'timers left running by the server').toEqual([]);
}

function openConnections(app: App): Promise<number> {
  return new Promise((resolve, reject) => app.server.getConnections((err, n) => (err ? reject(err) : resolve(n))));
}

/** The error shape of SPEC §3. */
export function expectErrorShape(body: unknown, statusCode: number): asserts body is { message: string } {
  expect(body).toMatchObject({ statusCode, error: expect.any(String), message: expect.any(String) });
  const { message } = body as { message: string };
  expect(message.length, 'an error message says something').toBeGreaterThan(3);
}

export const delay = (ms: number, extra: Partial<Record<string, unknown>> = {}) => ({
  type: 'DELAY' as const,
  payload: { ms },
  ...extra,
});

export const httpGet = (url: string) => ({ type: 'HTTP_GET_JSON' as const, payload: { url } });

/** Submits through the routes and returns the created command. */
export async function submit(app: App, body: unknown = delay(10), headers: Record<string, string> = {}): Promise<Command> {
  const res = await app.inject({ method: 'POST', url: '/commands', payload: body as object, headers });
  expect(res.statusCode, res.body).toBe(201);
  return res.json<Command>();
}

export async function countCommands(store: CommandStore): Promise<number> {
  const counts = await store.countByStatus();
  return Object.values(counts).reduce((a, b) => a + b, 0);
}

/** Listens on a free port of 127.0.0.1 and answers the base URL; the app is closed by useApp. */
export async function listen(app: App): Promise<string> {
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.server.address();
  if (address === null || typeof address === 'string') throw new Error('not listening on a TCP port');
  return `http://127.0.0.1:${address.port}`;
}
