/**
 * Idle load: P agent long-polls (`GET /commands/next?wait=W`, polled again whenever one ends)
 * and S SSE clients on /events, all held open until the bench stops this process.
 *
 * `--start staggered` models a fleet: each agent's first poll starts at a random moment within
 * one wait period, so the renewals spread evenly (P / W a second), as agents that started at
 * different times do. `--start together` opens them all at once (a fleet restarted at the same
 * moment): their waits then end together, every W seconds.
 *
 * node idle-load.js --url URL --polls P --sse S [--wait 25] [--start staggered|together]
 */
import { parseArgs } from 'node:util';
import { Pool } from 'undici';
import { openSseClients, SOURCE_ADDRESSES } from '../harness/many-sse.js';
import { toBench, workerFailed, type WorkerMessage } from '../harness/workers.js';

const { values } = parseArgs({
  options: {
    url: { type: 'string' },
    polls: { type: 'string', default: '10000' },
    sse: { type: 'string', default: '1000' },
    wait: { type: 'string', default: '25' },
    start: { type: 'string', default: 'staggered' },
  },
});
const url = values.url ?? workerFailed(new Error('--url is required'));
const polls = Number(values.polls);
const sse = Number(values.sse);
const wait = Number(values.wait);
const staggered = values.start === 'staggered';
if (!staggered && values.start !== 'together') workerFailed(new Error(`--start: staggered or together, not ${values.start}`));

const stats = { answered: 0, withWork: 0, errors: 0 };
let stopping = false;

// One pool per loopback source address, each with a connection for every poll it holds.
const pools = SOURCE_ADDRESSES.map(
  (localAddress) =>
    new Pool(url, {
      connections: Math.ceil(polls / SOURCE_ADDRESSES.length) + 1,
      pipelining: 1,
      connect: { localAddress },
      headersTimeout: (wait + 30) * 1000,
      keepAliveTimeout: 120_000,
    }),
);

async function poller(i: number, delayMs: number): Promise<void> {
  const pool = pools[i % pools.length] as Pool;
  const path = `/commands/next?agentId=idle-${i}&wait=${wait}`;
  if (delayMs > 0) await new Promise((r) => setTimeout(r, delayMs));
  while (!stopping) {
    try {
      const res = await pool.request({ method: 'GET', path });
      await res.body.text();
      stats.answered++;
      if (res.statusCode === 200) stats.withWork++;
    } catch {
      if (stopping) return;
      stats.errors++;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

async function start(): Promise<void> {
  const started = performance.now();
  const clients = await openSseClients(`${url}/events`, sse);
  if (staggered) {
    // Each agent joins at a random moment of one wait period; ready once the last one has.
    const periodMs = wait * 1000;
    for (let i = 0; i < polls; i++) void poller(i, Math.random() * periodMs);
    await new Promise((r) => setTimeout(r, periodMs));
  } else {
    // A few hundred new connections at a time: the server's accept backlog is finite.
    for (let i = 0; i < polls; i++) {
      void poller(i, 0);
      if (i % 250 === 249) await new Promise((r) => setTimeout(r, 40));
    }
  }
  toBench({ type: 'ready', sse: clients.length, polls, ms: performance.now() - started });
}

process.on('message', (message: WorkerMessage) => {
  if (message.type === 'stats') toBench({ type: 'stats', ...stats });
  if (message.type === 'stop') {
    stopping = true;
    toBench({ type: 'stats', ...stats });
    setTimeout(() => process.exit(0), 50);
  }
});
process.on('disconnect', () => process.exit(0));
start().catch(workerFailed);
