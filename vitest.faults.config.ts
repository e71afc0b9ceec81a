import { defineConfig } from 'vitest/config';

/**
 * The fault-injection suite (test/faults/): real connector and gateway processes killed, starved
 * and fed garbage. Minutes long, so it runs on its own: `npx vitest run -c vitest.faults.config.ts`
 * after `npm run build`. The plain `vitest run` also finds these files but skips them unless
 * HERMES_FAULTS=1, which this config sets.
 */
export default defineConfig({
  test: {
    include: ['test/faults/**/*.test.ts'],
    env: { HERMES_FAULTS: '1' },
    testTimeout: 300_000,
    hookTimeout: 120_000,
    // One file at a time: each starts its own processes and they would fight for two cores.
    fileParallelism: false,
    maxWorkers: 1,
    // One temp root per run, removed at the end (test/support/temp-root.ts).
    globalSetup: ['test/support/temp-root.ts'],
  },
});
