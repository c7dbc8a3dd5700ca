/**
 * Real SSE clients for tests: a plain HTTP socket, `curl -N` as a child process and the
 * `eventsource` package. Each records what it received in a transcript; tests wait on the
 * transcript (woken by each chunk that arrives), never on a sleep. `closeAllClients()` closes
 * every client and kills every curl started here: call it in afterEach.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { request, type IncomingHttpHeaders } from 'node:http';
import { EventSource } from 'eventsource';
import type { Command } from '@agent-executor/common';

export interface SseFrame {
  id?: string;
  event: string;
  data: string;
}

/** One event of our streams: its id, kind and the command it carries. */
export interface CommandEvent {
  id: number;
  event: string;
  command: Command;
}

/** Parses an event stream as it arrives and wakes whoever waits on it. */
export class SseTranscript {
  text = '';
  readonly frames: SseFrame[] = [];
  /** The frames that carry a command (status and progress), parsed, in the order received. */
  readonly events: CommandEvent[] = [];
  readonly comments: string[] = [];
  ended = false;
  private pending = '';
  private readonly wakers = new Set<() => void>();

  constructor(private readonly name: string) {}

  feed(chunk: string): void {
    this.text += chunk;
    this.pending += chunk;
    let cut: number;
    while ((cut = this.pending.indexOf('\n\n')) >= 0) {
      this.parseBlock(this.pending.slice(0, cut));
      this.pending = this.pending.slice(cut + 2);
    }
    this.wake();
  }

  end(): void {
    this.ended = true;
    this.wake();
  }

  /** Resolves with the probe's first truthy answer, re-checked whenever something arrives. */
  until<T>(probe: () => T | undefined | false, what: string, timeoutMs = 5_000): Promise<T> {
    return waitOn(this.wakers, probe, `${this.name}: ${what}`, timeoutMs, () => this.text);
  }

  /** Resolves once the transcript holds at least `n` command events. */
  async untilEvents(n: number, timeoutMs?: number): Promise<CommandEvent[]> {
    await this.until(() => this.events.length >= n, `${n} events`, timeoutMs);
    return this.events;
  }

  private parseBlock(block: string): void {
    const frame: SseFrame = { event: 'message', data: '' };
    const data: string[] = [];
    let fields = 0;
    for (const line of block.split('\n')) {
      if (line.startsWith(':')) {
        this.comments.push(line.slice(1).trim());
        continue;
      }
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
      fields++;
      if (field === 'id') frame.id = value;
      else if (field === 'event') frame.event = value;
      else if (field === 'data') data.push(value);
    }
    frame.data = data.join('\n');
    if (fields === 0) return;
    this.frames.push(frame);
    if (frame.event === 'status' || frame.event === 'progress') {
      this.events.push({ id: Number(frame.id ?? 0), event: frame.event, command: JSON.parse(frame.data) as Command });
    }
  }

  private wake(): void {
    for (const waker of [...this.wakers]) waker();
  }
}

