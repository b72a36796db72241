// The AI SDK code tool: one tool call, one step (core's runStep) in its own sandbox or a branch of the
// workspace. `execute` returns the structured StepResult (in the step's tool results, for the application);
// `toModelOutput` turns it into the compact text the model reads.
import { describeStep, describeStepError, isStepAborted, resolveCodeToolOptions, runStep, ZerobootError, type CodeInput, type CodeToolOptions as StepToolOptions, type StepResult } from '@zeroboot/core';
import { tool, type Tool } from 'ai';

/** The options of `codeTool`: core's code tool options, without `name` (an AI SDK tool's name is its key in `tools`). */
export type CodeToolOptions = Omit<StepToolOptions, 'name'>;

/** What `execute` returns for each call. */
export type CodeToolOutput = StepResult;

/**
 * An AI SDK tool whose input is `{ runtime, code }`; the call's `abortSignal` kills the run. The tool's name is
 * its key in `tools`. Bad options throw a ZerobootError `INVALID_ARGUMENT`. A step that throws (a closed
 * workspace, a host failure) becomes a tool error whose message tells the model what happened (core's
 * describeStepError), with the error itself as its `cause`; an abort is rethrown as it is.
 *
 * @example
 * await generateText({ model, tools: { runCode: codeTool({ zeroboot: zb, runtimes: ['python'] }) }, stopWhen: stepCountIs(5), prompt });
 */
export function codeTool(options: CodeToolOptions): Tool<CodeInput, CodeToolOutput> {
  if ((options as { name?: unknown } | null)?.name !== undefined) {
    throw new ZerobootError('INVALID_ARGUMENT', 'Unknown option `codeTool.name`: an AI SDK tool is named by its key in `tools` ({ tools: { my_name: codeTool(…) } }).');
  }
  const { zeroboot, workspace, merge, timeoutMs, maxOutputChars, description, inputSchema } = resolveCodeToolOptions(options, 'codeTool');
  return tool({
    description,
    inputSchema,
    execute: async ({ runtime, code }: CodeInput, { abortSignal }): Promise<CodeToolOutput> => {
      try {
        return await runStep(zeroboot, { runtime, code, workspace, merge, timeoutMs, signal: abortSignal });
      } catch (error) {
        if (isStepAborted(error, abortSignal)) throw error;
        // The AI SDK sends the model this error's message (a tool-error); the application finds the real one as its cause.
        throw new ZerobootError(ZerobootError.isInstance(error) ? error.code : 'SANDBOX_SETUP_FAILED', describeStepError(error), { cause: error });
      }
    },
    toModelOutput: ({ output }) => ({ type: 'text', value: describeStep(output, maxOutputChars) }),
  });
}
