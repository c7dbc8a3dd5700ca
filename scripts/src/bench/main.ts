/**
 * npm run bench -- <scenario> [--runs N] [--out-dir DIR] [scenario options]
 * npm run bench -- profile [--by-second] <file.cpuprofile>   summarise a V8 CPU profile
 * npm run bench -- --help                         scenarios and their options
 */
import { loadavg } from 'node:os';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { loadProfile, printBySecond, printProfile, summariseProfile } from './harness/cpu-profile.js';
import { DEFAULT_OUT_DIR } from './harness/paths.js';
import { installExitHandlers, stopAll } from './harness/processes.js';
import { machine, printTable, summarise, writeJson, type RunResult } from './harness/report.js';
import { Options, type Scenario } from './harness/scenario.js';
import { disk } from './scenarios/disk.js';
import { fairness } from './scenarios/fairness.js';
import { growth } from './scenarios/growth.js';
import { idle } from './scenarios/idle.js';
import { latency } from './scenarios/latency.js';
import { soak } from './scenarios/soak.js';
import { peers } from './scenarios/peers.js';
import { sse } from './scenarios/sse.js';
import { sseSlow } from './scenarios/sse-slow.js';
import { store } from './scenarios/store.js';
import { submit } from './scenarios/submit.js';
import { throughput } from './scenarios/throughput.js';

const SCENARIOS: Scenario[] = [latency, throughput, submit, store, sse, sseSlow, idle, growth, soak, disk, peers, fairness];

function usage(): string {
  const lines = [
    'usage: npm run bench -- <scenario> [--runs N] [--out-dir DIR] [--quiet-load X] [options]',
    '       npm run bench -- profile [--by-second] <file.cpuprofile>',
    '  --by-second  also show each busy second of the profile and its top functions',
    '  --quiet-load X  before each run, wait (up to 15 min) until the 1-minute load average is at most X',
    '',
  ];
  for (const s of SCENARIOS) {
    lines.push(`${s.name}: ${s.summary} (default ${s.defaultRuns} runs)`);
    for (const [name, spec] of Object.entries(s.options)) {
      lines.push(`  --${name}${spec.type === 'string' ? `=${String(spec.default)}` : ''}  ${spec.description}`);
    }
  }
  return lines.join('\n');
}

async function main(argv: string[]): Promise<void> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    console.log(usage());
    return;
  }
  if (name === 'profile') {
    const bySecond = rest.includes('--by-second');
    for (const file of rest.filter((arg) => arg !== '--by-second')) {
      const profile = loadProfile(file);
      printProfile(summariseProfile(file, undefined, profile));
      if (bySecond) printBySecond(file, profile);
    }
    return;
  }
  const scenario = SCENARIOS.find((s) => s.name === name);
  if (!scenario) throw new Error(`unknown scenario "${name}"\n\n${usage()}`);
  const options: NonNullable<ParseArgsConfig['options']> = {
    runs: { type: 'string', default: String(scenario.defaultRuns) },
    'out-dir': { type: 'string', default: DEFAULT_OUT_DIR },
    'quiet-load': { type: 'string' },
  };
  for (const [key, spec] of Object.entries(scenario.options)) {
    options[key] = spec.default === undefined ? { type: spec.type } : ({ type: spec.type, default: spec.default } as never);
  }
  const { values } = parseArgs({ args: rest, options, strict: true, allowPositionals: false });
  const o = new Options(values);
  const runs = o.num('runs');
  const outDir = o.str('out-dir');

  installExitHandlers();
  const startedAt = new Date().toISOString();
  const m = machine();
  console.log(`${scenario.name}: ${scenario.summary}`);
  console.log(`machine: ${m.cores} × ${m.cpuModel}, Node ${m.node}, ${m.platform}; ${runs} run(s)`);
  const results: Array<RunResult & { loadAverage: { before: number[]; after: number[] } }> = [];
  for (let run = 0; run < runs; run++) {
    if (values['quiet-load'] !== undefined) await waitForQuiet(o.num('quiet-load'));
    const before = loadavg();
    if (before[0] !== undefined && before[0] > 1.5) {
      console.warn(`warning: load average ${before.map((l) => l.toFixed(2)).join(' ')} on ${m.cores} cores: other work shares this machine`);
    }
    const t0 = performance.now();
    const result = await scenario.run(o, { run, runs, outDir });
    results.push({ ...result, loadAverage: { before, after: loadavg() } });
    console.log(`run ${run + 1}/${runs} done in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }
  const summary = summarise(results);
  printTable(`${scenario.name} — min / median / max over ${runs} run(s)`, summary);
  const file = writeJson(outDir, scenario.name, {
    scenario: scenario.name,
    command: `npm run bench -- ${argv.join(' ')}`,
    startedAt,
    finishedAt: new Date().toISOString(),
    machine: m,
    options: values,
    summary,
    runs: results,
  });
  console.log(`\nwrote ${file}`);
  scenario.afterRuns?.(summary, results, file);
}

/** --quiet-load=X: waits (up to 15 min) until the 1-minute load average is at most X. */
async function waitForQuiet(max: number): Promise<void> {
  const deadline = Date.now() + 15 * 60_000;
  while ((loadavg()[0] ?? 0) > max && Date.now() < deadline) {
    console.log(`load average ${(loadavg()[0] ?? 0).toFixed(2)} > ${max}: waiting for a quieter machine`);
    await new Promise((r) => setTimeout(r, 10_000));
  }
}

main(process.argv.slice(2)).then(
  () => process.exit(0),
  async (err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    await stopAll();
    process.exit(1);
  },
);
