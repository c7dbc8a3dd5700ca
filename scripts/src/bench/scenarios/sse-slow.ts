/**
 * sse-slow: N `/events` clients that never read (raw sockets, workers/slow-sse-clients.ts), then
 * a burst of M commands through real agents (3 events each: submit, claim, report), while a
 * normal client keeps making ordinary requests → the server's peak RSS (sampled from /proc), the
 * burst's duration and the normal client's latency and time-outs. With --result-kib the commands
 * are HTTP_GET_JSON against a local target answering that much JSON, so every report event is large.
 * The goals are those of issue 10: RSS under 300 MB, the normal client's p99 under 100 ms.
 */
import { Pool } from 'undici';
import { startFleet } from '../harness/fleet.js';
import { metric } from '../harness/http.js';
import { JsonTarget } from '../harness/json-target.js';
import { rssKiB } from '../harness/proc-stats.js';
import type { Figure, RunResult } from '../harness/report.js';
import { sleep, tempDir } from '../harness/processes.js';
import { requireOpenFiles, type Options, type Scenario } from '../harness/scenario.js';
import { startServer, waitForWaitingPolls } from '../harness/server.js';
import { CompletionWatcher } from '../harness/sse-reader.js';
import { distribution } from '../harness/stats.js';
import { submitAll } from '../harness/submitter.js';
import { startWorker } from '../harness/workers.js';

const MB = 1e6;

/** Ordinary requests at a modest pace (POST /commands, then GET of it), each timed or timed out. */
class NormalClient {
  readonly latencies: number[] = [];
  timeouts = 0;
  errors: string[] = [];
  posted = 0;
  private stopped = false;
  private running: Promise<void> | undefined;
  private readonly pool: Pool;

  constructor(
    url: string,
    private readonly timeoutMs: number,
    private readonly gapMs: number,
  ) {
    this.pool = new Pool(url, { connections: 2, pipelining: 1, keepAliveTimeout: 60_000 });
  }

  private async timed(method: 'GET' | 'POST', path: string, body?: string): Promise<string | undefined> {
    const t0 = performance.now();
    try {
      const res = await this.pool.request({
        method,
        path,
        headers: body ? { 'content-type': 'application/json' } : {},
        body: body ?? null,
        signal: AbortSignal.timeout(this.timeoutMs),
      });
      const text = await res.body.text();
      this.latencies.push(performance.now() - t0);
      if (res.statusCode >= 300) this.errors.push(`${method} ${path}: ${res.statusCode} ${text.slice(0, 200)}`);
      return text;
    } catch (err) {
      if ((err as Error).name === 'TimeoutError' || (err as Error).name === 'AbortError') {
        this.timeouts++;
        // A time-out counts as the time-out at the tail of the distribution.
        this.latencies.push(this.timeoutMs);
      } else {
        this.errors.push(`${method} ${path}: ${(err as Error).message}`);
      }
      return undefined;
    }
  }

  start(canPost: () => boolean): void {
    this.running = (async () => {
      while (!this.stopped) {
        if (canPost()) {
          this.posted++;
          const text = await this.timed('POST', '/commands', '{"type":"DELAY","payload":{"ms":0}}');
          const id = text ? (JSON.parse(text) as { id?: string }).id : undefined;
          if (id) await this.timed('GET', `/commands/${id}`);
        }
        await sleep(this.gapMs);
      }
    })();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.running;
    await this.pool.destroy();
  }
}

