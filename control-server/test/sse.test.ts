/**
 * Server-Sent Events against a real listening server (in-process, on a temp SQLite file) with
 * real clients: plain sockets, `curl -N` child processes and the `eventsource` package.
 *
 * `npm run mutate sse-session` (measured 86.7 %: 156 of 180 killed or timed out) leaves these
 * mutants of session.ts alive. Equivalent:
 * - `this.socket?.on/off` → `this.socket.on/off`: a live response always has its socket.
 * - `raw.on('drain')` → `on('')`: the socket's own 'drain' listener fires for the same drain.
 * - `if (this.closed) return` in replay() and close(), markClosed()'s guard and `closed = true` →
 *   false, `off('drain')` → `off('')`: once closed the hub has dropped the session and the
 *   response is over; a second close or a write to it changes nothing a client sees.
 * - takesAll → false, the run branch → false: the same bytes, written per event instead of as
 *   one shared run.
 * - tooFarBehind(): `>` → `>=` on both limits: dropped one event or byte sooner.
 * Not equivalent, not killed yet (no test here measures it; each changes memory held, not the
 * bytes a client gets):
 * - `writableLength < WRITE_AHEAD` → true / `<=`, and writeRun's `blocked = true` → false: a
 *   session writes past its 64 KiB write-ahead or past the socket's push-back.
 * - catchUp()'s `if (this.closed || !this.blocked) resolveDrained()` → always: the catch-up reads
 *   its next page before the socket drained.
 * - `unwritten + writableLength` → `-`: bytes held by the socket under-counted for the byte limit.
 * - the drop warning's text and fields (behindEvents/behindBytes): this file's servers log at
 *   `silent`.
 */