function waitOn<T>(
  wakers: Set<() => void>,
  probe: () => T | undefined | false,
  what: string,
  timeoutMs: number,
  seen: () => string,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const check = (): boolean => {
      let value: T | undefined | false;
      try {
        value = probe();
      } catch (err) {
        done();
        reject(err as Error);
        return true;
      }
      if (value === undefined || value === false) return false;
      done();
      resolve(value);
      return true;
    };
    const timer = setTimeout(() => {
      done();
      reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; received:\n${seen().slice(-4000)}`));
    }, timeoutMs);
    const waker = () => void check();
    const done = () => {
      clearTimeout(timer);
      wakers.delete(waker);
    };
    wakers.add(waker);
    check();
  });
}

const openClients = new Set<{ close: () => void }>();

/** Closes every client opened through this module (sockets, curls, EventSources). */
export function closeAllClients(): void {
  for (const client of [...openClients]) client.close();
}

export interface RawStream {
  status: number;
  headers: IncomingHttpHeaders;
  transcript: SseTranscript;
  /** Resolves once the server has ended the response (or the socket closed). */
  ended: Promise<void>;
  close: () => void;
}

/** A GET over its own socket (no connection pool), resolved when the response head arrives. */
export function openStream(url: string, headers: Record<string, string> = {}): Promise<RawStream> {
  return new Promise((resolve, reject) => {
    const transcript = new SseTranscript(`GET ${url}`);
    let markEnded: () => void = () => {};
    const ended = new Promise<void>((r) => (markEnded = r));
    const req = request(url, { headers: { accept: 'text/event-stream', ...headers }, agent: false }, (res) => {
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => transcript.feed(chunk));
      const finish = () => {
        transcript.end();
        markEnded();
        openClients.delete(client);
      };
      res.once('end', finish);
      res.once('close', finish);
      resolve({ status: res.statusCode ?? 0, headers: res.headers, transcript, ended, close: client.close });
    });
    const client = {
      close: () => {
        req.destroy();
        openClients.delete(client);
      },
    };
    openClients.add(client);
    req.once('error', (err) => {
      transcript.end();
      markEnded();
      reject(err);
    });
    req.end();
  });
}

export interface CurlStream {
  child: ChildProcess;
  transcript: SseTranscript;
  /** Resolves with curl's exit code once it has exited. */
  exited: Promise<number | string>;
  stderr: () => string;
}

/** `curl -sN <url>` as a child process. */
export function curlStream(url: string, args: string[] = []): CurlStream {
  const child = spawn('curl', ['-sSN', ...args, url], { stdio: ['ignore', 'pipe', 'pipe'] });
  const transcript = new SseTranscript(`curl ${url}`);
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => transcript.feed(chunk));
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const client = { close: () => void (child.exitCode === null && child.signalCode === null && child.kill('SIGKILL')) };
  openClients.add(client);
  const exited = new Promise<number | string>((resolve) =>
    child.once('close', (code, signal) => {
      openClients.delete(client);
      transcript.end();
      resolve(code ?? signal ?? 'unknown');
    }),
  );
  return { child, transcript, exited, stderr: () => stderr };
}

export interface EsClient {
  source: EventSource;
  events: CommandEvent[];
  /** Every error event: a dropped stream (readyState CONNECTING) or a refusal (CLOSED, with a code). */
  errors: Array<{ code: number | undefined; readyState: number }>;
  opens: number;
  until<T>(probe: () => T | undefined | false, what: string, timeoutMs?: number): Promise<T>;
  close: () => void;
}

/** The `eventsource` package, with an optional bearer token sent as a header. */
export function eventSource(url: string, options: { token?: string } = {}): EsClient {
  const wakers = new Set<() => void>();
  const wake = () => {
    for (const waker of [...wakers]) waker();
  };
  const { token } = options;
  const source = new EventSource(url, {
    fetch: (input, init) =>
      fetch(input, token === undefined ? init : { ...init, headers: { ...init.headers, Authorization: `Bearer ${token}` } }),
  });
  const client: EsClient = {
    source,
    events: [],
    errors: [],
    opens: 0,
    until: (probe, what, timeoutMs = 5_000) =>
      waitOn(wakers, probe, `EventSource ${url}: ${what}`, timeoutMs, () => JSON.stringify(client.events.map(brief))),
    close: () => {
      source.close();
      openClients.delete(client);
      wake();
    },
  };
  for (const kind of ['status', 'progress']) {
    source.addEventListener(kind, (e) => {
      client.events.push({ id: Number(e.lastEventId), event: kind, command: JSON.parse(e.data as string) as Command });
      wake();
    });
  }
  source.addEventListener('open', () => {
    client.opens++;
    wake();
  });
  source.addEventListener('error', (e) => {
    client.errors.push({ code: (e as { code?: number }).code, readyState: source.readyState });
    wake();
  });
  openClients.add(client);
  return client;
}

/** `[kind, status, percent of a progress event]`: enough to compare a command's life at a glance. */
export function brief(e: CommandEvent): [string, string, number | null] {
  return [e.event, e.command.status, e.event === 'progress' ? (e.command.progress?.percent ?? null) : null];
}
