/**
 * idle: P waiting agent long-polls and S SSE clients (from a separate process), nothing
 * submitted; the server's CPU over a window from /proc/<pid>/stat (utime + stime deltas).
 * Nothing polls in a loop: what remains is the renewal of each poll when its wait ends (P / W a
 * second, spread out when the agents' starts are staggered, as in a real fleet) and the SSE
 * pings (SSE_PING_MS). Reported: CPU %, CPU per renewal, and the busiest second.
 *
 * Then, in the same run, the same load on a bare node:http server (workers/idle-baseline.ts: a
 * timer per poll, a ping per stream, nothing else): the floor of what holding an idle fleet costs
 * on this machine, and ours as a multiple of it.
 */
import type { Figure, RunResult } from '../harness/report.js';
import { metric } from '../harness/http.js';
import { rssKiB, sampleCpu } from '../harness/proc-stats.js';
import { freePort, tempDir, waitUntil } from '../harness/processes.js';
import { requireOpenFiles, type Options, type Scenario } from '../harness/scenario.js';
import { startServer } from '../harness/server.js';
import { startWorker } from '../harness/workers.js';
import { profileDirFor, readProfile } from '../harness/cpu-profile.js';

interface LoadStats {
  type: string;
  answered: number;
  withWork: number;
  errors: number;
}

export const idle: Scenario = {
  name: 'idle',
  summary: 'P waiting long-polls + S SSE clients, nothing submitted → server CPU %',
  defaultRuns: 3,
  options: {
    polls: { type: 'string', default: '10000', description: 'waiting long-polls (GET /commands/next?wait=…)' },
    sse: { type: 'string', default: '1000', description: 'SSE clients on /events' },
    seconds: { type: 'string', default: '30', description: 'measured window' },
    settle: {
      type: 'string',
      default: '25',
      description: 'seconds between set-up and window, reported apart (V8 collects the set-up\'s garbage then)',
    },
    wait: { type: 'string', default: '25', description: 'wait= of each long-poll, seconds (60 is the server maximum)' },
    start: {
      type: 'string',
      default: 'staggered',
      description: 'staggered: each agent starts at a random moment of one wait period (a fleet); together: all at once',
    },
    'cpu-prof': { type: 'boolean', default: false, description: 'profile the server (node --cpu-prof, set-up included) and summarise it' },
    'no-baseline': { type: 'boolean', default: false, description: 'skip the bare node:http server measured after ours under the same load' },
  },
  async run(o, context): Promise<RunResult> {
    const polls = o.num('polls');
    const sseClients = o.num('sse');
    await requireOpenFiles(polls + sseClients + 500);
    const dir = tempDir('idle');
    const profileDir = o.bool('cpu-prof') ? profileDirFor(context.outDir, 'idle') : undefined;
    let ours: IdleMeasure;
    const server = await startServer({ dbPath: `${dir.path}/commands.db`, ...(profileDir ? { cpuProfDir: profileDir } : {}) });
    try {
      ours = await measureIdle(o, server.url, server.proc.pid, async () => {
        const m = await server.api.metrics();
        return { waiting: metric(m, 'agent_executor_waiting_polls'), streams: metric(m, 'agent_executor_sse_clients') };
      });
    } finally {
      await server.stop();
      dir.remove();
    }
    const figures: Figure[] = [
      { name: 'server CPU while idle', value: ours.cpu.percent, unit: '%', goal: { op: '<=', value: 5 } },
      { name: 'busiest second', value: Math.max(...ours.cpu.perSecond), unit: '%', goal: { op: '<=', value: 20 } },
      { name: 'server CPU per poll renewal', value: ours.perRenewalUs, unit: 'µs' },
      { name: 'poll renewals per second', value: ours.renewals / o.num('seconds'), unit: '/s' },
      { name: 'server CPU while settling after set-up', value: ours.settling.percent, unit: '%' },
      { name: 'server RSS', value: ours.rssMiB, unit: 'MiB' },
      { name: 'polls answered during the window', value: ours.renewals, unit: 'polls' },
      { name: 'waiting polls (end)', value: ours.end.waiting, unit: 'polls' },
      { name: 'SSE clients (end)', value: ours.end.streams, unit: 'clients' },
    ];
    let bare: IdleMeasure | undefined;
    if (!o.bool('no-baseline')) {
      const port = await freePort();
      const baseline = startWorker('idle-baseline', [`--port=${port}`]);
      try {
        await baseline.next('ready');
        bare = await measureIdle(o, `http://127.0.0.1:${port}`, baseline.proc.pid, async () => {
          baseline.send({ type: 'count' });
          const { waiting, streams } = await baseline.next<{ type: string; waiting: number; streams: number }>('count');
          return { waiting, streams };
        });
      } finally {
        await baseline.proc.kill();
      }
      figures.push(
        { name: 'baseline CPU while idle (bare node:http)', value: bare.cpu.percent, unit: '%' },
        { name: 'baseline busiest second', value: Math.max(...bare.cpu.perSecond), unit: '%' },
        { name: 'baseline CPU per poll renewal', value: bare.perRenewalUs, unit: 'µs' },
      );
      // A window too short for any renewal can leave the baseline at 0 ticks: no ratio then.
      if (bare.cpu.percent > 0) figures.push({ name: 'server CPU / baseline', value: ours.cpu.percent / bare.cpu.percent, unit: '×' });
    }
    const result: RunResult = { figures, details: { polls, sseClients, ours, bare } };
    if (profileDir) result.details = { ...result.details, profile: readProfile(profileDir) };
    return result;
  },
};

