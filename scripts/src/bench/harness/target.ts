/**
 * The counting HTTP target of the latency scenario: HTTP_GET_JSON commands point at
 * `/hit/<n>`; the arrival time of each hit is recorded on the bench's own clock, the clock that
 * also timed the submit.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export class HitTarget {
  private readonly hits = new Map<number, number>();
  private readonly waiters = new Map<number, (at: number) => void>();
  private server: Server | undefined;
  url = '';
  count = 0;

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      const at = performance.now();
      const match = /^\/hit\/(\d+)$/.exec(req.url ?? '');
      if (match) {
        const n = Number(match[1]);
        this.count++;
        if (!this.hits.has(n)) this.hits.set(n, at);
        this.waiters.get(n)?.(at);
        this.waiters.delete(n);
      }
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': '11' });
      res.end('{"ok":true}');
    });
    this.server.keepAliveTimeout = 60_000;
    await new Promise<void>((resolve) => this.server?.listen(0, '127.0.0.1', resolve));
    const { port } = this.server.address() as AddressInfo;
    this.url = `http://127.0.0.1:${port}`;
  }

  /** Resolves with the arrival time (performance.now()) of hit `n`. */
  hit(n: number, timeoutMs: number): Promise<number> {
    const seen = this.hits.get(n);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(n);
        reject(new Error(`hit ${n} did not arrive within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.set(n, (at) => {
        clearTimeout(timer);
        resolve(at);
      });
    });
  }

  async close(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}
