/**
 * Ours, measured by the throughput and latency scenarios themselves (same code, same figures as
 * `npm run bench -- throughput` / `latency`), with the peers' shape: real agents 2 × 8, single
 * and batched submits, and one-at-a-time submit → executor start (the agent's HTTP_GET_JSON
 * reaching a local target) with the latency scenario's 2 agents.
 */
import type { Options as OptionsType, RunContext, Scenario } from '../harness/scenario.js';
import { Options } from '../harness/scenario.js';
import type { Distribution } from '../harness/stats.js';
import { latency } from '../scenarios/latency.js';
import { throughput } from '../scenarios/throughput.js';

export type SqliteSync = 'full' | 'normal';

export interface OursResult {
  completedPerSecond: { single: number; batch: number };
  cpuMicrosPerCommand: { single: { server: number; agents: number }; batch: { server: number; agents: number } };
  startLatency: Distribution;
}

/** A scenario's own defaults with some values replaced. */
function optionsFor(scenario: Scenario, overrides: Record<string, string | boolean>): OptionsType {
  const values: Record<string, unknown> = {};
  for (const [name, spec] of Object.entries(scenario.options)) values[name] = spec.default;
  return new Options({ ...values, ...overrides });
}

interface ThroughputDetail {
  submit: 'single' | 'batch';
  completedPerSecond: number;
  cpuMicrosPerCommand: { server: number; agents: number };
}

export async function measureOurs(
  o: OptionsType,
  sync: SqliteSync,
  context: RunContext,
): Promise<OursResult> {
  const shape = {
    'sqlite-sync': sync,
    agent: 'process',
    configs: '2x8',
    submit: 'single,batch',
    commands: o.str('commands'),
    'in-flight': o.str('in-flight'),
    'batch-size': o.str('batch-size'),
  };
  const t = await throughput.run(optionsFor(throughput, shape), context);
  const results = (t.details?.results ?? []) as ThroughputDetail[];
  const of = (submit: 'single' | 'batch') => {
    const r = results.find((x) => x.submit === submit);
    if (!r) throw new Error(`the throughput scenario gave no ${submit}-submit result`);
    return r;
  };
  const l = await latency.run(
    optionsFor(latency, {
      'sqlite-sync': sync,
      agent: 'process',
      modes: 'long-poll',
      samples: o.str('latency-samples'),
      warmup: o.str('latency-warmup'),
    }),
    context,
  );
  const startLatency = ((l.details?.results ?? []) as Array<{ startLatency: Distribution }>)[0]?.startLatency;
  if (!startLatency) throw new Error('the latency scenario gave no long-poll result');
  return {
    completedPerSecond: { single: of('single').completedPerSecond, batch: of('batch').completedPerSecond },
    cpuMicrosPerCommand: { single: of('single').cpuMicrosPerCommand, batch: of('batch').cpuMicrosPerCommand },
    startLatency,
  };
}
