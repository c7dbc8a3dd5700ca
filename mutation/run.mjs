#!/usr/bin/env node
/**
 * `npm run mutate [target…]`: runs Stryker once per target (all of them by default), one after
 * another, and prints each score. Exits non-zero when a target scores under 85 %.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { groups, targets } from './targets.mjs';

const asked = process.argv.slice(2);
const names = asked.length > 0 ? asked.flatMap((name) => groups[name] ?? [name]) : Object.keys(targets);
const scores = [];
for (const name of names) {
  const target = targets[name];
  if (!target) {
    console.error(`unknown target "${name}"; known: ${[...Object.keys(targets), ...Object.keys(groups)].join(', ')}`);
    process.exit(2);
  }
  const run = spawnSync('npx', ['stryker', 'run', 'mutation/stryker.config.mjs'], {
    stdio: 'inherit',
    env: { ...process.env, MUTATE_TARGET: name, MUTATE_TESTS: target.tests.join(','), MUTATE_SKIP: target.skip ?? '' },
  });
  let report;
  try {
    // Stryker exits non-zero under the `break` threshold too; the report says why.
    report = JSON.parse(readFileSync(`mutation/reports/${name}.json`, 'utf8'));
  } catch {
    console.error(`${name}: Stryker wrote no report (exit ${run.status}); see its output above`);
    scores.push({ file: name, score: 0, killed: NaN, timeout: NaN, survived: NaN, noCoverage: NaN, exit: run.status });
    continue;
  }
  for (const [file, { mutants }] of Object.entries(report.files)) {
    const count = (status) => mutants.filter((m) => m.status === status).length;
    const killed = count('Killed') + count('Timeout');
    const valid = killed + count('Survived') + count('NoCoverage');
    scores.push({
      file,
      score: valid === 0 ? 100 : (100 * killed) / valid,
      killed: count('Killed'),
      timeout: count('Timeout'),
      survived: count('Survived'),
      noCoverage: count('NoCoverage'),
      exit: run.status,
    });
  }
}
console.log('\nmutation score per file');
for (const { file, score, killed, timeout, survived, noCoverage } of scores) {
  console.log(
    `${score.toFixed(1).padStart(6)} %  ${file}  (${killed} killed, ${timeout} timed out, ${survived} survived, ${noCoverage} no coverage)`,
  );
}
process.exit(scores.every(({ score }) => score >= 85) ? 0 : 1);
