import { defineConfig } from 'vitest/config';

/** The runtimes the attack suite (test/security) is run from: the same files, once per runtime. */
const ATTACK_RUNTIMES = ['python', 'node', 'shell'] as const;

/** The LangChain and AI SDK adapters: their unit tests (a fake sandbox) and the agent loops over real zeroboot. */
const ADAPTER_TESTS = ['packages/langchain/test/**/*.test.ts', 'packages/vercel-ai/test/**/*.test.ts', 'test/adapters/**/*.test.ts'];

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
        test: { name: 'sdk', include: ['packages/*/test/**/*.test.ts', 'test/**/*.test.ts'], exclude: ['test/security/**', 'test/reliability/**', 'test/fuzz/**', ...ADAPTER_TESTS], sequence: { groupOrder: 0 } },
      },
      {
        extends: true,
        test: { name: 'adapters', include: ADAPTER_TESTS, sequence: { groupOrder: ATTACK_RUNTIMES.length + 1 } },
      },
      {
        // The request decoders' libFuzzer harness (scripts/fuzz.sh), for a fixed number of inputs.
        extends: true,
        test: { name: 'fuzz', include: ['test/fuzz/**/*.test.ts'], sequence: { groupOrder: ATTACK_RUNTIMES.length + 2 } },
      },
      {
        // Faults and load: servers and SDKs killed, close with runs in flight, 10 000 runs, 256 at once.
        extends: true,
        test: { name: 'reliability', include: ['test/reliability/**/*.test.ts'], sequence: { groupOrder: ATTACK_RUNTIMES.length + 3 } },
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
