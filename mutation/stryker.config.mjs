/** Stryker for one target of targets.mjs, named by MUTATE_TARGET (run through mutation/run.mjs). */
import { targets } from './targets.mjs';

const name = process.env.MUTATE_TARGET;
const target = targets[name];
if (!target) throw new Error(`MUTATE_TARGET must be one of ${Object.keys(targets).join(', ')}`);

export default {
  testRunner: 'vitest',
  plugins: ['@stryker-mutator/vitest-runner'],
  vitest: { configFile: 'mutation/vitest.config.ts', related: false },
  mutate: target.mutate,
  // Two cores shared with others: one test process at a time; unchanged mutants are not re-run.
  concurrency: Number(process.env.MUTATE_CONCURRENCY ?? 1),
  incremental: true,
  incrementalFile: `mutation/reports/${name}.incremental.json`,
  coverageAnalysis: 'perTest',
  // A mutant that loops forever costs this much over the tests' own time (the machine is shared).
  timeoutMS: 5_000,
  // One sandbox folder per target, so two targets can run side by side.
  tempDirName: `.stryker-tmp-${name}`,
  ignorePatterns: ['/.stryker-tmp-*', '/mutation/reports', 'dist/**/*.map', 'bench-results'],
  cleanTempDir: 'always',
  reporters: ['clear-text', 'progress-append-only', 'json'],
  jsonReporter: { fileName: `mutation/reports/${name}.json` },
  thresholds: { high: 90, low: 85, break: 85 },
  checkers: [],
};
