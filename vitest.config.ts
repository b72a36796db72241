import { defineConfig } from 'vitest/config';

/** The runtimes the attack suite (test/security) is run from: the same files, once per runtime. */
const ATTACK_RUNTIMES = ['python', 'node', 'shell'] as const;

export default defineConfig({
  test: {
    testTimeout: 30_000,
    // Tests create namespaces, cgroups and fork-servers, and the machines have 2 cores:
    // one file at a time, each in its own process, one project after the other.
    pool: 'forks',
    fileParallelism: false,
    projects: [
      {
        extends: true,
        test: { name: 'sdk', include: ['packages/*/test/**/*.test.ts', 'test/**/*.test.ts'], exclude: ['test/security/**'], sequence: { groupOrder: 0 } },
      },
      ...ATTACK_RUNTIMES.map((runtime, index) => ({
        extends: true,
        test: {
          name: `attacks from ${runtime}`,
          include: ['test/security/**/*.test.ts'],
          provide: { attackRuntime: runtime },
          sequence: { groupOrder: index + 1 },
        },
      })),
    ],
  },
});
