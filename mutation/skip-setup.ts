/**
 * Skips the tests named by MUTATE_SKIP (a regular expression) in a mutation run: tests that
 * cannot kill a mutant of the target and only cost time. A `testNamePattern` in the vitest
 * config does not do it: Stryker's vitest runner replaces the pattern on every run (with none in
 * the dry run, so those tests were run and counted as covering the target's code).
 */
import { beforeEach } from 'vitest';

const skip = process.env.MUTATE_SKIP;
if (skip) {
  const pattern = new RegExp(skip);
  beforeEach((context) => {
    if (pattern.test(context.task.name)) context.skip();
  });
}
