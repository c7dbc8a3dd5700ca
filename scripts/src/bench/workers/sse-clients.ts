/**
 * SSE fan-out load: opens N clients on a server's /events; then, on each word of the bench,
 * submits one command to that server and times when each client receives its status event. The
 * bench runs one of these processes for the control server and one for the bare baseline
 * (sse-baseline.ts), both connected at once, and alternates their rounds so both see the same
 * machine. Submit and arrival are timed by this process's clock.
 *
 * node sse-clients.js --url URL --clients N
 */
import { parseArgs } from 'node:util';
import { Pool } from 'undici';
import { openSseClients, type SseClient } from '../harness/many-sse.js';
import { distribution } from '../harness/stats.js';
import { toBench, workerFailed, type WorkerMessage } from '../harness/workers.js';

const { values } = parseArgs({ options: { url: { type: 'string' }, clients: { type: 'string', default: '10000' } } });
const url = values.url ?? workerFailed(new Error('--url is required'));
const n = Number(values.clients);
const now = () => performance.timeOrigin + performance.now();

let clients: SseClient[] = [];
const api = new Pool(url, { connections: 1 });
const latencies: number[] = [];
const firstClient: number[] = [];
const lastClient: number[] = [];
const submitRtt: number[] = [];
let missed = 0;

async function connect(): Promise<void> {
  const started = now();
  clients = await openSseClients(`${url}/events`, n);
  toBench({ type: 'connected', clients: clients.length, ms: now() - started });
}

/** One event: every client's arrival time minus the moment the submit was sent. */
async function round(timeoutMs: number): Promise<void> {
  const arrivals: number[] = [];
  let t0 = 0;
  const all = new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, timeoutMs);
    for (const client of clients) {
      let got = false;
      client.onStatus = (at) => {
        if (got) return;
        got = true;
        arrivals.push(at - t0);
        if (arrivals.length === clients.length) {
          clearTimeout(timer);
          resolve();
        }
      };
    }
  });
  t0 = now();
  const res = await api.request({
    method: 'POST',
    path: '/commands',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ type: 'DELAY', payload: { ms: 0 } }),
  });
  await res.body.text();
  submitRtt.push(now() - t0);
  if (res.statusCode !== 201) throw new Error(`submit answered ${res.statusCode}`);
  await all;
  missed += clients.length - arrivals.length;
  for (const arrival of arrivals) latencies.push(arrival);
  firstClient.push(Math.min(...arrivals));
  lastClient.push(Math.max(...arrivals));
  toBench({ type: 'round' });
}

function report(): void {
  toBench({
    type: 'delivered',
    latency: distribution(latencies),
    firstClient: distribution(firstClient),
    lastClient: distribution(lastClient),
    submitRtt: distribution(submitRtt),
    missed,
    closedClients: clients.filter((c) => c.closed).length,
  });
}

process.on('message', (message: WorkerMessage) => {
  if (message.type === 'round') round(Number(message.timeoutMs)).catch(workerFailed);
  if (message.type === 'report') report();
});
process.on('disconnect', () => process.exit(0));
connect().catch(workerFailed);
