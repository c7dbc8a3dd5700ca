/**
 * The drill's SSE client: one stream of GET /events at a time, from the start of the log. When its
 * replica dies (or drops it), it resumes on the next replica with the last id it received, as a
 * browser's EventSource behind a load balancer would. What it received is judged in checks.ts:
 * the whole log, each event once, in id order (SPEC §8: a resume on another replica loses nothing).
 */
import { request, type ClientRequest } from 'node:http';
import { SseParser } from '../bench/harness/sse-reader.js';
import type { SseRecord } from './evidence.js';

const RECONNECT_MS = 100;
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export class SseFollower {
  readonly record: SseRecord = { received: [], resumes: [], resets: 0 };
  private replica = 0;
  private req: ClientRequest | undefined;
  private stopped = false;
  private loop: Promise<void> | undefined;
  private readonly waiters = new Set<() => void>();

  constructor(private readonly urls: string[]) {}

  get lastId(): number {
    return this.record.received.at(-1) ?? 0;
  }

  start(): void {
    this.loop = (async () => {
      while (!this.stopped) {
        await this.follow(this.replica);
        // Gone (replica killed, or the stream dropped): the next replica takes over.
        this.replica = (this.replica + 1) % this.urls.length;
        if (!this.stopped) await sleep(RECONNECT_MS);
      }
    })();
  }

  /** Resolves once an event with this id or a later one arrived, or after timeoutMs (false). */
  async reached(id: number, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (this.lastId < id && Date.now() < deadline) {
      await new Promise<void>((resolve) => {
        const wake = () => {
          this.waiters.delete(wake);
          resolve();
        };
        this.waiters.add(wake);
        setTimeout(wake, 200);
      });
    }
    return this.lastId >= id;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.req?.destroy();
    await this.loop;
  }

  /** One connection, until it ends. */
  private follow(replica: number): Promise<void> {
    const lastEventId = this.lastId;
    return new Promise<void>((resolve) => {
      const parser = new SseParser((frame) => {
        if (frame.event === 'reset') this.record.resets++;
        if (frame.id === undefined || (frame.event !== 'status' && frame.event !== 'progress')) return;
        this.record.received.push(Number(frame.id));
        for (const wake of this.waiters) wake();
      });
      const req = request(
        `${this.urls[replica]}/events?lastEventId=${lastEventId}`,
        { headers: { accept: 'text/event-stream' }, agent: false },
        (res) => {
          if (res.statusCode !== 200) {
            res.resume();
            res.on('end', resolve);
            return;
          }
          this.record.resumes.push({ at: Date.now(), replica, lastEventId });
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => parser.feed(chunk));
          res.on('error', () => undefined);
          res.on('close', resolve);
        },
      );
      req.on('error', () => resolve());
      req.end();
      this.req = req;
    });
  }
}
