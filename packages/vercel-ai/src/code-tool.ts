// The AI SDK code tool: one tool call, one step (core's runStep) in its own sandbox or a branch of the
// workspace. `execute` returns the structured StepResult (in the step's tool results, for the application);
// `toModelOutput` turns it into the compact text the model reads.
import { describeStep, resolveCodeToolOptions, runStep, type CodeInput, type CodeToolOptions, type StepResult } from '@zeroboot/core';
import { tool, type Tool } from 'ai';

export type { CodeToolOptions } from '@zeroboot/core';

/** What `execute` returns for each call. */
export type CodeToolOutput = StepResult;

/**
 * An AI SDK tool whose input is `{ runtime, code }`; the call's `abortSignal` kills the run. The tool's name is
 * its key in `tools` (the `name` option is for LangChain). Bad options throw a ZerobootError `INVALID_ARGUMENT`.
 *
 * @example
 * await generateText({ model, tools: { runCode: codeTool({ zeroboot: zb, runtimes: ['python'] }) }, stopWhen: stepCountIs(5), prompt });
 */
export function codeTool(options: CodeToolOptions): Tool<CodeInput, CodeToolOutput> {
  const { zeroboot, workspace, merge, timeoutMs, maxOutputChars, description, inputSchema } = resolveCodeToolOptions(options, 'codeTool');
  return tool({
    description,
    inputSchema,
    execute: ({ runtime, code }: CodeInput, { abortSignal }): Promise<CodeToolOutput> =>
      runStep(zeroboot, { runtime, code, workspace, merge, timeoutMs, signal: abortSignal }),
    toModelOutput: ({ output }) => ({ type: 'text', value: describeStep(output, maxOutputChars) }),
  });
}
