import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The fault suite is long; it runs with `npm run test:faults`.
    exclude: ['test/faults/**', '**/node_modules/**'],
    testTimeout: 60_000,
    hookTimeout: 90_000,
    // Integration tests start real servers and processes; two cores are all CI has.
    maxWorkers: 2,
    // One temp root per run, removed at the end (test/support/temp-root.ts).
    globalSetup: ['test/support/temp-root.ts'],
  },
});
