// The LangChain code tool: one tool call, one step (core's runStep) in its own sandbox or a branch of the
// workspace. The model reads the compact text; the StepResult (RunResult, changed files, merge outcome) is the
// ToolMessage's artifact, for the application.
import { tool } from '@langchain/core/tools';
import { describeStep, resolveCodeToolOptions, runStep, type CodeToolOptions, type StepResult } from '@zeroboot/core';

export type { CodeToolOptions } from '@zeroboot/core';

/** The artifact of each call's ToolMessage. */
export type CodeToolArtifact = StepResult;

/**
 * A LangChain tool (`tool()` from `@langchain/core/tools`, `responseFormat: 'content_and_artifact'`) whose
 * input is `{ runtime, code }`. Bad options throw a ZerobootError `INVALID_ARGUMENT` naming the field.
 *
 * @example
 * const runCode = createCodeTool({ zeroboot: zb, runtimes: ['python', 'shell'], workspace: await zb.sandbox() });
 * const agent = createAgent({ model: 'openai:gpt-4.1-mini', tools: [runCode] });
 */
export function createCodeTool(options: CodeToolOptions) {
  const resolved = resolveCodeToolOptions(options, 'createCodeTool');
  const { zeroboot, workspace, merge, timeoutMs, maxOutputChars } = resolved;
  return tool(
    async ({ runtime, code }, config): Promise<[string, CodeToolArtifact]> => {
      const step = await runStep(zeroboot, { runtime, code, workspace, merge, timeoutMs, signal: config?.signal });
      return [describeStep(step, maxOutputChars), step];
    },
    { name: resolved.name, description: resolved.description, schema: resolved.inputSchema, responseFormat: 'content_and_artifact' },
  );
}