import type { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { buildApp, loadConfig, type App, type CommandStore } from '../src/app.js';
import { ConfigError } from '../src/config.js';
import { execTestSql, openTestStore } from './helpers.js';
import { killAll, startServer, tempDir, waitFor } from '../../test-support/processes.js';
import { HttpApi, runDelayToCompletion } from '../../test-support/http-api.js';
import {
  brief,
  closeAllClients,
  curlStream,
  eventSource,
  openStream,
  type CommandEvent,
  type SseFrame,
} from '../../test-support/sse-clients.js';

interface Running {
  app: App;
  store: CommandStore;
  dbPath: string;
  url: string;
  port: number;
  api: HttpApi;
}

let dir: ReturnType<typeof tempDir>;
let running: Running[] = [];

beforeEach(() => {
  dir = tempDir('sse-test');
  running = [];
});

afterEach(async ({ task }) => {
  closeAllClients();
  await killAll();
  for (const { app, store } of running) {
    await app.close();
    await store.close();
    expect(app.sseHub.size, 'SSE sessions left open after close').toBe(0);
  }
  dir.cleanup(task.result?.state !== 'fail');
});

/** Builds the app on a fresh database file and listens on a free port. */
async function start(env: Record<string, string> = {}): Promise<Running> {
  const dbPath = `${dir.path}/commands-${running.length}.db`;
  const config = loadConfig({ LOG_LEVEL: 'silent', DB_PATH: dbPath, ...env });
  const store = await openTestStore(dbPath);
  const app = await buildApp(config, store);
  const entry = { app, store, dbPath, url: '', port: 0, api: new HttpApi('') };
  running.push(entry);
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.server.address();
  if (address === null || typeof address === 'string') throw new Error('not listening on a port');
  entry.port = address.port;
  entry.url = `http://127.0.0.1:${address.port}`;
  entry.api = new HttpApi(entry.url, env.API_TOKEN);
  return entry;
}

/** Fails with a message naming what did not happen, rather than at the test's time limit. */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

const delay = (ms = 5) => ({ type: 'DELAY', payload: { ms } });

/** Deletes the log's events older than `seq` through a second connection, as pruning would. */
async function pruneLogBefore(dbPath: string, seq: number): Promise<void> {
  await execTestSql(dbPath, 'DELETE FROM events WHERE seq < ?', [seq]);
}

/** The frames of a stream other than its `retry:` line. */
function named(transcript: { frames: SseFrame[] }): SseFrame[] {
  return transcript.frames.filter((f) => f.event !== 'message');
}

/** A socket that sends its request and never reads a byte of the answer. */
function stuckClient(port: number, path = '/events'): Socket {
  const socket = connect(port, '127.0.0.1');
  socket.on('error', () => {});
  socket.pause();
  socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n`);
  return socket;
}

/** An HTTP answer's head and body. */
function splitHead(bytes: string): [string, string] {
  const at = bytes.indexOf('\r\n\r\n');
  return [bytes.slice(0, at), bytes.slice(at + 4)];
}

function expectIncreasingIds(events: CommandEvent[]): void {
  const ids = events.map((e) => e.id);
  expect(ids.every((id, i) => i === 0 || id > (ids[i - 1] ?? 0)), `ids not increasing: ${ids.join(',')}`).toBe(true);
}

describe('one command: GET /commands/:id/events', () => {
  test('a DELAY command shows PENDING → RUNNING → progress → COMPLETED in order, then the stream ends (curl, EventSource)', async () => {
    const { api, url } = await start();
    const command = await api.submit(delay(100));
    const curl = curlStream(`${url}/commands/${command.id}/events`);
    const es = eventSource(`${url}/commands/${command.id}/events`);
    // The current state comes first, so both are connected before the agent acts.
    await curl.transcript.untilEvents(1);
    await es.until(() => es.events.length >= 1, 'the current state');

    await runDelayToCompletion(api, command.id);

    expect(await curl.exited, `curl stderr: ${curl.stderr()}`).toBe(0);
    const expected = [
      ['status', 'PENDING', null],
      ['status', 'RUNNING', null],
      ['progress', 'RUNNING', 50],
      ['status', 'COMPLETED', null],
    ];
    expect(curl.transcript.text.split('\n')[0]).toBe('retry: 2000');
    expect(curl.transcript.events.map(brief)).toEqual(expected);
    expectIncreasingIds(curl.transcript.events);
    expect(curl.transcript.events.every((e) => e.command.id === command.id)).toBe(true);
    expect(curl.transcript.events.at(-1)?.command.result).toEqual({ ok: true, tookMs: 5 });

    await es.until(() => es.events.length >= 4, 'the whole life');
    expect(es.events.map(brief)).toEqual(expected);
    expect(es.events.map((e) => e.id)).toEqual(curl.transcript.events.map((e) => e.id));
    // The server ended the stream; EventSource reconnects with the last id after `retry`, and is
    // told with a 204 that there is nothing more, so it stops instead of waiting forever.
    await es.until(() => es.source.readyState === es.source.CLOSED, 'the 204 that stops reconnecting', 6_000);
    expect(es.errors.at(-1)?.code).toBe(204);
    expect(es.events).toHaveLength(4);
  });

  test('a finished command: the stream shows its final state and ends at once', async () => {
    const { api, url } = await start();
    const command = await api.submit(delay());
    await runDelayToCompletion(api, command.id);
    const curl = curlStream(`${url}/commands/${command.id}/events`);
    expect(await curl.exited).toBe(0);
    expect(curl.transcript.events.map(brief)).toEqual([['status', 'COMPLETED', null]]);
  });

  test('reconnecting after the end (Last-Event-ID at or past the final event) answers 204, so clients stop', async () => {
    const { api, url } = await start();
    const command = await api.submit(delay());
    await runDelayToCompletion(api, command.id);
    const whole = curlStream(`${url}/commands/${command.id}/events?lastEventId=0`);
    expect(await whole.exited).toBe(0);
    const last = whole.transcript.events.at(-1);
    expect(whole.transcript.events.map(brief)).toEqual([
      ['status', 'PENDING', null],
      ['status', 'RUNNING', null],
      ['progress', 'RUNNING', 50],
      ['status', 'COMPLETED', null],
    ]);
    for (const headers of [{ 'last-event-id': String(last?.id) }, { 'last-event-id': String((last?.id ?? 0) + 100) }]) {
      const again = await openStream(`${url}/commands/${command.id}/events`, headers);
      expect(again.status).toBe(204);
      await again.ended;
    }
    const viaQuery = await openStream(`${url}/commands/${command.id}/events?lastEventId=${last?.id}`);
    expect(viaQuery.status).toBe(204);
    // One id before the end: the final event, then the end.
    const before = curlStream(`${url}/commands/${command.id}/events`, ['-H', `Last-Event-ID: ${(last?.id ?? 0) - 1}`]);
    expect(await before.exited).toBe(0);
    expect(before.transcript.events.map((e) => e.id)).toEqual([last?.id]);
  });

  test('404 for an unknown id; 400 for a bad Last-Event-ID', async () => {
    const { url } = await start();
    const missing = await fetch(`${url}/commands/no-such-command/events`);
    expect(missing.status).toBe(404);
    expect(await missing.json()).toMatchObject({ statusCode: 404, error: 'Not Found', message: expect.stringContaining('no-such-command') });

    for (const path of ['/events', '/commands/no-such-command/events']) {
      for (const bad of ['abc', '-1', '1.5', '99999999999999999999']) {
        const res = await fetch(`${url}${path}`, { headers: { 'last-event-id': bad } });
        expect(res.status, `${path} Last-Event-ID: ${bad}`).toBe(400);
        expect(await res.json()).toMatchObject({ statusCode: 400, message: expect.stringContaining('Last-Event-ID') });
      }
      const query = await fetch(`${url}${path}?lastEventId=x1`);
      expect(query.status, `${path}?lastEventId=x1`).toBe(400);
      await query.body?.cancel();
    }
  });
});

describe('every change: GET /events', () => {
  test('the stream starts with retry: 2000, has SSE headers, and pings with SSE_PING_MS', async () => {
    const { url } = await start({ SSE_PING_MS: '100' });
    const stream = await openStream(`${url}/events`);
    expect(stream.status).toBe(200);
    expect(stream.headers['content-type']).toMatch(/^text\/event-stream/);
    expect(stream.headers['cache-control']).toBe('no-cache');
    expect(stream.headers['x-accel-buffering']).toBe('no');
    await stream.transcript.until(() => stream.transcript.comments.filter((c) => c === 'ping').length >= 3, '3 pings', 3_000);
    expect(stream.transcript.text.split('\n')[0]).toBe('retry: 2000');
    expect(stream.transcript.text).toMatch(/^retry: 2000\n\n(: ping\n\n){3,}$/);
  });

  test('resume with Last-Event-ID or ?lastEventId=: exactly the missed events in order, then live ones', async () => {
    const { api, url } = await start();
    // A witness stays connected throughout and sees every event.
    const witness = await openStream(`${url}/events`);
    const first = await openStream(`${url}/events`);
    const a = await api.submit(delay());
    const b = await api.submit(delay());
    await first.transcript.untilEvents(2);
    const lastSeen = first.transcript.events.at(-1)?.id ?? 0;
    first.close();
    await first.ended;

    // Changes while disconnected: a submit, a claim, a progress and a completion.
    const c = await api.submit(delay());
    await runDelayToCompletion(api, a.id);
    await witness.transcript.untilEvents(6);
    const missed = witness.transcript.events.filter((e) => e.id > lastSeen);
    expect(missed.map((e) => [e.command.id, ...brief(e)])).toEqual([
      [c.id, 'status', 'PENDING', null],
      [a.id, 'status', 'RUNNING', null],
      [a.id, 'progress', 'RUNNING', 50],
      [a.id, 'status', 'COMPLETED', null],
    ]);

    const byHeader = await openStream(`${url}/events`, { 'last-event-id': String(lastSeen) });
    const byQuery = await openStream(`${url}/events?lastEventId=${lastSeen}`);
    for (const resumed of [byHeader, byQuery]) {
      expect(resumed.status).toBe(200);
      expect(await resumed.transcript.untilEvents(4)).toEqual(missed);
    }
    // Then live ones, with no duplicate of the replay.
    const live = await api.cancel(b.id);
    for (const resumed of [byHeader, byQuery, witness]) {
      const events = await resumed.transcript.untilEvents(resumed === witness ? 7 : 5);
      expect(events.at(-1)?.command).toMatchObject({ id: live.id, status: 'FAILED', error: 'canceled' });
      expectIncreasingIds(events);
    }
    expect(byHeader.transcript.events).toEqual(witness.transcript.events.filter((e) => e.id > lastSeen));
    expect(byQuery.transcript.events).toEqual(byHeader.transcript.events);
  });

  test('resume while changes keep coming, over a backlog longer than one replay page: no gap, no duplicate', async () => {
    const { api, url, store } = await start();
    const witness = await openStream(`${url}/events`);
    await Promise.all(Array.from({ length: 1_100 }, (_, i) => store.submit({ type: 'DELAY', payload: { ms: i } })));
    // Writes go on while the late client replays the backlog.
    let writing = true;
    const writer = (async () => {
      for (let i = 0; writing && i < 2_000; i++) await api.submit(delay(i));
    })();
    const late = await openStream(`${url}/events?lastEventId=0`);
    await late.transcript.untilEvents(1_200, 10_000);
    writing = false;
    await writer;
    const final = await api.submit(delay());
    const all = await witness.transcript.until(
      () => witness.transcript.events.at(-1)?.command.id === final.id && witness.transcript.events,
      'the final submit',
    );
    await late.transcript.until(() => late.transcript.events.at(-1)?.command.id === final.id, 'the final submit', 10_000);
    expect(late.transcript.events.length).toBe(all.length);
    expect(late.transcript.events.map((e) => e.id)).toEqual(all.map((e) => e.id));
  });

  test('filters: ?commandId= and ?status=, live and on replay', async () => {
    const { api, url } = await start();
    const a = await api.submit(delay());
    const completed = await openStream(`${url}/events?status=COMPLETED`);
    const pending = await openStream(`${url}/events?status=PENDING`);
    const b = await api.submit(delay());
    const onlyB = await openStream(`${url}/events?commandId=${b.id}`);
    // a is claimed first (the oldest), so its events come between b's PENDING and b's RUNNING.
    await runDelayToCompletion(api, a.id);
    await runDelayToCompletion(api, b.id);
    const c = await api.submit(delay());
    const d = await api.submit(delay());
    await api.cancel(c.id);
    await runDelayToCompletion(api, d.id);

    // Each filter waits for its last matching event: everything before it was offered in order.
    await completed.transcript.until(() => completed.transcript.events.some((e) => e.command.id === d.id), 'd COMPLETED');
    expect(completed.transcript.events.map((e) => [e.command.id, e.command.status])).toEqual([
      [a.id, 'COMPLETED'],
      [b.id, 'COMPLETED'],
      [d.id, 'COMPLETED'],
    ]);
    await pending.transcript.until(() => pending.transcript.events.some((e) => e.command.id === d.id), 'd PENDING');
    expect(pending.transcript.events.map((e) => [e.command.id, e.command.status])).toEqual([
      [b.id, 'PENDING'],
      [c.id, 'PENDING'],
      [d.id, 'PENDING'],
    ]);
    // ?commandId= on /events does not end by itself (only /commands/:id/events does).
    await onlyB.transcript.until(() => onlyB.transcript.events.some((e) => e.command.status === 'COMPLETED'), 'b COMPLETED');
    expect(onlyB.transcript.events.map((e) => [e.command.id, ...brief(e)])).toEqual([
      [b.id, 'status', 'RUNNING', null],
      [b.id, 'progress', 'RUNNING', 50],
      [b.id, 'status', 'COMPLETED', null],
    ]);
    expect(onlyB.transcript.ended).toBe(false);

    // Filters apply to the replay too; a live submit marks the end of the replay.
    const replayPending = await openStream(`${url}/events?status=PENDING&lastEventId=0`);
    const replayB = await openStream(`${url}/events?commandId=${b.id}&lastEventId=0`);
    const e = await api.submit(delay());
    await replayPending.transcript.until(() => replayPending.transcript.events.some((x) => x.command.id === e.id), 'e PENDING');
    expect(replayPending.transcript.events.map((x) => [x.command.id, x.command.status])).toEqual(
      [a, b, c, d, e].map((x) => [x.id, 'PENDING']),
    );
    await replayB.transcript.until(() => replayB.transcript.events.length >= 4, "b's 4 events");
    expect(replayB.transcript.events.map(brief)).toEqual([
      ['status', 'PENDING', null],
      ['status', 'RUNNING', null],
      ['progress', 'RUNNING', 50],
      ['status', 'COMPLETED', null],
    ]);

    const badStatus = await fetch(`${url}/events?status=DONE`);
    expect(badStatus.status).toBe(400);
    await badStatus.body?.cancel();
  });

  test('200 concurrent EventSource clients all receive the same event; none is held after they disconnect', async () => {
    const { api, url, app, store } = await start();
    const emitter = store.events as unknown as EventEmitter;
    const listenersBefore = emitter.listenerCount('event');
    const clients = Array.from({ length: 200 }, () => eventSource(`${url}/events`));
    await Promise.all(clients.map((c) => c.until(() => c.opens > 0, 'open', 10_000)));
    expect(app.sseHub.size).toBe(200);

    const command = await api.submit(delay());
    await Promise.all(clients.map((c) => c.until(() => c.events.length >= 1, 'the event', 10_000)));
    const seen = new Set(clients.map((c) => JSON.stringify([c.events.length, c.events[0]?.id, c.events[0]?.command.id])));
    expect([...seen]).toEqual([JSON.stringify([1, clients[0]?.events[0]?.id, command.id])]);
    expect(emitter.listenerCount('event'), 'one store listener for all streams').toBe(listenersBefore);

    for (const c of clients) c.close();
    await waitFor(() => app.sseHub.size === 0, { what: 'the server to release every session' });
    expect(emitter.listenerCount('event')).toBe(listenersBefore);
  });
});

describe('one serialisation per transition', () => {
  test('a submit answer carries the same command JSON as the SSE event of that submit, byte for byte', async () => {
    const { url } = await start();
    const stream = await openStream(`${url}/events`);
    const post = async (path: string, body: unknown) => {
      const res = await fetch(`${url}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      const text = await res.text();
      expect(res.status, text).toBe(201);
      expect(res.headers.get('content-type')).toBe('application/json; charset=utf-8');
      return text;
    };
    const single = await post('/commands', { type: 'HTTP_GET_JSON', payload: { url: 'http://127.0.0.1:9/é?q="x"&r=\\' } });
    const batch = await post('/commands/batch', {
      commands: [
        { type: 'DELAY', payload: { ms: 1 }, queue: 'q', priority: 3 },
        { type: 'HTTP_GET_JSON', payload: { url: 'http://127.0.0.1:9/?a=1' }, runAt: new Date(Date.now() + 3_600_000).toISOString() },
      ],
    });
    await stream.transcript.untilEvents(3);
    const data = stream.transcript.frames.filter((f) => f.event === 'status').map((f) => f.data);
    expect(data).toHaveLength(3);
    const submitted = (json: string) => `{"commandId":${JSON.stringify((JSON.parse(json) as { id: string }).id)},${json.slice(1)}`;
    expect(single).toBe(submitted(data[0]!));
    expect(batch).toBe(`{"commands":[${submitted(data[1]!)},${submitted(data[2]!)}]}`);
    // The same bytes JSON.stringify makes of the answer's objects: the wire format is unchanged.
    const singleCommand = JSON.parse(data[0]!) as { id: string };
    expect(single).toBe(JSON.stringify({ commandId: singleCommand.id, ...singleCommand }));
    expect(JSON.parse(data[0]!)).toMatchObject({ status: 'PENDING', payload: { url: 'http://127.0.0.1:9/é?q="x"&r=\\' } });
  });
});

