/**
 * A local HTTP server for HTTP_GET_JSON to fetch: known answers, counted hits, slow and huge
 * bodies, redirect chains, and a record of how each response ended (finished, or cut off by the
 * client). Bound to 127.0.0.1 on a free port; `close()` also drops open connections.
 */
import { once } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ResponseRecord {
  path: string;
  /** Bytes the server wrote into the response body before it ended or was cut off. */
  bytesWritten: number;
  /** True when the client went away before the whole response was written. */
  cutOff: boolean;
}

export interface Target {
  url: string;
  /** Requests seen per path (the query string is part of the path). */
  hits: (path: string) => number;
  /** Resolves with the record of the next response to `path` that ends, either way. */
  ended: (path: string) => Promise<ResponseRecord>;
  close: () => Promise<void>;
}

export const BIG_BODY_BYTES = 300 * 1024;
/** `/numbers` serves this many `1e20`: 5 bytes each, 102 400 bytes in all. */
export const NUMBERS_COUNT = 20_479;
const CHUNK = 16 * 1024;

export async function startTarget(): Promise<Target> {
  const hits = new Map<string, number>();
  const waiting = new Map<string, Array<(record: ResponseRecord) => void>>();

  const record = (path: string, res: ServerResponse, written: () => number) => {
    res.once('close', () => {
      const entry = { path, bytesWritten: written(), cutOff: !res.writableFinished };
      for (const resolve of waiting.get(path) ?? []) resolve(entry);
      waiting.delete(path);
    });
  };

  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const path = req.url ?? '/';
    hits.set(path, (hits.get(path) ?? 0) + 1);
    let written = 0;
    record(path, res, () => written);
    const send = (status: number, body: string, type = 'application/json') => {
      written += Buffer.byteLength(body);
      res.writeHead(status, { 'content-type': type }).end(body);
    };
    const { pathname, searchParams } = new URL(path, 'http://target');
    const redirect = /^\/redirect\/(\d+)$/.exec(pathname);
    const status = /^\/status\/(\d+)$/.exec(pathname);

    if (redirect) {
      const left = Number(redirect[1]);
      res.writeHead(302, { location: left > 1 ? `/redirect/${left - 1}` : '/json' }).end();
    } else if (status) {
      send(Number(status[1]), JSON.stringify({ error: `status ${status[1]}` }));
    } else if (pathname === '/json' || pathname === '/count') {
      send(200, JSON.stringify({ hello: 'world', n: hits.get(path) }));
    } else if (pathname === '/to') {
      res.writeHead(302, { location: searchParams.get('url') ?? '/json' }).end();
    } else if (pathname === '/invalid') {
      send(200, '{"not": json');
    } else if (pathname === '/big') {
      // Paced, so that the client's stop is seen here: the body is not all in the socket buffers yet.
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': BIG_BODY_BYTES });
      const next = () => {
        if (res.destroyed || written >= BIG_BODY_BYTES) return void (written >= BIG_BODY_BYTES && res.end());
        const size = Math.min(CHUNK, BIG_BODY_BYTES - written);
        written += size;
        res.write("x".repeat(size), () => setTimeout(next, 10));
      };
      next();
    } else if (pathname === '/slow') {
      // Headers at once, then one byte every `every` ms: never done before the client's timeout.
      const every = Number(searchParams.get('every') ?? 200);
      res.writeHead(200, { 'content-type': 'application/json' });
      written += 1;
      res.write('[');
      const timer = setInterval(() => {
        written += 2;
        res.write('0,');
      }, every);
      res.once('close', () => clearInterval(timer));
    } else if (pathname === '/numbers') {
      // Just under the agent's 100 KiB read cap, and over 256 KiB once parsed and written again:
      // each `1e20` comes back as `100000000000000000000`.
      const status = Number(searchParams.get('status') ?? 200);
      send(status, `[${Array<string>(NUMBERS_COUNT).fill('1e20').join(',')}]`);
    } else if (pathname === '/deep') {
      // Valid JSON nested `levels` deep: past the server's limit, or past JSON.stringify's stack.
      const levels = Number(searchParams.get('levels') ?? 1001);
      send(200, `${'['.repeat(levels)}${']'.repeat(levels)}`);
    } else if (pathname === '/hang') {
      // Never answers; the client's abort is what ends it.
    } else {
      send(404, JSON.stringify({ error: 'no such path' }));
    }
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    hits: (path) => hits.get(path) ?? 0,
    ended: (path) =>
      new Promise((resolve) => {
        const list = waiting.get(path) ?? [];
        list.push(resolve);
        waiting.set(path, list);
      }),
    close: async () => {
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    },
  };
}
