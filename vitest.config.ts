import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  resolve: {
    // Tests run the TypeScript sources; real-process tests start the built dist/ entry points.
    alias: [
      {
        find: /^@agent-executor\/common\/group-commit$/,
        replacement: fileURLToPath(new URL('./common/src/group-commit.ts', import.meta.url)),
      },
      { find: /^@agent-executor\/common$/, replacement: fileURLToPath(new URL('./common/src/index.ts', import.meta.url)) },
    ],
  },
  test: {
    include: ['*/test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
    maxWorkers: 2,
  },
});
