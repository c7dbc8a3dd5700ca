/**
 * Smoke run of every benchmark scenario with tiny sizes, through the built CLI
 * (`node scripts/dist/bench/main.js`), checking that each writes a JSON report with sane figures.
 * The numbers themselves are not judged here: see BENCHMARKS.md.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../../test-support/processes.js';

const BENCH = join(REPO_ROOT, 'scripts/dist/bench/main.js');
const outDir = mkdtempSync(join(tmpdir(), 'bench-smoke-'));
let passed = true;

interface Summary {
  name: string;
  unit: string;
  runs: number[];
  min: number;
  median: number;
  max: number;
}

interface Report {
  scenario: string;
  machine: { cores: number; node: string };
  summary: Summary[];
  runs: Array<{ details: Record<string, unknown> }>;
}

async function bench(scenario: string, args: string[]): Promise<Report> {
  const before = new Set(readdirSync(outDir));
  try {
    await promisify(execFile)(process.execPath, [BENCH, scenario, '--runs=1', `--out-dir=${outDir}`, ...args], {
      cwd: REPO_ROOT,
      timeout: 150_000,
    });
  } catch (err) {
    passed = false;
    const { stdout, stderr } = err as { stdout?: string; stderr?: string };
    throw new Error(`bench ${scenario} failed:\n${stdout ?? ''}\n${stderr ?? ''}`);
  }
  const written = readdirSync(outDir).filter((f) => !before.has(f) && f.startsWith(`${scenario}-`) && f.endsWith('.json'));
  expect(written).toHaveLength(1);
  const report = JSON.parse(readFileSync(join(outDir, written[0] as string), 'utf8')) as Report;
  expect(report.scenario).toBe(scenario);
  expect(report.machine.cores).toBeGreaterThan(0);
  for (const s of report.summary) {
    expect(s.runs, s.name).toHaveLength(1);
    expect(Number.isFinite(s.median), `${s.name} is a number`).toBe(true);
    expect(s.min).toBeLessThanOrEqual(s.max);
  }
  return report;
}

function figure(report: Report, name: string): number {
  const found = report.summary.find((s) => s.name === name);
  if (!found) throw new Error(`no figure "${name}" in ${report.summary.map((s) => s.name).join(', ')}`);
  return found.median;
}

afterAll(() => {
  if (passed) rmSync(outDir, { recursive: true, force: true });
  else console.error(`bench smoke failed: its reports are kept in ${outDir}`);
});

describe('benchmark scenarios (tiny sizes)', { timeout: 90_000 }, () => {
  it('latency: long-poll and plain polling', async () => {
    const r = await bench('latency', ['--agent=protocol', '--samples=20', '--warmup=2', '--poll-samples=3', '--poll-interval=100']);
    expect(figure(r, 'protocol agents, long-poll: start p50')).toBeGreaterThan(0);
    expect(figure(r, 'protocol agents, polling: start p50')).toBeGreaterThan(0);
    expect(figure(r, 'protocol agents: polling p50 / long-poll p50')).toBeGreaterThan(0);
    const results = r.runs[0]?.details.results as Array<{ mode: string; startLatency: { count: number } }>;
    expect(results.map((m) => [m.mode, m.startLatency.count])).toEqual([['long-poll', 20], ['polling', 3]]);
  });

  it('throughput: real agents, single submits', async () => {
    const r = await bench('throughput', ['--agent=process', '--configs=1x2', '--submit=single', '--commands=200']);
    const results = r.runs[0]?.details.results as Array<{ label: string; commands: number }>;
    expect(results.map((v) => [v.label, v.commands])).toEqual([['process 1x2, single submit', 200]]);
    expect(figure(r, 'process 1x2, single submit: completed/s')).toBeGreaterThan(0);
  });

  it('throughput on PostgreSQL: 2 replicas beside graphile-worker on the same embedded PostgreSQL', { timeout: 180_000 }, async () => {
    const r = await bench('throughput', ['--database=postgres', '--replicas=2', '--configs=2x2', '--submit=single', '--commands=200']);
    const label = 'process 2x2, single submit [PostgreSQL, 2 replicas]';
    const details = r.runs[0]?.details as { results: Array<{ label: string; commands: number; graphile?: { completedPerSecond: number } }>; graphileVersions: string };
    expect(details.results.map((v) => [v.label, v.commands])).toEqual([[label, 200]]);
    expect(details.graphileVersions).toMatch(/^graphile-worker .*PostgreSQL 17/);
    expect(figure(r, `${label}: completed/s`)).toBeGreaterThan(0);
    expect(figure(r, `${label}: PostgreSQL CPU per command`)).toBeGreaterThan(0);
    const graphile = figure(r, 'graphile-worker 2x2, addJob: completed/s');
    expect(figure(r, `${label}: ours / graphile-worker`)).toBeCloseTo(figure(r, `${label}: completed/s`) / graphile, 6);
  });

  it('latency on PostgreSQL: submit on one replica, agents polling on the other', { timeout: 180_000 }, async () => {
    const r = await bench('latency', ['--database=postgres', '--replicas=2', '--agent=protocol', '--samples=10', '--warmup=2', '--modes=long-poll']);
    expect(figure(r, 'protocol agents, long-poll: start p50 [PostgreSQL, 2 replicas]')).toBeGreaterThan(0);
    expect(figure(r, 'graphile-worker 2x1: add → start p50')).toBeGreaterThan(0);
    // The bare chain on the same PostgreSQL (--no-baseline skips it), and ours over it.
    const bare = figure(r, 'bare chain 2x1: start p50 [PostgreSQL, 2 replicas]');
    expect(bare).toBeGreaterThan(0);
    expect(figure(r, 'protocol agents, long-poll p50 / bare chain p50 [PostgreSQL, 2 replicas]')).toBeCloseTo(
      figure(r, 'protocol agents, long-poll: start p50 [PostgreSQL, 2 replicas]') / bare,
      6,
    );
    expect(() => figure(r, 'protocol agents, polling: start p50 [PostgreSQL, 2 replicas]')).toThrow();
    // Whose CPU a dispatch burns, ours and the bare chain's, every process of the chain counted.
    const ours = figure(r, 'protocol agents, long-poll: CPU per dispatch, all processes [PostgreSQL, 2 replicas]');
    const bareCpu = figure(r, 'bare chain 2x1: CPU per dispatch, all processes [PostgreSQL, 2 replicas]');
    expect(ours).toBeGreaterThan(0);
    expect(bareCpu).toBeGreaterThan(0);
    expect(figure(r, "protocol agents, long-poll CPU per dispatch / bare chain's [PostgreSQL, 2 replicas]")).toBeCloseTo(ours / bareCpu, 6);
    const details = r.runs[0]?.details as { results: Array<{ cpu: { roles: Record<string, { cpuMs: number }> } }>; bare: { cpu: { roles: Record<string, unknown> } } };
    const roles = details.results[0]!.cpu.roles;
    expect(Object.keys(roles).sort()).toEqual(['PostgreSQL', 'agents', 'bench', 'replica A', 'replica B']);
    // Every dispatch writes to PostgreSQL twice (the submit, the lease) and passes through both replicas.
    for (const role of ['PostgreSQL', 'replica A', 'replica B']) expect(roles[role]!.cpuMs, role).toBeGreaterThan(0);
    expect(Object.keys(details.bare.cpu.roles).sort()).toEqual(['PostgreSQL', 'agents', 'bench', 'replica A', 'replica B']);
  });

  it('--replicas above 1 without --database postgres is refused', async () => {
    const run = promisify(execFile)(process.execPath, [BENCH, 'throughput', '--runs=1', `--out-dir=${outDir}`, '--replicas=2'], { cwd: REPO_ROOT });
    await expect(run).rejects.toMatchObject({ stderr: expect.stringMatching(/--replicas above 1 needs --database postgres/) });
  });

  it('throughput: protocol agents, batched submits', async () => {
    const r = await bench('throughput', ['--agent=protocol', '--protocol-configs=1x2', '--submit=batch', '--commands=200']);
    const results = r.runs[0]?.details.results as Array<{ label: string; commands: number }>;
    expect(results.map((v) => [v.label, v.commands])).toEqual([['protocol 1x2, batch submit', 200]]);
    expect(figure(r, 'protocol 1x2, batch submit: completed/s')).toBeGreaterThan(0);
  });

  it('submit: control server vs bare Fastify', async () => {
    const r = await bench('submit', ['--duration=1', '--warmup=0', '--connections=4']);
    expect(figure(r, 'bare Fastify POST: req/s')).toBeGreaterThan(0);
    expect(figure(r, 'POST /commands: req/s')).toBeGreaterThan(0);
    expect(figure(r, 'POST /commands / bare Fastify')).toBeGreaterThan(0);
  });

  it('sse: fan-out to 50 clients', async () => {
    const r = await bench('sse', ['--clients=50', '--events=2', '--gap-ms=20']);
    const details = r.runs[0]?.details as { clients: number; delivered: { latency: { count: number }; missed: number } };
    expect(details.clients).toBe(50);
    expect(details.delivered.latency.count).toBe(100);
    expect(details.delivered.missed).toBe(0);
    expect(figure(r, 'delivery p99')).toBeGreaterThan(0);
    expect(figure(r, 'server RSS with clients')).toBeGreaterThan(0);
  });

  it('idle: waiting polls and SSE clients', async () => {
    // All at once with waits longer than the run: every poll is still waiting at the end.
    const r = await bench('idle', ['--polls=100', '--sse=20', '--seconds=2', '--settle=1', '--start=together']);
    expect(figure(r, 'waiting polls (end)')).toBe(100);
    expect(figure(r, 'SSE clients (end)')).toBe(20);
    // A percentage of one core: an idle server is far from busy, and a misread /proc (ticks taken
    // as seconds, or the wrong fields) lands far outside this range.
    expect(figure(r, 'server CPU while idle')).toBeLessThan(25);
    expect(figure(r, 'server CPU while settling after set-up')).toBeLessThan(200);
    expect(figure(r, 'server RSS')).toBeGreaterThan(20);
    expect(figure(r, 'server RSS')).toBeLessThan(2000);
    // The same load, then, on the bare node:http baseline: it held every poll and stream too.
    const bare = r.runs[0]?.details.bare as { end: { waiting: number; streams: number } };
    expect(bare.end).toEqual({ waiting: 100, streams: 20 });
    expect(figure(r, 'baseline CPU while idle (bare node:http)')).toBeLessThan(25);
  });

  it('idle --cpu-prof profiles the server, and profile --by-second shows where each busy second went', async () => {
    // A staggered fleet with 2 s waits: the polls renew during the window (25 a second).
    const r = await bench('idle', ['--polls=50', '--sse=10', '--seconds=1', '--settle=1', '--wait=2', '--cpu-prof', '--no-baseline']);
    expect(figure(r, 'poll renewals per second')).toBeGreaterThan(5);
    expect(figure(r, 'server CPU per poll renewal')).toBeGreaterThan(0);
    const profile = r.runs[0]?.details.profile as { file: string; byPlace: Array<{ name: string }> };
    // Our own files are told apart by place (which one is sampled varies: an idle poll's claim
    // no longer spends time in the store).
    expect(profile.byPlace.map((p) => p.name).some((name) => name.startsWith('control-server/'))).toBe(true);
    const { stdout } = await promisify(execFile)(process.execPath, [BENCH, 'profile', '--by-second', profile.file], {
      cwd: REPO_ROOT,
      timeout: 150_000,
    });
    expect(stdout).toContain('self time by place');
    expect(stdout).toMatch(/second by second[\s\S]*\n\s+0 s\s+\d+ ms busy/);
  });

  it('store: the SQLite store alone, in-process, claims and reports every command it submitted', async () => {
    const r = await bench('store', ['--commands=300', '--sqlite-sync=normal']);
    expect(r.runs[0]?.details.commands).toBe(300); // the run throws unless all 300 were claimed and reported
    const submit = figure(r, 'submit: store CPU per command [NORMAL]');
    const rest = figure(r, 'claim + report: store CPU per command [NORMAL]');
    // Microseconds of CPU: a misread cpuUsage (ms taken for µs) lands far outside this range.
    expect(submit).toBeGreaterThan(1);
    expect(submit).toBeLessThan(20_000);
    expect(rest).toBeGreaterThan(1);
    expect(figure(r, 'all three: store CPU per command [NORMAL]')).toBeCloseTo(submit + rest, 6);
  });

  it('growth: 200 vs 2 000 stored commands', async () => {
    const r = await bench('growth', ['--sizes=200,2000', '--samples=20', '--warmup=5']);
    type Counted = { count: number; p50: number };
    const results = r.runs[0]?.details.results as Array<
      { stored: number; dbMiB: number; seededCounts: Record<string, number> } & Record<'claim' | 'report' | 'list' | 'listCursor' | 'metrics', Counted>
    >;
    expect(results.map((s) => [s.stored, s.claim.count, s.report.count, s.list.count, s.listCursor.count, s.metrics.count])).toEqual([
      [200, 20, 20, 20, 20, 1],
      [2000, 20, 20, 20, 20, 1],
    ]);
    // The seeded rows are really in the file: ten times the rows, a clearly larger database.
    expect((results[1]?.dbMiB ?? 0) / (results[0]?.dbMiB ?? 1)).toBeGreaterThan(2);
    expect(results.map((s) => s.seededCounts)).toEqual([
      { PENDING: 100, RUNNING: 0, COMPLETED: 190, FAILED: 10 },
      { PENDING: 100, RUNNING: 0, COMPLETED: 1900, FAILED: 100 },
    ]);
    for (const name of ['claim', 'report', 'list', 'list cursor page', 'GET /metrics'] as const) {
      const key = ({ claim: 'claim', report: 'report', list: 'list', 'list cursor page': 'listCursor', 'GET /metrics': 'metrics' } as const)[name];
      const [small, large] = results as [(typeof results)[0], (typeof results)[0]];
      expect(figure(r, `ratio ${name} p50`)).toBeCloseTo(large[key].p50 / small[key].p50, 6);
    }
  });

  it('growth on PostgreSQL: a backlog per size, held keys, counts kept', { timeout: 180_000 }, async () => {
    // 40 % of each size held behind keys (2 and 20 keys), and a larger ready backlog at the second size.
    const r = await bench('growth', ['--database=postgres', '--sizes=500,5000', '--pending=10,300', '--held-share=0.4', '--samples=20', '--warmup=5']);
    type Counted = { count: number; p50: number };
    const results = r.runs[0]?.details.results as Array<
      { stored: number; pending: number; dbMiB: number; seededCounts: Record<string, number> } & Record<'claim' | 'report' | 'list' | 'listCursor' | 'get' | 'metrics', Counted>
    >;
    expect(results.map((s) => [s.stored, s.pending, s.claim.count, s.report.count, s.list.count, s.listCursor.count, s.get.count, s.metrics.count])).toEqual([
      [500, 10, 20, 20, 20, 20, 20, 1],
      [5000, 300, 20, 20, 20, 20, 20, 1],
    ]);
    // The rows are really in the database: ten times the rows, a larger database.
    expect(results[1]?.dbMiB ?? 0).toBeGreaterThan((results[0]?.dbMiB ?? Infinity) + 1);
    // The server's counts (the counter row's, recounted after the seeding) before the timed part:
    // 40 % held (one RUNNING holder per 100), the rest finished (every 20th FAILED), plus the backlog.
    expect(results.map((s) => s.seededCounts)).toEqual([
      { PENDING: 200 + 10, RUNNING: 2, COMPLETED: 285, FAILED: 15 },
      { PENDING: 2000 + 300, RUNNING: 20, COMPLETED: 2850, FAILED: 150 },
    ]);
    const at = '5,000 stored (40 % held behind keys) + 300 pending [PostgreSQL]';
    expect(figure(r, `${at}: claim p50`)).toBeGreaterThan(0);
    expect(figure(r, `${at}: seed CPU time`)).toBeGreaterThan(0);
    expect(figure(r, 'ratio claim p50 [PostgreSQL]')).toBeCloseTo((results[1]?.claim.p50 ?? 0) / (results[0]?.claim.p50 ?? 1), 6);
  });

  it('growth: --pending is one backlog or one per size', async () => {
    const run = promisify(execFile)(process.execPath, [BENCH, 'growth', '--runs=1', `--out-dir=${outDir}`, '--sizes=200,2000', '--pending=1,2,3'], {
      cwd: REPO_ROOT,
    });
    await expect(run).rejects.toMatchObject({ stderr: expect.stringMatching(/--pending: one backlog, or one per size \(2\), not 3/) });
  });

  it('soak: real agents on a steady backlog, per-interval table and chart', async () => {
    const backlog = 300;
    const r = await bench('soak', [
      '--minutes=0.2',
      '--interval-seconds=4',
      '--agents=2',
      '--concurrency=4',
      `--backlog=${backlog}`,
      '--batch-size=50',
      '--retention=1m',
    ]);
    const details = r.runs[0]?.details as {
      submitted: number;
      chart: string;
      intervals: Array<{
        atMinutes: number;
        completed: number;
        completedPerSecond: number;
        serverCpuMicrosPerCommand: number;
        rssMiB: number;
        dbMiB: number;
        eventRows: number;
        stored: Record<string, number>;
      }>;
    };
    const intervals = details.intervals;
    expect(intervals).toHaveLength(3);
    const completed = intervals.reduce((sum, i) => sum + i.completed, 0);
    expect(figure(r, 'completed')).toBe(completed);
    expect(figure(r, 'failed')).toBe(0);
    // The backlog keeper submitted what was completed plus at most one refill of backlog.
    expect(details.submitted).toBeGreaterThanOrEqual(completed);
    expect(details.submitted - completed).toBeLessThanOrEqual(backlog + 50);
    for (const [n, i] of intervals.entries()) {
      expect(i.atMinutes).toBeCloseTo(((n + 1) * 4) / 60, 1);
      expect(i.completed).toBeGreaterThan(0);
      // The agents never ran dry: work was waiting at every reading.
      expect(i.stored.PENDING).toBeGreaterThan(0);
      // Microseconds of one server process per DELAY 0 command: tens to a few thousand.
      expect(i.serverCpuMicrosPerCommand).toBeGreaterThan(5);
      expect(i.serverCpuMicrosPerCommand).toBeLessThan(50_000);
      expect(i.rssMiB).toBeGreaterThan(20);
      expect(i.dbMiB).toBeGreaterThan(0);
    }
    // submit, claim and report are each one event, and nothing is old enough to be pruned yet.
    expect(intervals[2]?.eventRows).toBeGreaterThanOrEqual(Math.min(3 * completed, 100_000));
    const [first, , last] = intervals as [(typeof intervals)[0], unknown, (typeof intervals)[0]];
    expect(figure(r, 'completed/s last / first')).toBeCloseTo(last.completedPerSecond / first.completedPerSecond, 6);
    expect(figure(r, 'server CPU per command last / first')).toBeCloseTo(last.serverCpuMicrosPerCommand / first.serverCpuMicrosPerCommand, 6);
    const svg = readFileSync(details.chart, 'utf8');
    expect(svg.startsWith('<svg')).toBe(true);
    const panels = [...svg.matchAll(/<g class="panel"[\s\S]*?<\/g>/g)].map((m) => m[0]);
    expect(panels.map((p) => />([^<]+)<\/text>/.exec(p)?.[1])).toEqual([
      'completed/s (cmd/s)',
      'server CPU per command (µs)',
      'server RSS (MiB)',
      'database + WAL (MiB)',
    ]);
    for (const p of panels) expect(/<polyline[^>]* points="([^"]+)"/.exec(p)?.[1]?.split(' ')).toHaveLength(3);
  });

  it('sse-slow: non-reading /events clients during a burst of large results', async () => {
    const r = await bench('sse-slow', ['--clients=50', '--commands=300', '--result-kib=16', '--agents=1', '--concurrency=8', '--client-gap-ms=10']);
    const d = r.runs[0]?.details as {
      completed: number;
      failed: number;
      targetHits: number;
      normalClient: { where: string; requests: number; posted: number; timeouts: number; errors: string[]; loopDelay?: { p99: number; max: number } };
      slowClients: { open: number; closed: number };
    };
    // The normal client ran in a process of its own and said how late its own event loop was.
    expect(d.normalClient.where).toBe('process');
    expect(d.normalClient.loopDelay?.max).toBeGreaterThan(0);
    expect(figure(r, 'normal client POST p99')).toBeGreaterThan(0);
    expect(figure(r, 'normal client GET p99')).toBeGreaterThan(0);
    // Every command of the burst fetched the local target (agents may reach 127.0.0.1 here).
    expect(d.targetHits).toBeGreaterThanOrEqual(300);
    expect(d.failed).toBe(0);
    expect(d.completed).toBeGreaterThanOrEqual(300 + d.normalClient.posted);
    expect(d.normalClient.errors).toEqual([]);
    expect(d.normalClient.requests).toBeGreaterThanOrEqual(2 * d.normalClient.posted - 1);
    expect(d.slowClients.open + d.slowClients.closed).toBe(50);
    expect(figure(r, 'server peak RSS during the burst')).toBeGreaterThanOrEqual(figure(r, 'server RSS before clients'));
    expect(figure(r, 'normal client p99')).toBeGreaterThanOrEqual(figure(r, 'normal client p50'));
    expect(figure(r, 'burst duration')).toBeGreaterThan(0);
  });

  it('fairness: a trickle beside a flooding key, and priority 100 behind a backlog', async () => {
    // The flood (200 × 100 ms, limit 4) takes 5 s at its limit, longer than the trickle (~3 s): a
    // limit not kept would run it on all 8 slots and finish it in 2.5 s, before the trickle ends.
    const r = await bench('fairness', [
      '--agents=1', '--concurrency=8', '--flood=200', '--flood-delay=100', '--trickle-seconds=3', '--warmup=1',
      '--pending=400', '--priority-delay=50', '--priority-samples=3', '--batch-size=100',
    ]);
    type Trickle = { latency: { count: number; p99: number }; floodPendingAtEnd?: number };
    const d = r.runs[0]?.details as {
      trickle: { idle: Trickle; flood: Trickle };
      priority: { samples: Array<{ waitMs: number; pendingAtSubmit: number; overtook: number }> };
    };
    // Every trickle command started (each is awaited on the counting target).
    expect([d.trickle.idle.latency.count, d.trickle.flood.latency.count]).toEqual([3, 3]);
    expect(d.trickle.flood.floodPendingAtEnd).toBeGreaterThan(0);
    expect(figure(r, 'trickle p99 flooded / idle')).toBeCloseTo(d.trickle.flood.latency.p99 / d.trickle.idle.latency.p99, 6);
    // First in, first out would start it after the whole backlog: it must overtake most of it.
    expect(d.priority.samples).toHaveLength(3);
    for (const s of d.priority.samples) {
      expect(s.pendingAtSubmit).toBeGreaterThan(0);
      expect(s.overtook).toBeGreaterThanOrEqual(s.pendingAtSubmit / 2);
    }
  });

  it('disk: commit latency', async () => {
    const r = await bench('disk', ['--commits=20']);
    expect(figure(r, 'SQLite commit, synchronous=FULL: p50')).toBeGreaterThan(0);
    expect(figure(r, 'write + fdatasync: p50')).toBeGreaterThan(0);
  });
});