interface IdleMeasure {
  setupMs: number;
  settling: Awaited<ReturnType<typeof sampleCpu>>;
  cpu: Awaited<ReturnType<typeof sampleCpu>>;
  renewals: number;
  perRenewalUs: number;
  rssMiB: number;
  end: { waiting: number; streams: number };
  load: LoadStats;
}

/**
 * Opens the idle load (workers/idle-load.ts) on `url`, waits until the server at `pid` holds it
 * (`held`: its waiting polls and SSE streams), lets it settle, then samples its CPU for the window.
 */
async function measureIdle(
  o: Options,
  url: string,
  pid: number,
  held: () => Promise<{ waiting: number; streams: number }>,
): Promise<IdleMeasure> {
  const polls = o.num('polls');
  const sseClients = o.num('sse');
  const worker = startWorker('idle-load', [`--url=${url}`, `--polls=${polls}`, `--sse=${sseClients}`, `--wait=${o.num('wait')}`, `--start=${o.str('start')}`]);
  try {
    const ready = await worker.next<{ type: string; ms: number }>('ready', 300_000);
    await waitUntil(
      async () => {
        const { waiting, streams } = await held();
        // A few polls are between their answer and the next request at any moment.
        return waiting >= polls * 0.98 && streams >= sseClients;
      },
      { timeoutMs: 60_000, intervalMs: 250, what: `${polls} waiting polls and ${sseClients} SSE clients at ${url}` },
    );
    // After a burst of allocation (the set-up) V8's memory reducer runs major GCs, 0.3–0.5 s
    // each here, some 20 s later: the settling time covers them, and is reported apart.
    const settling = await sampleCpu(pid, Math.max(1, o.num('settle')));
    worker.send({ type: 'stats' });
    const before = await worker.next<LoadStats>('stats');
    const cpu = await sampleCpu(pid, o.num('seconds'));
    worker.send({ type: 'stats' });
    const after = await worker.next<LoadStats>('stats');
    const renewals = after.answered - before.answered;
    return {
      setupMs: ready.ms,
      settling,
      cpu,
      renewals,
      perRenewalUs: renewals > 0 ? (cpu.cpuSeconds / renewals) * 1e6 : 0,
      rssMiB: rssKiB(pid) / 1024,
      end: await held(),
      load: after,
    };
  } finally {
    await worker.proc.kill();
  }
}
