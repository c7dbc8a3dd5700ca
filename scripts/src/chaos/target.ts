/**
 * The counting target: the witness of executions. Every HTTP_GET_JSON command of a drill points
 * at its own path, `/c/<key>`, so each request that arrives is one execution of that command. The
 * answer comes after a small seeded delay, so that kills also land while a request is in flight.
 * It also sees two things an agent cannot hide: two requests for one command in flight at once
 * (two agents running it together), and a request whose client went away before the answer (an
 * execution cut off).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { targetDelayMs } from './plan.js';

export interface Witness {
  /** Requests received for this command: its executions. */
  executions: number;
  /** Most requests for it in flight at one moment. */
  maxConcurrent: number;
  /** Requests whose client went away before the answer was sent. */
  cutOff: number;
}

export class CountingTarget {
  private server: Server | undefined;
  private readonly records = new Map<string, Witness & { inFlight: number }>();
  url = '';

  constructor(
    private readonly seed: number,
    private readonly delayMaxMs: number,
  ) {}

  async start(): Promise<void> {
    const server = createServer((req, res) => {
      const match = /^\/c\/([\w-]+)$/.exec(req.url ?? '');
      if (!match || req.method !== 'GET') {
        res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"no such command"}');
        return;
      }
      const key = match[1] as string;
      const record = this.records.get(key) ?? { executions: 0, maxConcurrent: 0, cutOff: 0, inFlight: 0 };
      this.records.set(key, record);
      const execution = ++record.executions;
      record.inFlight++;
      record.maxConcurrent = Math.max(record.maxConcurrent, record.inFlight);
      const timer = setTimeout(() => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ key, execution }));
      }, targetDelayMs(this.seed, key, execution, this.delayMaxMs));
      // 'close' comes after the answer was sent, or when the client went away first.
      res.once('close', () => {
        clearTimeout(timer);
        record.inFlight--;
        if (!res.writableFinished) record.cutOff++;
      });
    });
    server.keepAliveTimeout = 30_000;
    this.server = server;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  urlFor(key: string): string {
    return `${this.url}/c/${key}`;
  }

  /** Total requests received, for progress lines. */
  get total(): number {
    let n = 0;
    for (const r of this.records.values()) n += r.executions;
    return n;
  }

  witness(): Map<string, Witness> {
    return new Map([...this.records].map(([key, { executions, maxConcurrent, cutOff }]) => [key, { executions, maxConcurrent, cutOff }]));
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
