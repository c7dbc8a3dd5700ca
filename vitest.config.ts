import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

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
    include: ['*/test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
    maxWorkers: 2,
  },
});
