import { fileURLToPath } from 'node:url';
import { configDefaults, defineConfig } from 'vitest/config';

/** Test files that need PostgreSQL: their project starts one (test-support/postgres-global-setup.ts). */
const POSTGRES_TESTS = '*/test/**/*postgres*.test.ts';

export default defineConfig({
  resolve: {
    // Tests run the TypeScript sources; real-process tests start the built dist/ entry points.
    alias: [
      // Subpath entries (`@agent-executor/common/group-commit`) map to their source file.
      {
        find: /^@agent-executor\/common\/(.+)$/,
        replacement: fileURLToPath(new URL('./common/src/$1.ts', import.meta.url)),
      },
      { find: /^@agent-executor\/common$/, replacement: fileURLToPath(new URL('./common/src/index.ts', import.meta.url)) },
    ],
  },
  test: {
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
    maxWorkers: 2,
    // Two projects so that PostgreSQL starts only when a test that needs it runs: vitest runs a
    // project's globalSetup only when the project has files to run.
    projects: [
      {
        extends: true,
        test: { name: 'main', include: ['*/test/**/*.test.ts'], exclude: [...configDefaults.exclude, POSTGRES_TESTS] },
      },
      {
        extends: true,
        test: { name: 'postgres', include: [POSTGRES_TESTS], globalSetup: ['./test-support/postgres-global-setup.ts'] },
      },
    ],
  },
});
