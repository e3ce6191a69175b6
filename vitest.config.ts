import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 20_000,
    hookTimeout: 20_000,
    // Tests start real servers; files run in parallel workers, each on its own ports (port 0).
    pool: 'forks',
    reporters: ['default', './test/summary-reporter.ts'],
  },
});
