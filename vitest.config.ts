// Test runner settings: unit tests (test/unit) are pure and fast; integration tests
// (test/integration) start real databases and brokers, hence the long timeouts.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});
