/**
 * A local HTTP target answering every GET with one JSON document of a chosen size, so
 * HTTP_GET_JSON commands produce results (and `report` events) of that size.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export class JsonTarget {
  private server: Server | undefined;
  url = '';
  hits = 0;

  constructor(private readonly bytes: number) {}

  async start(): Promise<void> {
    // Numbers in an array: the agent parses and re-serialises it to the same length.
    const items = Math.max(0, Math.floor((this.bytes - 12) / 9));
    const body = Buffer.from(`{"data":[${Array.from({ length: items }, (_, i) => String(10_000_000 + i)).join(',')}]}`);
    this.server = createServer((_req, res) => {
      this.hits++;
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(body.length) });
      res.end(body);
    });
    this.server.keepAliveTimeout = 60_000;
    await new Promise<void>((resolve) => this.server?.listen(0, '127.0.0.1', resolve));
    const { port } = this.server.address() as AddressInfo;
    this.url = `http://127.0.0.1:${port}/data.json`;
  }

  async close(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}
