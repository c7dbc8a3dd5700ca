/**
 * sse-slow: N `/events` clients that never read (raw sockets, workers/slow-sse-clients.ts), then
 * a burst of M commands through real agents (3 events each: submit, claim, report), while a
 * normal client keeps making ordinary requests → the server's peak RSS (sampled from /proc), the
 * burst's duration and the normal client's latency and time-outs. With --result-kib the commands
 * are HTTP_GET_JSON against a local target answering that much JSON, so every report event is large.
 * The goals are those of issue 10: RSS under 300 MB, the normal client's p99 under 100 ms.
 *
 * The normal client runs in a process of its own (workers/normal-client.ts), so the bench's own
 * event loop (submitter, completion stream) is not in its figure; it reports its own event-loop
 * delay, and its POST (waits for a commit's fsync) and GET (waits only for the server's event
 * loop) latencies apart. `--normal-client=inline` measures from the bench's process, as before.
 */
import { startWaitingAgents } from '../harness/fleet.js';
import { metric } from '../harness/http.js';
import { JsonTarget } from '../harness/json-target.js';
import { rssKiB } from '../harness/proc-stats.js';
import type { Figure, RunResult } from '../harness/report.js';
import { tempDir } from '../harness/processes.js';
import { NormalClient } from '../harness/normal-client.js';
import { profileDirFor, readProfile } from '../harness/cpu-profile.js';
import { requireOpenFiles, type Options, type Scenario } from '../harness/scenario.js';
import { startServer } from '../harness/server.js';
import { CompletionWatcher } from '../harness/sse-reader.js';
import { distribution } from '../harness/stats.js';
import { submitAll } from '../harness/submitter.js';
import { startWorker, type Worker } from '../harness/workers.js';

const MB = 1e6;

/** What the normal client measured, inline or from its worker. */
interface ClientOutcome {
  latencies: number[];
  byMethod: { GET: number[]; POST: number[] };
  posted: number;
  timeouts: number;
  errors: string[];
  loopDelay: { p99: number; max: number } | undefined;
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
    'normal-client': { type: 'string', default: 'process', description: "process: the normal client runs in a process of its own (its latency is the server's); inline: in the bench's process, as before (its latency then includes the bench's own event loop, busy with the submitter and the completion stream)" },
    'cpu-prof': { type: 'boolean', default: false, description: 'profile the server (node --cpu-prof, set-up included) and summarise it' },
    'max-rss-mb': { type: 'string', default: '4000', description: "stop when the server's RSS passes this (large results × many slow clients can take all memory)" },
  },
  async run(o: Options, context): Promise<RunResult> {
    const clients = o.num('clients');
    const commands = o.num('commands');
    const resultKiB = o.num('result-kib');
    await requireOpenFiles(clients + 500);
    const dir = tempDir('sse-slow');
    const target = resultKiB > 0 ? new JsonTarget(resultKiB * 1024) : undefined;
    await target?.start();
    const inline = o.str('normal-client') === 'inline';
    if (!inline && o.str('normal-client') !== 'process') throw new Error(`--normal-client: process or inline, not ${o.str('normal-client')}`);
    const profileDir = o.bool('cpu-prof') ? profileDirFor(context.outDir, 'sse-slow') : undefined;
    const server = await startServer({ dbPath: `${dir.path}/commands.db`, ...(profileDir ? { cpuProfDir: profileDir } : {}) });
    const pid = server.proc.pid;
    let fleet;
    let worker;
    let watcher;
    let normal: NormalClient | undefined;
    let normalWorker: Worker | undefined;
    let sampler: ReturnType<typeof setInterval> | undefined;
    let result: RunResult;
    try {
      fleet = await startWaitingAgents(o, server, dir.path);
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
      const timeoutMs = o.num('client-timeout-ms');
      const gapMs = o.num('client-gap-ms');
      if (inline) {
        normal = new NormalClient(server.url, timeoutMs, gapMs);
        normal.start(() => !burstDone);
      } else {
        normalWorker = startWorker('normal-client', [`--url=${server.url}`, `--timeout-ms=${timeoutMs}`, `--gap-ms=${gapMs}`]);
        await normalWorker.next('ready', 30_000);
        normalWorker.send({ type: 'start' });
        await normalWorker.next('started', 30_000);
      }
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
      const finished = (n: () => number) =>
        Promise.race([
          w.until(() => w.completed + w.failed >= n(), `${commands} commands to finish`, o.num('max-seconds') * 1000),
          serverDied,
          streamClosed,
          rssOverCap,
        ]);
      let client: ClientOutcome;
      try {
        if (normal) {
          const inlineClient = normal;
          await finished(() => commands + inlineClient.posted);
          burstDone = true;
          await inlineClient.stop();
          normal = undefined;
          client = { ...inlineClient, loopDelay: undefined };
        } else {
          // The worker's posts are counted when it stops: stop it once the burst's count is reached,
          // then wait for its last commands too.
          await finished(() => commands);
          burstDone = true;
          normalWorker?.send({ type: 'stop' });
          client = (await normalWorker?.next<ClientOutcome & { type: string }>('stopped', 60_000)) as ClientOutcome;
          await finished(() => commands + client.posted);
        }
      } finally {
        clearInterval(streamCheck);
      }
      const burstSeconds = (w.lastAt - submitted.startedAt) / 1000;
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
      const get = distribution(client.byMethod.GET);
      const post = distribution(client.byMethod.POST);
      console.log(`  normal client by request: POST /commands p50 ${post.p50.toFixed(1)} / p99 ${post.p99.toFixed(1)} ms (waits for its commit's fsync), GET /commands/:id p50 ${get.p50.toFixed(1)} / p99 ${get.p99.toFixed(1)} ms`);
      if (client.loopDelay) console.log(`  the normal client's own event-loop delay: p99 ${client.loopDelay.p99.toFixed(1)} ms, max ${client.loopDelay.max.toFixed(1)} ms (${inline ? 'inline' : 'own process'})`);
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
        { name: 'normal client POST p99', value: post.p99, unit: 'ms' },
        { name: 'normal client GET p99', value: get.p99, unit: 'ms' },
        { name: 'normal client time-outs', value: client.timeouts, unit: 'requests', goal: { op: '<=', value: 0 } },
        { name: 'slow clients closed by the server', value: sockets.closed, unit: 'clients' },
      ];
      result = {
        figures,
        details: {
          clients,
          connectMs: connected.ms,
          commands,
          resultKiB,
          targetHits: target?.hits ?? 0,
          completed: w.completed,
          failed: w.failed,
          normalClient: { where: inline ? 'inline' : 'process', requests: client.latencies.length, posted: client.posted, timeouts: client.timeouts, errors: client.errors.slice(0, 20), latency, loopDelay: client.loopDelay },
          slowClients: sockets,
        },
      };
    } finally {
      if (sampler) clearInterval(sampler);
      await normal?.stop();
      await normalWorker?.proc.kill();
      watcher?.close();
      await worker?.proc.kill();
      await fleet?.stop();
      await server.stop();
      await target?.close();
      dir.remove();
    }
    if (profileDir) result.details = { ...result.details, profile: readProfile(profileDir) };
    return result;
  },
};
