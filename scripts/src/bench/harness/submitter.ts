/** Submits many DELAY commands with a fixed number of requests in flight, singly or in batches. */
import { Pool } from 'undici';

export interface SubmitLoad {
  total: number;
  inFlight: number;
  /** 1 = POST /commands per command; more = POST /commands/batch with this many each. */
  batchSize: number;
  body?: Record<string, unknown>;
}

export interface SubmitOutcome {
  startedAt: number;
  endedAt: number;
  requests: number;
}

/** `url`: one server, or replicas: the requests in flight are spread over them evenly. */
export async function submitAll(url: string | string[], load: SubmitLoad): Promise<SubmitOutcome> {
  const urls = typeof url === 'string' ? [url] : url;
  const pools = urls.map((u) => new Pool(u, { connections: Math.ceil(load.inFlight / urls.length), pipelining: 1 }));
  const one = JSON.stringify(load.body ?? { type: 'DELAY', payload: { ms: 0 } });
  const batches: number[] = [];
  for (let left = load.total; left > 0; left -= load.batchSize) batches.push(Math.min(load.batchSize, left));
  const batchBody = (n: number) => `{"commands":[${new Array<string>(n).fill(one).join(',')}]}`;
  let next = 0;
  const startedAt = performance.now();
  const worker = async (w: number) => {
    const pool = pools[w % pools.length] as Pool;
    for (let i = next++; i < batches.length; i = next++) {
      const n = batches[i] as number;
      const single = load.batchSize === 1;
      const res = await pool.request({
        method: 'POST',
        path: single ? '/commands' : '/commands/batch',
        headers: { 'content-type': 'application/json' },
        body: single ? one : batchBody(n),
      });
      const text = await res.body.text();
      if (res.statusCode !== 201) throw new Error(`submit answered ${res.statusCode}: ${text.slice(0, 300)}`);
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(load.inFlight, batches.length) }, (_, w) => worker(w)));
  } finally {
    await Promise.all(pools.map((p) => p.close()));
  }
  return { startedAt, endedAt: performance.now(), requests: batches.length };
}

export interface BacklogKeeper {
  /** Commands submitted so far. */
  submitted: () => number;
  /** Stops submitting; resolves once the requests in flight are answered. */
  stop: () => Promise<void>;
  /** Rejects if a submit fails (the run is then meaningless). */
  failed: Promise<never>;
}

/**
 * Keeps about `backlog` commands waiting: whenever fewer than half are pending (submitted minus
 * `finished()`), submits batches until the backlog is full again. Agents then always find work,
 * and the queue the server holds stays the same size for the whole run.
 */
export function keepBacklog(
  url: string,
  o: { backlog: number; batchSize: number; finished: () => number; body?: Record<string, unknown> },
): BacklogKeeper {
  const pool = new Pool(url, { connections: 2, pipelining: 1 });
  const one = JSON.stringify(o.body ?? { type: 'DELAY', payload: { ms: 0 } });
  const batch = `{"commands":[${new Array<string>(o.batchSize).fill(one).join(',')}]}`;
  let submitted = 0;
  let stopped = false;
  let fail: (err: unknown) => void = () => undefined;
  const failed = new Promise<never>((_, reject) => (fail = reject));
  failed.catch(() => undefined);
  const loop = async () => {
    while (!stopped) {
      const pending = submitted - o.finished();
      if (pending >= o.backlog / 2) {
        await new Promise((r) => setTimeout(r, 10));
        continue;
      }
      while (!stopped && submitted - o.finished() < o.backlog) {
        const res = await pool.request({ method: 'POST', path: '/commands/batch', headers: { 'content-type': 'application/json' }, body: batch });
        const text = await res.body.text();
        if (res.statusCode !== 201) throw new Error(`batch submit answered ${res.statusCode}: ${text.slice(0, 300)}`);
        submitted += o.batchSize;
      }
    }
  };
  const running = loop().catch((err: unknown) => fail(err));
  return {
    submitted: () => submitted,
    failed,
    stop: async () => {
      stopped = true;
      await running;
      await pool.close();
    },
  };
}