export const sseSlow: Scenario = {
  name: 'sse-slow',
  summary: 'N /events clients that never read during a burst of M commands → server peak RSS, normal client p99',
  defaultRuns: 1,
  options: {
    clients: { type: 'string', default: '2000', description: 'non-reading /events clients (needs ulimit -n above this)' },
    commands: { type: 'string', default: '7000', description: 'commands of the burst (3 events each)' },
    'result-kib': { type: 'string', default: '0', description: '0: DELAY 0; more: HTTP_GET_JSON of a local target answering this many KiB' },
    agents: { type: 'string', default: '2', description: 'real agent processes' },
    concurrency: { type: 'string', default: '8', description: 'CONCURRENCY of each agent' },
    'client-timeout-ms': { type: 'string', default: '5000', description: "the normal client's time-out per request" },
    'client-gap-ms': { type: 'string', default: '20', description: "pause between the normal client's request pairs" },
    'max-seconds': { type: 'string', default: '600', description: 'give up when the burst takes longer' },
    'max-rss-mb': { type: 'string', default: '4000', description: "stop when the server's RSS passes this (large results × many slow clients can take all memory)" },
  },
  async run(o: Options): Promise<RunResult> {
    const clients = o.num('clients');
    const commands = o.num('commands');
    const resultKiB = o.num('result-kib');
    await requireOpenFiles(clients + 500);
    const dir = tempDir('sse-slow');
    const target = resultKiB > 0 ? new JsonTarget(resultKiB * 1024) : undefined;
    await target?.start();
    const server = await startServer({ dbPath: `${dir.path}/commands.db` });
    const pid = server.proc.pid;
    let fleet;
    let worker;
    let watcher;
    let normal: NormalClient | undefined;
    let sampler: ReturnType<typeof setInterval> | undefined;
    try {
      fleet = await startFleet({
        kind: 'process',
        serverUrl: server.url,
        dir: dir.path,
        agents: o.num('agents'),
        concurrency: o.num('concurrency'),
        longPollWait: 25,
        pollInterval: 2000,
      });
      await waitForWaitingPolls(server.api, fleet.idlePolls, fleet.procs);
      const rssBefore = rssKiB(pid);
      worker = startWorker('slow-sse-clients', [`--url=${server.url}`, `--clients=${clients}`]);
      const connected = await worker.next<{ type: string; clients: number; ms: number }>('connected', 300_000);
      const open = metric(await server.api.metrics(), 'agent_executor_sse_clients');
      if (open < clients) throw new Error(`the server counts ${open} SSE clients, expected at least ${clients}`);
      const rssConnected = rssKiB(pid);
      const w = new CompletionWatcher(server.url, { parseIds: false });
      watcher = w;
      await w.opened();

      let peakKiB = rssKiB(pid);
      const capKiB = (o.num('max-rss-mb') * MB) / 1024;
      let overCap: (err: Error) => void = () => undefined;
      const rssOverCap = new Promise<never>((_, reject) => (overCap = reject));
      rssOverCap.catch(() => undefined);
      sampler = setInterval(() => {
        try {
          peakKiB = Math.max(peakKiB, rssKiB(pid));
        } catch {
          // The server died: the wait below reports it.
        }
        if (peakKiB > capKiB) {
          overCap(new Error(`server RSS reached ${((peakKiB * 1024) / MB).toFixed(0)} MB (over --max-rss-mb): stopped to spare the machine; the goal (< 300 MB) is not met`));
        }
      }, 200);
      let burstDone = false;
      const client = new NormalClient(server.url, o.num('client-timeout-ms'), o.num('client-gap-ms'));
      normal = client;
      client.start(() => !burstDone);
      const body = target
        ? { type: 'HTTP_GET_JSON', payload: { url: target.url } }
        : { type: 'DELAY', payload: { ms: 0 } };
      const submitted = await submitAll(server.url, { total: commands, inFlight: 4, batchSize: 100, body });
      const serverDied = server.proc.exited.then((code) => {
        throw new Error(`the server exited (${code}) during the burst:\n${server.proc.output().slice(-2000)}`);
      });
      // Only the race below may see this rejection; a stop after the burst is not an error.
      serverDied.catch(() => undefined);
      let streamCheck: ReturnType<typeof setInterval> | undefined;
      const streamClosed = new Promise<never>((_, reject) => {
        streamCheck = setInterval(() => {
          if (!w.isOpen()) reject(new Error('the server closed the stream the bench counts completions on'));
        }, 500);
      });
      try {
        await Promise.race([
          w.until(() => w.completed + w.failed >= commands + client.posted, `${commands} commands to finish`, o.num('max-seconds') * 1000),
          serverDied,
          streamClosed,
          rssOverCap,
        ]);
      } finally {
        clearInterval(streamCheck);
      }
      burstDone = true;
      const burstSeconds = (w.lastAt - submitted.startedAt) / 1000;
      await client.stop();
      normal = undefined;
      clearInterval(sampler);
      sampler = undefined;
      const rssAfter = rssKiB(pid);
      worker.send({ type: 'count' });
      const sockets = await worker.next<{ type: string; open: number; closed: number }>('count', 10_000);
      const latency = distribution(client.latencies);
      const peakMB = (peakKiB * 1024) / MB;
      const verdict = (ok: boolean) => (ok ? 'PASS' : 'FAIL');
      console.log(`  ${verdict(peakMB < 300)} server peak RSS ${peakMB.toFixed(0)} MB (goal < 300 MB)`);
      console.log(`  ${verdict(latency.p99 < 100)} normal client p99 ${latency.p99.toFixed(1)} ms (goal < 100 ms), ${client.timeouts} time-out(s)`);
      console.log(`  burst of ${commands} commands (${3 * commands} events) took ${burstSeconds.toFixed(1)} s; ${sockets.closed} of ${clients} slow clients closed by the server`);
      const figures: Figure[] = [
        { name: 'server RSS before clients', value: (rssBefore * 1024) / MB, unit: 'MB' },
        { name: 'server RSS with clients connected', value: (rssConnected * 1024) / MB, unit: 'MB' },
        { name: 'server peak RSS during the burst', value: peakMB, unit: 'MB', goal: { op: '<=', value: 300 } },
        { name: 'server RSS after the burst', value: (rssAfter * 1024) / MB, unit: 'MB' },
        { name: 'burst duration', value: burstSeconds, unit: 's' },
        { name: 'normal client p50', value: latency.p50, unit: 'ms' },
        { name: 'normal client p99', value: latency.p99, unit: 'ms', goal: { op: '<=', value: 100 } },
        { name: 'normal client max', value: latency.max, unit: 'ms' },
        { name: 'normal client time-outs', value: client.timeouts, unit: 'requests', goal: { op: '<=', value: 0 } },
        { name: 'slow clients closed by the server', value: sockets.closed, unit: 'clients' },
      ];
      return {
        figures,
        details: {
          clients,
          connectMs: connected.ms,
          commands,
          resultKiB,
          targetHits: target?.hits ?? 0,
          completed: w.completed,
          failed: w.failed,
          normalClient: { requests: client.latencies.length, posted: client.posted, timeouts: client.timeouts, errors: client.errors.slice(0, 20), latency },
          slowClients: sockets,
        },
      };
    } finally {
      if (sampler) clearInterval(sampler);
      await normal?.stop();
      watcher?.close();
      await worker?.proc.kill();
      await fleet?.stop();
      await server.stop();
      await target?.close();
      dir.remove();
    }
  },
};
