/** The root vitest config, narrowed to the test files of the file being mutated (MUTATE_TESTS). */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { BaseSequencer, type TestSpecification } from 'vitest/node';
import root from '../vitest.config.js';

const tests = (process.env.MUTATE_TESTS ?? '').split(',').filter((file) => file && existsSync(file));
if (tests.length === 0) throw new Error('MUTATE_TESTS names no existing test file');

/**
 * Runs the test files in the order MUTATE_TESTS lists them (vitest's own order puts the slowest
 * first): a target lists its quick, pointed tests first, so a mutant they kill stops there
 * (Stryker bails at the first failure).
 */
class ListedOrder extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const rank = (file: TestSpecification) => {
      const i = tests.findIndex((test) => file.moduleId.endsWith(test));
      return i === -1 ? tests.length : i;
    };
    return [...files].sort((a, b) => rank(a) - rank(b));
  }
}

// Replaced, not merged: mergeConfig would append to the root's include (the whole suite). The
// root's projects go too: each has its own include, which would win over this one (a run with
// them ran the whole suite). The targets' tests are all of the `main` project (no PostgreSQL).
// `isolate: false`: the test worker keeps its imported modules from one mutant to the next (Stryker
// switches mutants at run time), instead of importing fastify, zod and SQLite again for each.
// MUTATE_SKIP: tests (by name) that cannot kill a mutant of this target and only cost time
// (skip-setup.ts skips them).
export default {
  ...root,
  test: {
    ...root.test,
    projects: undefined,
    include: tests,
    maxWorkers: 1,
    isolate: false,
    sequence: { ...root.test?.sequence, sequencer: ListedOrder },
    setupFiles: [...(root.test?.setupFiles ?? []), fileURLToPath(new URL('./skip-setup.ts', import.meta.url))],
  },
};
