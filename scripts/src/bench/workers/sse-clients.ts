/**
 * SSE fan-out load: on the bench's word, opens N clients on a server's /events, submits one
 * command at a time and times when each client receives its status event, then closes them. The
 * same process measures the control server and the bare baseline (sse-baseline.ts) in turn.
 * Submit and arrival are timed by this process's clock.
 *
 * node sse-clients.js --clients N
 */
import { parseArgs } from 'node:util';
import { Pool } from 'undici';
import { openSseClients, type SseClient } from '../harness/many-sse.js';
import { distribution } from '../harness/stats.js';
import { toBench, workerFailed, type WorkerMessage } from '../harness/workers.js';

const { values } = parseArgs({ options: { clients: { type: 'string', default: '10000' } } });
const n = Number(values.clients);
const now = () => performance.timeOrigin + performance.now();

let clients: SseClient[] = [];

async function connect(url: string): Promise<void> {
  const started = now();
  clients = await openSseClients(`${url}/events`, n);
  toBench({ type: 'connected', clients: clients.length, ms: now() - started });
}

/** Hangs up every client and waits until each socket is closed. */
async function closeAll(): Promise<void> {
  await Promise.all(
    clients.map(
      (client) =>
        new Promise<void>((resolve) => {
          if (client.closed) return resolve();
          client.req.once('close', () => resolve());
          client.req.destroy();
        }),
    ),
  );
  clients = [];
  toBench({ type: 'closed' });
}

/** One event per round: every client's arrival time minus the moment the submit was sent. */
async function broadcast(url: string, events: number, gapMs: number, timeoutMs: number): Promise<void> {
  const api = new Pool(url, { connections: 1 });
  const latencies: number[] = [];
  const firstClient: number[] = [];
  const lastClient: number[] = [];
  const submitRtt: number[] = [];
  let missed = 0;
  for (let round = 0; round < events; round++) {
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
    latencies.push(...arrivals);
    firstClient.push(Math.min(...arrivals));
    lastClient.push(Math.max(...arrivals));
    await new Promise((r) => setTimeout(r, gapMs));
  }
  await api.close();
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
  if (message.type === 'connect') connect(String(message.url)).catch(workerFailed);
  if (message.type === 'broadcast') {
    broadcast(String(message.url), Number(message.events), Number(message.gapMs), Number(message.timeoutMs)).catch(workerFailed);
  }
  if (message.type === 'close') closeAll().catch(workerFailed);
});
process.on('disconnect', () => process.exit(0));