describe('auth, shutdown, slow clients', () => {
  const TOKEN = 'sse-test-token-0123456789';

  test('with API_TOKEN: 401 without a token, OK with a Bearer header or ?access_token=', async () => {
    const { url, api } = await start({ API_TOKEN: TOKEN });
    for (const path of ['/events', `/commands/x/events`, `/events?access_token=wrong-token-0123456789`]) {
      const res = await fetch(`${url}${path}`);
      expect(res.status, path).toBe(401);
      expect(res.headers.get('www-authenticate')).toBe('Bearer');
      await res.body?.cancel();
    }
    const wrong = await fetch(`${url}/events`, { headers: { authorization: 'Bearer wrong-token-0123456789' } });
    expect(wrong.status).toBe(401);
    await wrong.body?.cancel();

    const byHeader = await openStream(`${url}/events`, { authorization: `Bearer ${TOKEN}` });
    const byQuery = await openStream(`${url}/events?access_token=${TOKEN}`);
    const es = eventSource(`${url}/events`, { token: TOKEN });
    const esQuery = eventSource(`${url}/events?access_token=${TOKEN}`);
    const refused = eventSource(`${url}/events`);
    expect([byHeader.status, byQuery.status]).toEqual([200, 200]);
    await es.until(() => es.opens > 0, 'open');
    await esQuery.until(() => esQuery.opens > 0, 'open');
    const command = await api.submit(delay());
    for (const stream of [byHeader, byQuery]) expect((await stream.transcript.untilEvents(1))[0]?.command.id).toBe(command.id);
    for (const client of [es, esQuery]) await client.until(() => client.events[0]?.command.id === command.id, 'the event');
    await refused.until(() => refused.source.readyState === refused.source.CLOSED, 'the refusal');
    expect(refused.errors.at(-1)?.code).toBe(401);
  });

  test('a token in ?access_token= never reaches the server log (real process, LOG_LEVEL=info)', async () => {
    const server = await startServer({ DB_PATH: `${dir.path}/logged.db`, API_TOKEN: TOKEN, LOG_LEVEL: 'info' });
    const wrong = 'wrong-token-in-url-0123456789';
    const denied = await fetch(`${server.url}/events?access_token=${wrong}`);
    expect(denied.status).toBe(401);
    await denied.body?.cancel();
    const curl = curlStream(`${server.url}/events?status=PENDING&access_token=${TOKEN}`);
    await curl.transcript.until(() => curl.transcript.text.startsWith('retry: 2000'), 'the stream');
    await waitFor(() => (server.output().match(/access_token=\[redacted\]/g) ?? []).length >= 2, {
      what: `both requests in the log:\n${server.output()}`,
    });
    expect(server.output()).toContain('/events?status=PENDING&access_token=[redacted]');
    expect(server.output()).not.toContain(TOKEN);
    expect(server.output()).not.toContain(wrong);
  });

  test('app.close() ends open streams promptly: curl exits, sockets end, EventSource sees the end', async () => {
    const entry = await start();
    const { url, app } = entry;
    const raw = await openStream(`${url}/events`);
    const curl = curlStream(`${url}/events`);
    const es = eventSource(`${url}/events`);
    await curl.transcript.until(() => curl.transcript.text.startsWith('retry'), 'the first line');
    await es.until(() => es.opens > 0, 'open');
    expect(app.sseHub.size).toBe(3);

    const started = Date.now();
    await app.close();
    const took = Date.now() - started;
    expect(took, 'close waited for the streams').toBeLessThan(2_000);
    await raw.ended;
    expect(await curl.exited).toBe(0);
    await es.until(() => es.errors.length > 0, 'the end of the stream');
    expect(app.sseHub.size).toBe(0);
  });

  test('on the wire: live events in well-formed HTTP/1.1 chunks (written to the socket directly); unchunked to HTTP/1.0', async () => {
    const { api, port } = await start();
    /** Every byte of the answer to `GET /events` over a raw socket. */
    const rawStream = (version: string) => {
      const socket = connect(port, '127.0.0.1');
      let bytes = '';
      socket.setEncoding('latin1');
      socket.on('data', (chunk: string) => (bytes += chunk));
      socket.on('error', () => {});
      socket.write(`GET /events ${version}\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n`);
      return { socket, bytes: () => bytes };
    };
    const v11 = rawStream('HTTP/1.1');
    const v10 = rawStream('HTTP/1.0');
    await waitFor(() => v11.bytes().includes('retry:') && v10.bytes().includes('retry:'), { what: 'both streams open' });
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await api.submit(delay())).id);
    const has = (text: string, id: string) => text.includes(`"id":"${id}"`);
    await waitFor(() => ids.every((id) => has(v11.bytes(), id) && has(v10.bytes(), id)), { what: 'the 3 events on both' });

    const [head11, body11] = splitHead(v11.bytes());
    expect(head11).toMatch(/^HTTP\/1\.1 200/);
    expect(head11.toLowerCase()).toContain('transfer-encoding: chunked');
    // Chunk by chunk: each length is the exact byte count of what follows it, then CRLF.
    const chunks: string[] = [];
    let rest = body11;
    while (rest.length > 0) {
      const lineEnd = rest.indexOf('\r\n');
      const size = Number.parseInt(rest.slice(0, lineEnd), 16);
      expect(Number.isNaN(size), `chunk size line ${JSON.stringify(rest.slice(0, 20))}`).toBe(false);
      const data = rest.slice(lineEnd + 2, lineEnd + 2 + size);
      expect(rest.slice(lineEnd + 2 + size, lineEnd + 4 + size), 'CRLF after the chunk').toBe('\r\n');
      chunks.push(data);
      rest = rest.slice(lineEnd + 4 + size);
    }
    const text11 = chunks.join('');
    expect(text11.startsWith('retry: 2000\n\n')).toBe(true);
    const frames11 = text11.split('\n\n').filter((f) => f.startsWith('id: '));
    expect(frames11.map((f) => JSON.parse(f.split('\ndata: ')[1] ?? '').id)).toEqual(ids);

    const [head10, body10] = splitHead(v10.bytes());
    expect(head10).toMatch(/^HTTP\/1\.1 200/);
    expect(head10.toLowerCase()).not.toContain('transfer-encoding');
    expect(body10.startsWith('retry: 2000\n\n')).toBe(true);
    const frames10 = body10.split('\n\n').filter((f) => f.startsWith('id: '));
    expect(frames10.map((f) => JSON.parse(f.split('\ndata: ')[1] ?? '').id)).toEqual(ids);
    v11.socket.destroy();
    v10.socket.destroy();
  });

  test('a client that never reads is dropped past SSE_MAX_QUEUED, socket and all; a reading one keeps up', async () => {
    const { api, url, app, port } = await start({ SSE_MAX_QUEUED: '20' });
    const reader = await openStream(`${url}/events`);
    // A socket that sends its request and never reads a byte of the answer.
    const accepted = new Map<number | undefined, Socket>();
    app.server.on('connection', (socket: Socket) => accepted.set(socket.remotePort, socket));
    const stuck = connect(port, '127.0.0.1');
    stuck.write(`GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n`);
    stuck.on('error', () => {});
    await waitFor(() => app.sseHub.size === 2, { what: 'both sessions' });

    // Each report carries a 200 kB result: a few MB fill the socket buffers, then the queue.
    const big = { blob: 'x'.repeat(200_000) };
    let changes = 0;
    for (let i = 0; i < 150 && app.sseHub.size === 2; i++) {
      const command = await api.submit(delay());
      const claimed = await api.claim();
      expect(claimed.id).toBe(command.id);
      await api.report(claimed, { status: 'COMPLETED', result: big });
      changes += 3;
    }
    expect(app.sseHub.size, 'the stuck client was dropped').toBe(1);
    // Dropped means the socket too: its unread megabytes are not kept in buffers until shutdown.
    // (The client never reads, so only the server's side of the socket can tell.)
    const onServer = accepted.get(stuck.localPort);
    expect(onServer, "the server's side of the stuck socket").toBeDefined();
    if (onServer && !onServer.destroyed) {
      await within(new Promise((resolve) => onServer.once('close', resolve)), 5_000, 'the server to close the dropped socket');
    }
    await reader.transcript.untilEvents(changes, 10_000);
    expectIncreasingIds(reader.transcript.events);
    // An operator sees it in /metrics (scraped twice: a counter, not a reading that doubles).
    for (let scrape = 0; scrape < 2; scrape++) {
      const metrics = (await app.inject({ url: '/metrics' })).body;
      expect(metrics).toMatch(/^agent_executor_sse_clients_dropped_total 1$/m);
    }

    const started = Date.now();
    await app.close();
    expect(Date.now() - started, 'close waited for the stuck socket').toBeLessThan(2_000);
    stuck.destroy();
  });

  test('a client that hangs up is let go at once: its session leaves the hub, the others keep receiving', async () => {
    const { url, app, api } = await start();
    const staying = await openStream(`${url}/events`);
    const leaving = await openStream(`${url}/events`);
    await waitFor(() => app.sseHub.size === 2, { what: 'both sessions' });
    leaving.close();
    await waitFor(() => app.sseHub.size === 1, { what: 'the hung-up session to leave the hub', timeoutMs: 5_000 });
    await api.submit(delay());
    await staying.transcript.untilEvents(1, 5_000);
    expect(app.sseHub.size).toBe(1);
  });

  test('a client far behind catches up from the log instead of being dropped (backlog > SSE_MAX_QUEUED)', async () => {
    const { url, app, store } = await start({ SSE_MAX_QUEUED: '20' });
    for (let i = 0; i < 300; i++) await store.submit({ type: 'DELAY', payload: { ms: i } });
    const late = await openStream(`${url}/events?lastEventId=0`);
    const events = await late.transcript.untilEvents(300);
    expect(events.map((e) => e.command.payload.ms)).toEqual(Array.from({ length: 300 }, (_, i) => i));
    expect(app.sseHub.size).toBe(1);
  });

  test('a client that stops reading during its catch-up is dropped once live events pile up past the limit', async () => {
    const { api, app, port } = await start({ SSE_MAX_QUEUED: '20' });
    // A backlog of about 8 MB: more than the socket buffers hold.
    const big = { blob: 'x'.repeat(250_000) };
    for (let i = 0; i < 32; i++) {
      await api.submit(delay());
      await api.report(await api.claim(), { status: 'COMPLETED', result: big });
    }
    const stuck = connect(port, '127.0.0.1');
    stuck.write(`GET /events?lastEventId=0 HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n`);
    stuck.on('error', () => {});
    await waitFor(() => app.sseHub.size === 1, { what: 'the session' });
    // Its catch-up is stuck on a full socket; live changes wait for it, up to the limit.
    for (let i = 0; i < 100 && app.sseHub.size === 1; i++) await api.submit(delay());
    expect(app.sseHub.size, 'the stuck client was dropped').toBe(0);
    stuck.destroy();
  });
});

