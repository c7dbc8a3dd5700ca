/**
 * A local HTTP server in front of a real control server, for tests that change what the agent
 * sees of it (an older server, slow answers): `handle` answers a request itself or forwards it.
 */
import { once } from 'node:events';
import { createServer, request, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Proxy {
  url: string;
  close: () => Promise<void>;
}

export async function startProxy(handle: (req: IncomingMessage, res: ServerResponse) => void): Promise<Proxy> {
  const proxy = createServer(handle);
  proxy.listen(0, '127.0.0.1');
  await once(proxy, 'listening');
  return {
    url: `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`,
    close: async () => {
      proxy.closeAllConnections();
      proxy.close();
      await once(proxy, 'close');
    },
  };
}

/**
 * Sends `req` on to `upstream` (at `path`, by default its own) with `body` (by default its own,
 * streamed), and hands the answer to `onAnswer` — by default piped back to `res` as it is.
 */
export function forward(
  upstream: string,
  req: IncomingMessage,
  res: ServerResponse,
  options: { path?: string; body?: Buffer; onAnswer?: (answer: IncomingMessage) => void } = {},
): void {
  const { hostname, port } = new URL(upstream);
  const onAnswer =
    options.onAnswer ??
    ((answer: IncomingMessage) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
  const out = request({ host: hostname, port, path: options.path ?? req.url, method: req.method, headers: req.headers }, onAnswer);
  out.on('error', () => res.destroy());
  if (options.body === undefined) req.pipe(out);
  else out.end(options.body);
}
