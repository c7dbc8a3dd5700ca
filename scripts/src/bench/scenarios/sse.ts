/**
 * sse: N SSE clients on /events (in a separate process), then one command submitted at a time:
 * delivery latency from sending the submit to each client's arrival, the time to reach the last
 * client, and the server's resident memory per open stream (/proc/<pid>/status VmRSS).
 *
 * In the same run the same client code measures a baseline: a bare node:http server
 * (workers/sse-baseline.ts) that writes a frame of the same shape to as many streams, with no
 * framework and no storage. Both sets of clients are open at once (one process each: the open
 * files limit is per process) and the rounds alternate, ours then the baseline's, so a busy
 * machine weighs on both alike. What is between them is ours (the commit, Fastify, the hub);
 * what both pay is the machine's.
 */
import type { Figure, RunResult } from '../harness/report.js';
import { profileDirFor, readProfile } from '../harness/cpu-profile.js';
import { metric } from '../harness/http.js';
import { rssKiB } from '../harness/proc-stats.js';
import { freePort, sleep, tempDir } from '../harness/processes.js';
import { requireOpenFiles, type Scenario } from '../harness/scenario.js';
import { startServer } from '../harness/server.js';
import type { Distribution } from '../harness/stats.js';
import { startWorker, type Worker } from '../harness/workers.js';

interface Delivered {
  type: 'delivered';
  latency: Distribution;
  firstClient: Distribution;
  lastClient: Distribution;
  submitRtt: Distribution;
  missed: number;
  closedClients: number;
}

/** Opens N clients on `url` in a worker process of their own. */
async function connect(url: string, clients: number): Promise<{ worker: Worker; ms: number }> {
  const worker = startWorker('sse-clients', [`--url=${url}`, `--clients=${clients}`]);
  const connected = await worker.next<{ type: string; clients: number; ms: number }>('connected', 300_000);
  return { worker, ms: connected.ms };
}

async function report(worker: Worker, who: string): Promise<Delivered> {
  worker.send({ type: 'report' });
  const d = await worker.next<Delivered & { type: string }>('delivered');
  if (d.missed > 0) throw new Error(`${who}: ${d.missed} deliveries missed (${d.closedClients} clients closed)`);
  return d;
}

export const sse: Scenario = {
  name: 'sse',
  summary: 'N SSE clients, broadcast events → delivery p50/p99 beside a bare node:http baseline, server RSS per connection',
  defaultRuns: 3,
  options: {
    clients: { type: 'string', default: '10000', description: 'SSE clients (needs ulimit -n above this)' },
    events: { type: 'string', default: '20', description: 'events broadcast, one at a time' },
    'gap-ms': { type: 'string', default: '200', description: 'pause after each event (ours and the baseline\'s alternate)' },
    'cpu-prof': { type: 'boolean', default: false, description: 'profile the server (node --cpu-prof, set-up included) and summarise it' },
  },
  async run(o, context): Promise<RunResult> {
    const clients = o.num('clients');
    const broadcast = { events: o.num('events'), gapMs: o.num('gap-ms') };
    await requireOpenFiles(clients + 500);
    const dir = tempDir('sse');
    const profileDir = o.bool('cpu-prof') ? profileDirFor(context.outDir, 'sse') : undefined;
    // No pings during the run: every chunk a client gets is an event.
    const server = await startServer({
      dbPath: `${dir.path}/commands.db`,
      env: { SSE_PING_MS: '3600000' },
      ...(profileDir ? { cpuProfDir: profileDir } : {}),
    });
    const baselinePort = await freePort();
    const baseline = startWorker('sse-baseline', [`--port=${baselinePort}`]);
    let ours: Worker | undefined;
    let bare: Worker | undefined;
    let result: RunResult | undefined;
    try {
      await baseline.next('ready');
      await sleep(500);
      const rssBefore = rssKiB(server.proc.pid);
      const connectedOurs = await connect(server.url, clients);
      ours = connectedOurs.worker;
      bare = (await connect(`http://127.0.0.1:${baselinePort}`, clients)).worker;
      await sleep(1000);
      const rssConnected = rssKiB(server.proc.pid);
      const open = metric(await server.api.metrics(), 'agent_executor_sse_clients');
      if (open < clients) throw new Error(`the server counts ${open} SSE clients, expected ${clients}`);
      baseline.send({ type: 'count' });
      const { streams } = await baseline.next<{ type: string; streams: number }>('count');
      if (streams < clients) throw new Error(`the baseline holds ${streams} streams, expected ${clients}`);
      for (let i = 0; i < broadcast.events; i++) {
        for (const worker of [ours, bare]) {
          worker.send({ type: 'round', timeoutMs: 60_000 });
          await worker.next('round', 70_000);
          await sleep(broadcast.gapMs);
        }
      }
      const rssAfter = rssKiB(server.proc.pid);
      const d = await report(ours, 'control server');
      const b = await report(bare, 'baseline');
      const figures: Figure[] = [
        { name: 'delivery p50 (submit sent → client)', value: d.latency.p50, unit: 'ms' },
        { name: 'delivery p99', value: d.latency.p99, unit: 'ms', goal: { op: '<=', value: 100 } },
        { name: 'baseline delivery p50 (bare node:http)', value: b.latency.p50, unit: 'ms' },
        { name: 'baseline delivery p99', value: b.latency.p99, unit: 'ms' },
        { name: 'delivery p50 / baseline', value: d.latency.p50 / b.latency.p50, unit: '×', goal: { op: '<=', value: 1.5 } },
        { name: 'delivery p99 / baseline', value: d.latency.p99 / b.latency.p99, unit: '×', goal: { op: '<=', value: 1.5 } },
        { name: 'first client p50', value: d.firstClient.p50, unit: 'ms' },
        { name: 'baseline first client p50', value: b.firstClient.p50, unit: 'ms' },
        { name: 'last client p50 (whole fan-out)', value: d.lastClient.p50, unit: 'ms' },
        { name: 'baseline last client p50', value: b.lastClient.p50, unit: 'ms' },
        { name: 'submit round trip p50', value: d.submitRtt.p50, unit: 'ms' },
        { name: 'server RSS per connection', value: (rssConnected - rssBefore) / clients, unit: 'KiB' },
        { name: 'server RSS with clients', value: rssAfter / 1024, unit: 'MiB' },
        { name: 'connect all clients', value: connectedOurs.ms / 1000, unit: 's' },
      ];
      result = {
        figures,
        details: {
          clients,
          events: broadcast.events,
          rssKiB: { before: rssBefore, connected: rssConnected, afterEvents: rssAfter },
          delivered: d,
          baseline: b,
        },
      };
    } finally {
      await ours?.proc.kill();
      await bare?.proc.kill();
      await baseline.proc.kill();
      await server.stop();
      dir.remove();
    }
    if (profileDir) result.details = { ...result.details, profile: readProfile(profileDir) };
    return result;
  },
};
