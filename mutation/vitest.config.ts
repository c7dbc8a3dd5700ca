/** The root vitest config, narrowed to the test files of the file being mutated (MUTATE_TESTS). */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import root from '../vitest.config.js';

const tests = (process.env.MUTATE_TESTS ?? '').split(',').filter((file) => file && existsSync(file));
if (tests.length === 0) throw new Error('MUTATE_TESTS names no existing test file');

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
    setupFiles: [...(root.test?.setupFiles ?? []), fileURLToPath(new URL('./skip-setup.ts', import.meta.url))],
  },
};
