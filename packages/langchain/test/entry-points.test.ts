// The package's two entry points, loaded by a real Node from the built package as an application would: the
// code tool's must not load deepagents (an optional peer dependency, ~500 ms to import), and without
// deepagents the Deep Agents entry point fails with Node's own "cannot find package" error, not another one.
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

import { describe, expect, test } from 'vitest';

const root = fileURLToPath(new URL('../../..', import.meta.url));

/**
 * Runs `code` (an ES module) in a Node where resolving 'deepagents' fails as if it were not installed, and
 * sets globalThis.triedDeepAgents (module.registerHooks runs its hooks on the main thread).
 */
function withoutDeepAgents(code: string): string {
  const hide = `import { registerHooks } from 'node:module';
registerHooks({ resolve(specifier, context, next) {
  if (specifier === 'deepagents') globalThis.triedDeepAgents = true;
  if (specifier === 'deepagents') throw Object.assign(new Error("Cannot find package 'deepagents'"), { code: 'ERR_MODULE_NOT_FOUND' });
  return next(specifier, context);
} });`;
  return execFileSync(process.execPath, ['--import', `data:text/javascript,${encodeURIComponent(hide)}`, '--input-type=module', '-e', code], { cwd: root, encoding: 'utf8' });
}

describe('entry points', () => {
  test('@zeroboot/langchain loads without deepagents; @zeroboot/langchain/deep-agents says it is missing', () => {
    const out = withoutDeepAgents(`
      const { createCodeTool } = await import('@zeroboot/langchain');
      console.log(typeof createCodeTool, globalThis.triedDeepAgents ?? false);
      await import('@zeroboot/langchain/deep-agents').catch((error) => console.log(error.code, error.message));`);
    expect(out).toBe("function false\nERR_MODULE_NOT_FOUND Cannot find package 'deepagents'\n");
  });

  test('@zeroboot/langchain/deep-agents exports ZerobootSandbox, a Deep Agents BaseSandbox', async () => {
    const { ZerobootSandbox } = await import('@zeroboot/langchain/deep-agents');
    const { BaseSandbox } = await import('deepagents');
    expect(ZerobootSandbox.prototype).toBeInstanceOf(BaseSandbox);
  });
});
