/** A minimal Server-Sent Events reader over node:http, for the bench's own bookkeeping streams. */
import { request, type ClientRequest } from 'node:http';

export interface SseFrame {
  id?: string;
  event: string;
  data: string;
}

/** Splits a byte stream into SSE frames (comments are dropped). */
export class SseParser {
  private pending = '';

  constructor(private readonly onFrame: (frame: SseFrame) => void) {}

  feed(chunk: string): void {
    this.pending += chunk;
    let cut: number;
    while ((cut = this.pending.indexOf('\n\n')) >= 0) {
      const block = this.pending.slice(0, cut);
      this.pending = this.pending.slice(cut + 2);
      const frame: SseFrame = { event: 'message', data: '' };
      const data: string[] = [];
      for (const line of block.split('\n')) {
        if (line === '' || line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
        if (field === 'id') frame.id = value;
        else if (field === 'event') frame.event = value;
        else if (field === 'data') data.push(value);
      }
      frame.data = data.join('\n');
      if (data.length > 0) this.onFrame(frame);
    }
  }
}

export interface SseStream {
  /** Resolves once the response headers arrived (the server registered the stream). */
  opened: Promise<void>;
  /** False once the response ended (the server closed the stream) or failed. */
  isOpen: () => boolean;
  close: () => void;
}

export function openSse(url: string, onFrame: (frame: SseFrame) => void): SseStream {
  const parser = new SseParser(onFrame);
  let req: ClientRequest | undefined;
  let open = true;
  const opened = new Promise<void>((resolve, reject) => {
    req = request(url, { headers: { accept: 'text/event-stream' }, agent: false }, (res) => {
      if (res.statusCode !== 200) {
        reject(new Error(`SSE ${url} answered ${res.statusCode}`));
        res.resume();
        return;
      }
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => parser.feed(chunk));
      res.on('error', () => undefined);
      res.on('close', () => (open = false));
      resolve();
    });
    req.on('error', (err) => {
      open = false;
      reject(err);
    });
    req.end();
  });
  // Whoever awaits `opened` sees a failure; a stream closed before anyone asked is not an error.
  opened.catch(() => undefined);
  return { opened, isOpen: () => open, close: () => req?.destroy() };
}

/**
 * Counts COMPLETED and FAILED status events of the whole server and remembers the ids, so a
 * caller can wait for a given command or a given count (events may arrive before the caller asks).
 */
export class CompletionWatcher {
  readonly finished = new Map<string, { status: string; at: number }>();
  completed = 0;
  failed = 0;
  lastAt = 0;
  private readonly waiters = new Set<() => void>();
  private readonly streams: SseStream[];

  constructor(serverUrl: string, { parseIds = true } = {}) {
    const onFrame = (status: string) => (frame: SseFrame) => {
      if (frame.event !== 'status') return;
      const at = performance.now();
      this.lastAt = at;
      if (status === 'COMPLETED') this.completed++;
      else this.failed++;
      if (parseIds) {
        const { id } = JSON.parse(frame.data) as { id: string };
        this.finished.set(id, { status, at });
      }
      for (const wake of this.waiters) wake();
    };
    this.streams = ['COMPLETED', 'FAILED'].map((status) => openSse(`${serverUrl}/events?status=${status}`, onFrame(status)));
  }

  async opened(): Promise<void> {
    await Promise.all(this.streams.map((s) => s.opened));
  }

  /** False once the server closed one of the streams: counts taken after that are wrong. */
  isOpen(): boolean {
    return this.streams.every((s) => s.isOpen());
  }

  /** Resolves when the probe holds, re-checked at each finished command. */
  until(probe: () => boolean, what: string, timeoutMs: number): Promise<void> {
    if (probe()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(wake);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what} (completed ${this.completed}, failed ${this.failed})`));
      }, timeoutMs);
      const wake = () => {
        if (!probe()) return;
        clearTimeout(timer);
        this.waiters.delete(wake);
        resolve();
      };
      this.waiters.add(wake);
    });
  }

  close(): void {
    for (const s of this.streams) s.close();
  }
}
