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

export async function submitAll(url: string, load: SubmitLoad): Promise<SubmitOutcome> {
  const pool = new Pool(url, { connections: load.inFlight, pipelining: 1 });
  const one = JSON.stringify(load.body ?? { type: 'DELAY', payload: { ms: 0 } });
  const batches: number[] = [];
  for (let left = load.total; left > 0; left -= load.batchSize) batches.push(Math.min(load.batchSize, left));
  const batchBody = (n: number) => `{"commands":[${new Array<string>(n).fill(one).join(',')}]}`;
  let next = 0;
  const startedAt = performance.now();
  const worker = async () => {
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
    await Promise.all(Array.from({ length: Math.min(load.inFlight, batches.length) }, worker));
  } finally {
    await pool.close();
  }
  return { startedAt, endedAt: performance.now(), requests: batches.length };
}
