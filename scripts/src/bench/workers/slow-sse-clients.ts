/**
 * Non-reading SSE clients: N raw TCP connections that send `GET /events`, wait for the answer's
 * first bytes (so the server has registered the stream and answered 200), then stop reading for
 * good. The kernel buffers fill and everything further the server sends stays queued on its side:
 * the worst case of a slow or stalled subscriber. Held open until the bench kills this process.
 *
 * node slow-sse-clients.js --url URL --clients N
 */
import { connect, type Socket } from 'node:net';
import { parseArgs } from 'node:util';
import { SOURCE_ADDRESSES } from '../harness/many-sse.js';
import { toBench, workerFailed } from '../harness/workers.js';

const { values } = parseArgs({ options: { url: { type: 'string' }, clients: { type: 'string', default: '2000' } } });
const url = new URL(values.url ?? workerFailed(new Error('--url is required')));
const n = Number(values.clients);
const sockets: Socket[] = [];
let closed = 0;

function openOne(index: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: url.hostname, port: Number(url.port), localAddress: SOURCE_ADDRESSES[index % SOURCE_ADDRESSES.length] });
    socket.once('connect', () =>
      socket.write(`GET /events HTTP/1.1\r\nHost: ${url.host}\r\nAccept: text/event-stream\r\n\r\n`),
    );
    socket.once('data', (chunk: Buffer) => {
      // From here on nothing is read: the stream is paused and never resumed.
      socket.pause();
      const head = chunk.toString('latin1');
      if (!head.startsWith('HTTP/1.1 200')) {
        socket.destroy();
        reject(new Error(`GET /events answered ${head.split('\r\n')[0] ?? ''}`));
        return;
      }
      sockets.push(socket);
      resolve();
    });
    socket.on('error', (err) => reject(err));
    socket.on('close', () => closed++);
  });
}

async function main(): Promise<void> {
  const started = performance.now();
  let next = 0;
  const opener = async () => {
    for (let i = next++; i < n; i = next++) await openOne(i);
  };
  await Promise.all(Array.from({ length: Math.min(200, n) }, opener));
  toBench({ type: 'connected', clients: sockets.length, ms: performance.now() - started });
  // The bench asks at the end how many the server closed (a byte limit may drop slow clients).
  process.on('message', (message: { type: string }) => {
    if (message.type === 'count') toBench({ type: 'count', open: sockets.length - closed, closed });
  });
}

process.on('disconnect', () => process.exit(0));
main().catch(workerFailed);