describe('a gap in the log: the reset event (SPEC §4)', () => {
  test('/events resumed from before the oldest event kept: reset first, then what the log holds, then live ones; none at the edge', async () => {
    const { api, url, dbPath } = await start();
    const witness = await openStream(`${url}/events`);
    const commands: Awaited<ReturnType<HttpApi['submit']>>[] = [];
    for (let i = 0; i < 4; i++) commands.push(await api.submit(delay()));
    await runDelayToCompletion(api, commands[0]?.id ?? '');
    const all = await witness.transcript.untilEvents(7);
    const oldest = all[4]?.id ?? 0;
    await pruneLogBefore(dbPath, oldest);
    const kept = all.filter((e) => e.id >= oldest);
    const reset = { id: String(oldest - 1), event: 'reset', data: JSON.stringify({ oldestEventId: oldest }) };

    // Two before the oldest: event oldest-1 is gone. lastEventId=0: all before the oldest are gone.
    const gap = await openStream(`${url}/events`, { 'last-event-id': String(oldest - 2) });
    const fromStart = await openStream(`${url}/events?lastEventId=0`);
    // Exactly one before the oldest: nothing lost. Beyond the newest: nothing after it to lose.
    const edge = await openStream(`${url}/events?lastEventId=${oldest - 1}`);
    const ahead = await openStream(`${url}/events`, { 'last-event-id': String((all.at(-1)?.id ?? 0) + 1000) });
    for (const stream of [gap, fromStart, edge]) expect(await stream.transcript.untilEvents(kept.length)).toEqual(kept);
    expect(named(gap.transcript)[0]).toEqual(reset);
    expect(named(fromStart.transcript)[0]).toEqual(reset);
    expect(named(edge.transcript).map((f) => f.event)).not.toContain('reset');

    const live = await api.cancel(commands[1]?.id ?? '');
    for (const stream of [gap, fromStart, edge, ahead]) {
      await stream.transcript.until(() => stream.transcript.events.at(-1)?.command.status === 'FAILED', 'the live cancel');
    }
    for (const stream of [gap, fromStart]) {
      expect(named(stream.transcript).filter((f) => f.event === 'reset'), 'one reset').toHaveLength(1);
      expect(stream.transcript.events.at(-1)?.command.id).toBe(live.id);
      expectIncreasingIds(stream.transcript.events);
    }
    expect(named(ahead.transcript).map((f) => [f.event, JSON.parse(f.data).status])).toEqual([['status', 'FAILED']]);
  });

  test('the OpenAPI document describes the reset event on both streams', async () => {
    const { url } = await start();
    const doc = (await (await fetch(`${url}/openapi.json`)).json()) as { paths: Record<string, { get: { description?: string } }> };
    for (const path of ['/events', '/commands/{id}/events']) expect(doc.paths[path]?.get.description, path).toContain('event: reset');
  });

  test('an empty log has lost nothing: no reset for lastEventId=0 or an id beyond it', async () => {
    const { api, url } = await start();
    const zero = await openStream(`${url}/events?lastEventId=0`);
    const ahead = await openStream(`${url}/events`, { 'last-event-id': '5' });
    const command = await api.submit(delay());
    for (const stream of [zero, ahead]) {
      await stream.transcript.untilEvents(1);
      expect(named(stream.transcript).map((f) => [f.event, f.id])).toEqual([['status', '1']]);
      expect(stream.transcript.events[0]?.command.id).toBe(command.id);
    }
  });

  test('/commands/:id/events across a gap: reset, the command as it is now, its changes to the end; finished: no 204 until told', async () => {
    const { api, url, dbPath } = await start();
    const a = await api.submit(delay()); // 1
    const claimed = await api.claim(); // 2: a RUNNING
    const b = await api.submit(delay()); // 3
    await pruneLogBefore(dbPath, 3);
    const reset = { id: '2', event: 'reset', data: JSON.stringify({ oldestEventId: 3 }) };

    // a has no event left in the log: its current state goes out without an id.
    const streamA = await openStream(`${url}/commands/${a.id}/events`, { 'last-event-id': '1' });
    await streamA.transcript.untilEvents(1);
    expect(named(streamA.transcript)[0]).toEqual(reset);
    expect(named(streamA.transcript)[1]?.id).toBeUndefined();
    expect(streamA.transcript.events[0]?.command).toMatchObject({ id: a.id, status: 'RUNNING' });
    // b's newest event is still kept: it goes out with its id, so a reconnect resumes after it.
    const streamB = await openStream(`${url}/commands/${b.id}/events?lastEventId=0`);
    await streamB.transcript.untilEvents(1);
    expect(named(streamB.transcript).map((f) => [f.event, f.id])).toEqual([['reset', '2'], ['status', '3']]);

    await api.heartbeat(claimed, { percent: 50, message: 'halfway' });
    await api.report(claimed, { status: 'COMPLETED', result: { ok: true, tookMs: 5 } });
    await within(streamA.ended, 5_000, "the end of a's stream");
    expect(streamA.transcript.events.map(brief)).toEqual([
      ['status', 'RUNNING', null],
      ['progress', 'RUNNING', 50],
      ['status', 'COMPLETED', null],
    ]);

    // a finished, and every event of it is pruned: a client resuming from before the gap may not
    // have seen the end, so it gets reset and the final state (not a 204), then the stream ends.
    const c = await api.submit(delay());
    const cStream = await openStream(`${url}/commands/${c.id}/events`);
    const cEvent = await cStream.transcript.untilEvents(1);
    await pruneLogBefore(dbPath, cEvent[0]?.id ?? 0);
    const finished = await openStream(`${url}/commands/${a.id}/events`, { 'last-event-id': '1' });
    await within(finished.ended, 5_000, 'the end of the stream of a finished command');
    expect(named(finished.transcript).map((f) => f.event)).toEqual(['reset', 'status']);
    expect(finished.transcript.events[0]?.command.status).toBe('COMPLETED');
    // Reconnecting with the reset's id (what EventSource does) is told the stream is over.
    const again = await openStream(`${url}/commands/${a.id}/events`, { 'last-event-id': named(finished.transcript)[0]?.id ?? '' });
    expect(again.status).toBe(204);
  });
});

