/**
 * The baseline of the idle scenario: a bare node:http server that holds what an idle fleet holds.
 * `GET /commands/next?…&wait=W` waits W seconds (one timer, cleared if the client leaves), then
 * answers `[]` as JSON; `GET /events` opens a text/event-stream and writes `: ping` every 15 s
 * (SSE_PING_MS's default). No routing table, validation, registry, storage or framework: what is
 * left is accepting the requests, the timers and the system calls, which no server can skip.
 *
 * node idle-baseline.js --port P
 */
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';
import { toBench, workerFailed } from '../harness/workers.js';

const PING_MS = 15_000;
const { values } = parseArgs({ options: { port: { type: 'string' } } });
let waiting = 0;
let streams = 0;

const server = createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://baseline');
  if (req.method === 'GET' && url.pathname === '/commands/next') {
    waiting++;
    const timer = setTimeout(() => res.writeHead(200, { 'content-type': 'application/json; charset=utf-8' }).end('[]'), Number(url.searchParams.get('wait') ?? 0) * 1000);
    res.on('close', () => {
      waiting--;
      clearTimeout(timer);
    });
    return;
  }
  if (req.method === 'GET' && url.pathname === '/events') {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
    res.write('retry: 2000\n\n');
    streams++;
    const ping = setInterval(() => res.write(': ping\n\n'), PING_MS);
    res.on('close', () => {
      streams--;
      clearInterval(ping);
    });
    return;
  }
  res.writeHead(404).end();
});
server.keepAliveTimeout = 120_000;
// A poll's request is whole at once; its answer comes after the wait (as the control server's).
server.requestTimeout = 0;

process.on('message', (message: { type: string }) => {
  if (message.type === 'count') toBench({ type: 'count', waiting, streams });
});
process.once('SIGTERM', () => process.exit(0));
process.on('disconnect', () => process.exit(0));
server.listen(Number(values.port), '127.0.0.1', () => toBench({ type: 'ready' }));
server.on('error', workerFailed);
