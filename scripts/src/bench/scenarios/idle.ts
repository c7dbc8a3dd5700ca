/**
 * idle: P waiting agent long-polls and S SSE clients (from a separate process), nothing
 * submitted; the server's CPU over a window from /proc/<pid>/stat (utime + stime deltas).
 * Nothing polls in a loop: what remains is the renewal of each poll when its wait ends (P / W a
 * second, spread out when the agents' starts are staggered, as in a real fleet) and the SSE
 * pings (SSE_PING_MS). Reported: CPU %, CPU per renewal, and the busiest second.
 */
import type { Figure, RunResult } from '../harness/report.js';
import { metric } from '../harness/http.js';
import { rssKiB, sampleCpu } from '../harness/proc-stats.js';
import { tempDir, waitUntil } from '../harness/processes.js';
import { requireOpenFiles, type Scenario } from '../harness/scenario.js';
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
  },
  async run(o, context): Promise<RunResult> {
    const polls = o.num('polls');
    const sseClients = o.num('sse');
    await requireOpenFiles(polls + sseClients + 500);
    const dir = tempDir('idle');
    const profileDir = o.bool('cpu-prof') ? profileDirFor(context.outDir, 'idle') : undefined;
    const server = await startServer({ dbPath: `${dir.path}/commands.db`, ...(profileDir ? { cpuProfDir: profileDir } : {}) });
    let result: RunResult | undefined;
    let worker;
    try {
      worker = startWorker('idle-load', [`--url=${server.url}`, `--polls=${polls}`, `--sse=${sseClients}`, `--wait=${o.num('wait')}`, `--start=${o.str('start')}`]);
      const ready = await worker.next<{ type: string; ms: number }>('ready', 300_000);
      await waitUntil(
        async () => {
          const m = await server.api.metrics();
          // A few polls are between their answer and the next request at any moment.
          return metric(m, 'agent_executor_waiting_polls') >= polls * 0.98 && metric(m, 'agent_executor_sse_clients') >= sseClients;
        },
        { timeoutMs: 60_000, intervalMs: 250, what: `${polls} waiting polls and ${sseClients} SSE clients` },
      );
      // After a burst of allocation (the set-up) V8's memory reducer runs major GCs, 0.3–0.5 s
      // each here, some 20 s later: the settling time covers them, and is reported apart.
      const settling = await sampleCpu(server.proc.pid, Math.max(1, o.num('settle')));
      worker.send({ type: 'stats' });
      const before = await worker.next<LoadStats>('stats');
      const cpu = await sampleCpu(server.proc.pid, o.num('seconds'));
      worker.send({ type: 'stats' });
      const after = await worker.next<LoadStats>('stats');
      const m = await server.api.metrics();
      const renewals = after.answered - before.answered;
      const figures: Figure[] = [
        { name: 'server CPU while idle', value: cpu.percent, unit: '%', goal: { op: '<=', value: 5 } },
        { name: 'busiest second', value: Math.max(...cpu.perSecond), unit: '%', goal: { op: '<=', value: 20 } },
        { name: 'server CPU per poll renewal', value: renewals > 0 ? (cpu.cpuSeconds / renewals) * 1e6 : 0, unit: 'µs' },
        { name: 'poll renewals per second', value: renewals / o.num('seconds'), unit: '/s' },
        { name: 'server CPU while settling after set-up', value: settling.percent, unit: '%' },
        { name: 'server RSS', value: rssKiB(server.proc.pid) / 1024, unit: 'MiB' },
        { name: 'polls answered during the window', value: renewals, unit: 'polls' },
        { name: 'waiting polls (end)', value: metric(m, 'agent_executor_waiting_polls'), unit: 'polls' },
        { name: 'SSE clients (end)', value: metric(m, 'agent_executor_sse_clients'), unit: 'clients' },
      ];
      result = { figures, details: { polls, sseClients, setupMs: ready.ms, settling, cpu, load: after } };
    } finally {
      await worker?.proc.kill();
      await server.stop();
      dir.remove();
    }
    if (profileDir) result.details = { ...result.details, profile: readProfile(profileDir) };
    return result;
  },
};
