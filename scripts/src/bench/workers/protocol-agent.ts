/**
 * The "protocol agent": a minimal agent, run as its own process, that speaks the agent protocol
 * straight to the server. It shows what the server can do without the real agent's own costs
 * (its idempotency database, retries, heartbeats): claim (`/commands/next`, or `/commands/next-batch`
 * with `--mode batch`), execute (DELAY: a timer; HTTP_GET_JSON: one GET), report (`PUT
 * /commands/:id/result`, or one `PUT /commands/results` per claimed batch).
 *
 * node protocol-agent.js --url URL --id ID [--loops C] [--mode single|batch] [--max M] [--wait S] [--poll-interval MS]
 */
import { parseArgs } from 'node:util';
import { Agent, Pool, request } from 'undici';
import { toBench, workerFailed } from '../harness/workers.js';

interface Claimed {
  id: string;
  type: 'DELAY' | 'HTTP_GET_JSON';
  payload: { ms?: number; url?: string };
  leaseId: string;
}

const { values } = parseArgs({
  options: {
    url: { type: 'string' },
    id: { type: 'string', default: 'protocol-agent' },
    loops: { type: 'string', default: '1' },
    mode: { type: 'string', default: 'single' },
    max: { type: 'string', default: '64' },
    wait: { type: 'string', default: '25' },
    'poll-interval': { type: 'string', default: '2000' },
  },
});
if (!values.url) workerFailed(new Error('--url is required'));
const serverUrl = values.url;
const agentId = values.id;
const loops = Number(values.loops);
const batch = values.mode === 'batch';
const max = Number(values.max);
const wait = Number(values.wait);
const pollInterval = Number(values['poll-interval']);

// Long-polls hold a connection each; reports need their own.
const server = new Pool(serverUrl, { connections: loops * 2 + 2, pipelining: 1, keepAliveTimeout: 60_000 });
const targets = new Agent({ keepAliveTimeout: 60_000, connections: loops + 2 });
let stopping = false;
const stats = { polls: 0, empty: 0, claimed: 0, reported: 0 };

async function call(method: 'GET' | 'PUT', path: string, body?: unknown): Promise<{ status: number; body: unknown }> {
  for (;;) {
    try {
      const res = await server.request({
        method,
        path,
        headers: body === undefined ? {} : { 'content-type': 'application/json' },
        body: body === undefined ? null : JSON.stringify(body),
      });
      const text = await res.body.text();
      if (res.statusCode >= 500) throw new Error(`${method} ${path}: ${res.statusCode} ${text}`);
      if (res.statusCode >= 400) throw Object.assign(new Error(`${method} ${path}: ${res.statusCode} ${text}`), { permanent: true });
      return { status: res.statusCode, body: text === '' ? null : JSON.parse(text) };
    } catch (err) {
      if (stopping || (err as { permanent?: boolean }).permanent) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

async function execute(command: Claimed): Promise<{ status: 'COMPLETED' | 'FAILED'; result: unknown; error?: string }> {
  const started = performance.now();
  if (command.type === 'DELAY') {
    const ms = command.payload.ms ?? 0;
    if (ms > 0) await new Promise((r) => setTimeout(r, ms));
    return { status: 'COMPLETED', result: { ok: true, tookMs: Math.round(performance.now() - started) } };
  }
  try {
    const res = await request(command.payload.url ?? '', { dispatcher: targets });
    const text = await res.body.text();
    const ok = res.statusCode >= 200 && res.statusCode < 300;
    const result = {
      status: res.statusCode,
      ok,
      body: JSON.parse(text) as unknown,
      truncated: false,
      bytesReturned: Buffer.byteLength(text),
      tookMs: Math.round(performance.now() - started),
      error: null,
    };
    return ok ? { status: 'COMPLETED', result } : { status: 'FAILED', result, error: `status ${res.statusCode}` };
  } catch (err) {
    return { status: 'FAILED', result: null, error: String(err) };
  }
}

function pollPath(): string {
  const w = wait > 0 ? `&wait=${wait}` : '';
  return batch
    ? `/commands/next-batch?agentId=${encodeURIComponent(agentId)}&max=${max}${w}`
    : `/commands/next?agentId=${encodeURIComponent(agentId)}${w}`;
}

async function loop(): Promise<void> {
  while (!stopping) {
    stats.polls++;
    const { status, body } = await call('GET', pollPath());
    if (status === 204) {
      stats.empty++;
      if (wait === 0) await new Promise((r) => setTimeout(r, pollInterval));
      continue;
    }
    const commands = batch ? (body as { commands: Claimed[] }).commands : [body as Claimed];
    stats.claimed += commands.length;
    const outcomes = await Promise.all(commands.map(execute));
    if (batch) {
      const reports = commands.map((c, i) => ({ id: c.id, agentId, leaseId: c.leaseId, ...outcomes[i] }));
      await call('PUT', '/commands/results', { reports });
    } else {
      const [command] = commands as [Claimed];
      await call('PUT', `/commands/${command.id}/result`, { agentId, leaseId: command.leaseId, ...outcomes[0] });
    }
    stats.reported += commands.length;
  }
}

function stop(): void {
  stopping = true;
  toBench({ type: 'stats', ...stats });
  setTimeout(() => process.exit(0), 50);
}
process.on('message', (message: { type: string }) => {
  if (message.type === 'stop') stop();
});
process.once('SIGTERM', stop);
process.on('disconnect', () => process.exit(0));

for (let i = 0; i < loops; i++) {
  loop().catch((err: unknown) => {
    if (!stopping) workerFailed(err);
  });
}
toBench({ type: 'ready' });