describe('memory a slow client holds is bounded in bytes', () => {
  test('a client that never reads is dropped past SSE_MAX_QUEUED_BYTES, however few the events', async () => {
    const { api, url, app, port } = await start({ SSE_MAX_QUEUED: '1000000', SSE_MAX_QUEUED_BYTES: String(1024 * 1024) });
    const reader = await openStream(`${url}/events`);
    const stuck = stuckClient(port);
    await waitFor(() => app.sseHub.size === 2, { what: 'both sessions' });
    // 200 kB a report: the kernel's socket buffers take a few MB, then the limit counts.
    const big = { blob: 'x'.repeat(200_000) };
    let changes = 0;
    for (let i = 0; i < 100 && app.sseHub.size === 2; i++) {
      await api.submit(delay());
      await api.report(await api.claim(), { status: 'COMPLETED', result: big });
      changes += 3;
    }
    expect(app.sseHub.size, 'the stuck client was dropped').toBe(1);
    expect(changes, 'dropped after a few MB, not hundreds of events').toBeLessThan(150);
    await reader.transcript.untilEvents(changes, 10_000);
    expectIncreasingIds(reader.transcript.events);
    stuck.destroy();
  });

  test('a bad SSE_MAX_QUEUED_BYTES stops the server, naming it', () => {
    for (const bad of ['1000', 'lots', '-1']) {
      expect(() => loadConfig({ SSE_MAX_QUEUED_BYTES: bad })).toThrow(ConfigError);
      expect(() => loadConfig({ SSE_MAX_QUEUED_BYTES: bad })).toThrow(/SSE_MAX_QUEUED_BYTES/);
    }
    expect(loadConfig({}).sseMaxQueuedBytes).toBe(4 * 1024 * 1024);
  });

  test('200 clients that never read, during 12 MB of results each: all dropped, server RSS bounded (real process)', async () => {
    const server = await startServer({ DB_PATH: `${dir.path}/flood.db`, LOG_LEVEL: 'error' });
    const api = new HttpApi(server.url);
    const rss = () => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${server.pid}/status`, 'utf8'))?.[1] ?? NaN) * 1024;
    const metrics = async () => await (await fetch(`${server.url}/metrics`)).text();
    const sseClients = async () => Number(/agent_executor_sse_clients (\d+)/.exec(await metrics())?.[1] ?? NaN);
    const dropped = async () => Number(/agent_executor_sse_clients_dropped_total (\d+)/.exec(await metrics())?.[1] ?? NaN);
    // A reader that resumes with Last-Event-ID when dropped, as a browser does: on a loaded machine
    // this test process falls 4 MB behind too (it parses every 200 KB event while it submits), and
    // the server rightly drops it; it must still end with every event, in order, once.
    const reader = eventSource(`${server.url}/events`);
    const stuck = Array.from({ length: 200 }, () => stuckClient(server.port));
    let sampler: NodeJS.Timeout | undefined;
    try {
      await waitFor(async () => (await sseClients()) === 201, { what: '201 sessions' });
      const before = rss();
      let peak = before;
      sampler = setInterval(() => (peak = Math.max(peak, rss())), 20);
      const big = { blob: 'x'.repeat(200_000) };
      for (let i = 0; i < 60; i++) {
        await api.submit(delay());
        await api.report(await api.claim(), { status: 'COMPLETED', result: big });
      }
      // Each drop waits for the server to write to that client past the limit: 200 of them behind
      // a loaded machine's other test files took longer than the default 10 s once. The reader's
      // own drops (each one an error event before it resumes) are not the stuck clients'.
      await waitFor(async () => (await dropped()) - reader.errors.length >= 200, { what: 'every stuck client dropped', timeoutMs: 40_000 });
      clearInterval(sampler);
      // Before: each stuck client held its own copy of what it was sent, ~2 MB each (+410 MB).
      expect(peak - before, `RSS ${Math.round(before / 2 ** 20)} → ${Math.round(peak / 2 ** 20)} MB`).toBeLessThan(150 * 2 ** 20);
      await reader.until(() => reader.events.length >= 180, '180 events', 30_000);
      expectIncreasingIds(reader.events);
    } finally {
      // Stopped before the server is: a sample read after its exit would throw (no /proc entry).
      clearInterval(sampler);
      for (const socket of stuck) socket.destroy();
    }
  }, 120_000);
});
