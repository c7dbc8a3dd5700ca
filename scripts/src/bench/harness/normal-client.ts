/**
 * The "normal client" of sse-slow: ordinary requests at a modest pace (POST /commands, then GET
 * of it), each timed or timed out. Runs in its own process (workers/normal-client.ts) so that what
 * it measures is the server's latency, not the wait for the bench's own event loop (busy with the
 * submitter and the completion watcher's 21 000 events); `--normal-client=inline` keeps the old way.
 */
import { Pool } from 'undici';
import { sleep } from './processes.js';

export class NormalClient {
  readonly latencies: number[] = [];
  /** The same latencies by method: a POST waits for its commit's fsync, a GET for nothing but the loop. */
  readonly byMethod: { GET: number[]; POST: number[] } = { GET: [], POST: [] };
  timeouts = 0;
  errors: string[] = [];
  posted = 0;
  private stopped = false;
  private running: Promise<void> | undefined;
  private readonly pool: Pool;

  constructor(
    url: string,
    private readonly timeoutMs: number,
    private readonly gapMs: number,
  ) {
    this.pool = new Pool(url, { connections: 2, pipelining: 1, keepAliveTimeout: 60_000 });
  }

  private async timed(method: 'GET' | 'POST', path: string, body?: string): Promise<string | undefined> {
    const t0 = performance.now();
    try {
      const res = await this.pool.request({
        method,
        path,
        headers: body ? { 'content-type': 'application/json' } : {},
        body: body ?? null,
        signal: AbortSignal.timeout(this.timeoutMs),
      });
      const text = await res.body.text();
      this.latencies.push(performance.now() - t0);
      this.byMethod[method].push(performance.now() - t0);
      if (res.statusCode >= 300) this.errors.push(`${method} ${path}: ${res.statusCode} ${text.slice(0, 200)}`);
      return text;
    } catch (err) {
      if ((err as Error).name === 'TimeoutError' || (err as Error).name === 'AbortError') {
        this.timeouts++;
        // A time-out counts as the time-out at the tail of the distribution.
        this.latencies.push(this.timeoutMs);
        this.byMethod[method].push(this.timeoutMs);
      } else {
        this.errors.push(`${method} ${path}: ${(err as Error).message}`);
      }
      return undefined;
    }
  }

  /** Posts (and reads back) until `stop`, while `canPost` says so. */
  start(canPost: () => boolean = () => true): void {
    this.running = (async () => {
      while (!this.stopped) {
        if (canPost()) {
          this.posted++;
          const text = await this.timed('POST', '/commands', '{"type":"DELAY","payload":{"ms":0}}');
          const id = text ? (JSON.parse(text) as { id?: string }).id : undefined;
          if (id) await this.timed('GET', `/commands/${id}`);
        }
        await sleep(this.gapMs);
      }
    })();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.running;
    await this.pool.destroy();
  }
}
