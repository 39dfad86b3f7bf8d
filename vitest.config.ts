import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['{protocol,hw-sim,provisioning,gateway,ledger,cli,test}/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
    reporters: ['default', './test/summary-reporter.ts'],
  },
});
