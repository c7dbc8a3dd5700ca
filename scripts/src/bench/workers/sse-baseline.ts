/**
 * The baseline of the sse scenario: a bare node:http server with what fan-out cannot do without.
 * `GET /events` opens a text/event-stream (the same headers and `retry:` line as the control
 * server) and keeps the response; `POST /commands` reads the JSON body, encodes one status frame
 * of a command of the same shape as the server's, writes that one Buffer to every open stream and
 * answers 201. No validation, no storage, no framework: what is left is the system calls.
 *
 * node sse-baseline.js --port P
 */
import { randomUUID } from 'node:crypto';
import { createServer, type ServerResponse } from 'node:http';
import { parseArgs } from 'node:util';
import { toBench, workerFailed } from '../harness/workers.js';

const { values } = parseArgs({ options: { port: { type: 'string' } } });
const streams = new Set<ServerResponse>();
let seq = 0;

/** A QUEUED command as the control server's status event carries it. */
function commandJson(body: string): string {
  const request = JSON.parse(body) as { type: string; payload: unknown };
  const now = new Date().toISOString();
  return JSON.stringify({
    id: randomUUID(),
    type: request.type,
    payload: request.payload,
    status: 'QUEUED',
    result: null,
    error: null,
    agentId: null,
    attempts: 0,
    maxAttempts: 1,
    timeoutMs: 300_000,
    leaseExpiresAt: null,
    availableAt: now,
    cancelRequested: false,
    progress: null,
    createdAt: now,
    updatedAt: now,
    startedAt: null,
    finishedAt: null,
  });
}

const server = createServer((req, res) => {
  if (req.method === 'GET' && req.url === '/events') {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
    res.write('retry: 2000\n\n');
    streams.add(res);
    res.on('close', () => streams.delete(res));
    return;
  }
  if (req.method === 'POST' && req.url === '/commands') {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (body += chunk));
    req.on('end', () => {
      const json = commandJson(body);
      const frame = Buffer.from(`id: ${++seq}\nevent: status\ndata: ${json}\n\n`);
      for (const stream of streams) stream.write(frame);
      res.writeHead(201, { 'content-type': 'application/json' }).end(json);
    });
    return;
  }
  res.writeHead(404).end();
});
server.keepAliveTimeout = 120_000;

process.on('message', (message: { type: string }) => {
  if (message.type === 'count') toBench({ type: 'count', streams: streams.size });
});
process.once('SIGTERM', () => process.exit(0));
process.on('disconnect', () => process.exit(0));
server.listen(Number(values.port), '127.0.0.1', () => toBench({ type: 'ready' }));
server.on('error', workerFailed);
