/**
 * The agent of the latency floor (bare-server.ts): long-polls `GET /next`, runs each job's
 * HTTP GET (`payload.url`), reports `PUT /jobs/:id/done`, polls again. node:http with keep-alive;
 * no outbox, retries, heartbeats or validation: only the hops an agent cannot skip.
 *
 * node bare-agent.js --server URL --id A --wait S
 */
import { Agent, request } from 'node:http';
import { parseArgs } from 'node:util';
import { toBench, workerFailed } from '../harness/workers.js';

const { values } = parseArgs({ options: { server: { type: 'string' }, id: { type: 'string' }, wait: { type: 'string', default: '25' } } });
const agent = new Agent({ keepAlive: true, maxSockets: 4 });
let stopping = false;

function call(method: string, url: string, timeoutMs = 0): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, agent, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

async function loop(): Promise<void> {
  const poll = `${values.server}/next?agent=${encodeURIComponent(values.id ?? 'bare')}&wait=${values.wait}`;
  toBench({ type: 'ready' });
  while (!stopping) {
    const { status, text } = await call('GET', poll);
    if (status !== 200) continue;
    const job = JSON.parse(text) as { id: string; payload: { url: string } };
    await call('GET', job.payload.url);
    await call('PUT', `${values.server}/jobs/${job.id}/done`);
  }
}

process.once('SIGTERM', () => {
  stopping = true;
  process.exit(0);
});
process.on('disconnect', () => process.exit(0));
loop().catch(workerFailed);
