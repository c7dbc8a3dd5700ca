/**
 * The floor under the latency scenario on PostgreSQL: the same measurement (submit on the first
 * replica → the job's HTTP GET reaching this process's target, agents long-polling the last
 * replica) through bare processes that make only the hops the contract's shape cannot skip —
 * client → replica → PostgreSQL (durable insert + NOTIFY) → the polling replica's LISTEN
 * connection → PostgreSQL (durable lease, one statement) → that replica → agent → target.
 * workers/bare-server.ts and workers/bare-agent.ts; nothing of ours runs.
 */
import pg from 'pg';
import type { Postgres } from '../../postgres/start.js';
import { freshDatabase } from './deployment.js';
import { Api } from './http.js';
import { freePort } from './processes.js';
import { distribution, type Distribution } from './stats.js';
import { HitTarget } from './target.js';
import { chainProcesses, WindowCpu, type ChainCpu } from './window-cpu.js';
import { startWorker, type Worker } from './workers.js';

const BARE_SCHEMA = `CREATE TABLE bare_jobs (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  payload text NOT NULL,
  status text NOT NULL DEFAULT 'PENDING',
  agent_id text)`;

export interface BareDispatchOptions {
  replicas: number;
  agents: number;
  samples: number;
  warmup: number;
  longPollWait: number;
}

/** The dispatch latency, and each process's CPU inside a dispatch (window-cpu.ts). */
export interface BareDispatch {
  dispatch: Distribution;
  cpu: ChainCpu;
}

export async function measureBareDispatch(postgres: Postgres, o: BareDispatchOptions): Promise<BareDispatch> {
  const url = await freshDatabase(postgres, 'bare');
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(BARE_SCHEMA);
  } finally {
    await client.end();
  }
  const workers: Worker[] = [];
  const target = new HitTarget();
  let api: Api | undefined;
  try {
    const urls: string[] = [];
    for (let i = 0; i < o.replicas; i++) {
      const port = await freePort();
      const replica = startWorker('bare-server', [`--port=${port}`, `--database=${url}`]);
      workers.push(replica);
      await replica.next('ready');
      urls.push(`http://127.0.0.1:${port}`);
    }
    const polled = workers.at(-1) as Worker;
    const replicas = workers.map((w) => w.proc.pid);
    for (let i = 0; i < o.agents; i++) {
      const agent = startWorker('bare-agent', [`--server=${urls.at(-1)}`, `--id=bare-${i}`, `--wait=${o.longPollWait}`]);
      workers.push(agent);
      await agent.next('ready');
    }
    await target.start();
    api = new Api(urls[0] as string, 16);
    const latencies: number[] = [];
    const cpu = new WindowCpu(chainProcesses({ replicas, agents: workers.slice(replicas.length).map((w) => w.proc.pid), postmaster: postgres.pid }));
    try {
      for (let i = 0; i < o.warmup + o.samples; i++) {
        cpu.begin();
        const t0 = performance.now();
        await api.call('POST', '/commands', { payload: { url: `${target.url}/hit/${i}` } });
        const hitAt = await target.hit(i, 10_000);
        cpu.end(i >= o.warmup);
        // Reported back to the polling replica: that agent polls again before the next submit.
        await polled.next('done', 10_000);
        if (i >= o.warmup) latencies.push(hitAt - t0);
      }
    } finally {
      cpu.close();
    }
    return { dispatch: distribution(latencies), cpu: cpu.perWindow() };
  } finally {
    await api?.close();
    await target.close();
    await Promise.all(workers.map((w) => w.proc.kill()));
  }
}
