import { defineConfig } from 'vitest/config';

// .ci/run's check that a failing test fails the run: the same global setup as
// the suite (the embedded PostgreSQL's process hooks once turned exit code 1 into 0).
export default defineConfig({
  test: {
    include: ['test/canary/fails.canary.ts'],
    globalSetup: ['test/support/global-setup.ts'],
    hookTimeout: 180_000,
  },
});
