/** The root vitest config, narrowed to the test files of the file being mutated (MUTATE_TESTS). */
import { existsSync } from 'node:fs';
import root from '../vitest.config.js';

const tests = (process.env.MUTATE_TESTS ?? '').split(',').filter((file) => file && existsSync(file));
if (tests.length === 0) throw new Error('MUTATE_TESTS names no existing test file');

// Replaced, not merged: mergeConfig would append to the root's include (the whole suite).
// `isolate: false`: the test worker keeps its imported modules from one mutant to the next (Stryker
// switches mutants at run time), instead of importing fastify, zod and SQLite again for each.
// MUTATE_SKIP: tests (by name) that cannot kill a mutant of this target and only cost time.
// `projects` is dropped: each project has its own include, which would bring back the whole suite
// (the `main` project's), so a dry run took the full suite and Stryker's 5-minute limit ran out.
// The targets' tests are all in `main`; none needs the PostgreSQL project's globalSetup.
const skip = process.env.MUTATE_SKIP;
const { projects: _projects, ...test } = root.test ?? {};
export default {
  ...root,
  test: {
    ...test,
    include: tests,
    maxWorkers: 1,
    isolate: false,
    ...(skip ? { testNamePattern: new RegExp(`^(?!.*(?:${skip}))`) } : {}),
  },
};
