/**
 * sse: N SSE clients on /events (in a separate process), then one command submitted at a time:
 * delivery latency from sending the submit to each client's arrival, the time to reach the last
 * client, and the server's resident memory per open stream (/proc/<pid>/status VmRSS).
 */
import type { Figure, RunResult } from '../harness/report.js';
import { metric } from '../harness/http.js';
import { rssKiB } from '../harness/proc-stats.js';
import { sleep, tempDir } from '../harness/processes.js';
import { requireOpenFiles, type Scenario } from '../harness/scenario.js';
import { startServer } from '../harness/server.js';
import type { Distribution } from '../harness/stats.js';
import { startWorker } from '../harness/workers.js';

interface Delivered {
  type: 'delivered';
  latency: Distribution;
  firstClient: Distribution;
  lastClient: Distribution;
  submitRtt: Distribution;
  missed: number;
  closedClients: number;
}

export const sse: Scenario = {
  name: 'sse',
  summary: 'N SSE clients, broadcast events → delivery p50/p99 and server RSS per connection',
  defaultRuns: 3,
  options: {
    clients: { type: 'string', default: '10000', description: 'SSE clients (needs ulimit -n above this)' },
    events: { type: 'string', default: '20', description: 'events broadcast, one at a time' },
    'gap-ms': { type: 'string', default: '200', description: 'pause between events' },
  },
  async run(o): Promise<RunResult> {
    const clients = o.num('clients');
    await requireOpenFiles(clients + 500);
    const dir = tempDir('sse');
    // No pings during the run: every chunk a client gets is an event.
    const server = await startServer({ dbPath: `${dir.path}/commands.db`, env: { SSE_PING_MS: '3600000' } });
    let worker;
    try {
      await sleep(500);
      const rssBefore = rssKiB(server.proc.pid);
      worker = startWorker('sse-clients', [`--url=${server.url}`, `--clients=${clients}`]);
      const connected = await worker.next<{ type: string; clients: number; ms: number }>('connected', 300_000);
      await sleep(1000);
      const rssConnected = rssKiB(server.proc.pid);
      const open = metric(await server.api.metrics(), 'agent_executor_sse_clients');
      if (open < clients) throw new Error(`the server counts ${open} SSE clients, expected ${clients}`);
      const events = o.num('events');
      worker.send({ type: 'broadcast', events, gapMs: o.num('gap-ms'), timeoutMs: 60_000 });
      const d = await worker.next<Delivered & { type: string }>('delivered', events * 70_000);
      const rssAfter = rssKiB(server.proc.pid);
      if (d.missed > 0) throw new Error(`${d.missed} deliveries missed (${d.closedClients} clients closed)`);
      const figures: Figure[] = [
        { name: 'delivery p50 (submit sent → client)', value: d.latency.p50, unit: 'ms' },
        { name: 'delivery p99', value: d.latency.p99, unit: 'ms' },
        { name: 'first client p50', value: d.firstClient.p50, unit: 'ms' },
        { name: 'last client p50 (whole fan-out)', value: d.lastClient.p50, unit: 'ms' },
        { name: 'submit round trip p50', value: d.submitRtt.p50, unit: 'ms' },
        { name: 'server RSS per connection', value: (rssConnected - rssBefore) / clients, unit: 'KiB' },
        { name: 'server RSS with clients', value: rssAfter / 1024, unit: 'MiB' },
        { name: 'connect all clients', value: connected.ms / 1000, unit: 's' },
      ];
      return {
        figures,
        details: { clients, events, rssKiB: { before: rssBefore, connected: rssConnected, afterEvents: rssAfter }, delivered: d },
      };
    } finally {
      await worker?.proc.kill();
      await server.stop();
      dir.remove();
    }
  },
};
