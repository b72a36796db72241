import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['packages/*/test/**/*.test.ts', 'test/**/*.test.ts'],
    testTimeout: 30_000,
    // Tests create namespaces, cgroups and fork-servers, and the machines have 2 cores:
    // one file at a time, each in its own process.
    pool: 'forks',
    fileParallelism: false,
  },
});
