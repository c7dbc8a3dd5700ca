import { defineConfig, mergeConfig } from 'vitest/config';
import root from '../vitest.config.js';

// Tools run on demand, not in `npm test`: `npm run screenshots`, `npm run bench:dashboard`.
export default mergeConfig(
  root,
  defineConfig({
    test: { include: ['dashboard/tools/*.tool.ts'], testTimeout: 300_000, hookTimeout: 120_000, maxWorkers: 1 },
  }),
  false,
);
