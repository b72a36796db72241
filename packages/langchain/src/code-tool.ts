// The LangChain code tool: one tool call, one step (core's runStep) in its own sandbox or a branch of the
// workspace. The model reads the compact text; the StepResult (RunResult, changed files, merge outcome) is the
// ToolMessage's artifact, for the application.
import { ToolMessage } from '@langchain/core/messages';
import { ToolInputParsingException, tool } from '@langchain/core/tools';
import { describeStep, describeStepError, isStepAborted, resolveCodeToolOptions, runStep, type CodeToolOptions, type StepResult } from '@zeroboot/core';

export type { CodeToolOptions } from '@zeroboot/core';

/** The artifact of each call's ToolMessage. */
export type CodeToolArtifact = StepResult;

/** The artifact of a call's ToolMessage with status 'error' when the step threw: the error, for the application. */
export interface CodeToolErrorArtifact {
  error: unknown;
}

/**
 * A LangChain tool (`tool()` from `@langchain/core/tools`, `responseFormat: 'content_and_artifact'`) whose
 * input is `{ runtime, code }`. Bad options throw a ZerobootError `INVALID_ARGUMENT` naming the field.
 * A tool call whose step throws (a closed workspace, a host failure) is answered with an error ToolMessage
 * that tells the model what happened (core's describeStepError), its artifact `{ error }`; an abort is thrown.
 *
 * @example
 * const runCode = createCodeTool({ zeroboot: zb, runtimes: ['python', 'shell'], workspace: await zb.sandbox() });
 * const agent = createAgent({ model: 'openai:gpt-4.1-mini', tools: [runCode] });
 */
export function createCodeTool(options: CodeToolOptions) {
  const resolved = resolveCodeToolOptions(options, 'createCodeTool');
  const { zeroboot, workspace, merge, timeoutMs, maxOutputChars, name } = resolved;
  const codeTool = tool(
    async ({ runtime, code }, config): Promise<[string, CodeToolArtifact]> => {
      const step = await runStep(zeroboot, { runtime, code, workspace, merge, timeoutMs, signal: config?.signal });
      return [describeStep(step, maxOutputChars), step];
    },
    { name, description: resolved.description, schema: resolved.inputSchema, responseFormat: 'content_and_artifact' },
  );
  // A thrown error would reach the model as LangChain's text for it: a ToolInvocationError with a host stack
  // trace for input that fails the schema, else the error's message (host paths, options the model cannot
  // change) and "Please fix your mistakes.". A model called this tool: answer it with what happened instead.
  // Called directly (no tool call), or aborted, the error is thrown as it is.
  const call = codeTool.call.bind(codeTool);
  codeTool.call = (async (input: unknown, config?: { toolCall?: { id?: string }; signal?: AbortSignal }) => {
    try {
      return await call(input as never, config as never);
    } catch (error) {
      const id = config?.toolCall?.id;
      if (id === undefined || isStepAborted(error, config?.signal)) throw error;
      if (error instanceof ToolInputParsingException) {
        const problems = error.message.replace(/^Received tool input did not match expected schema\s*/, '');
        return new ToolMessage({
          content: `Invalid input for ${name}, nothing was run:\n${problems}\nCall ${name} again with {"runtime": one of ${resolved.runtimes.join(' | ')}, "code": the program as a string}.`,
          tool_call_id: id,
          name,
          status: 'error',
        });
      }
      const artifact: CodeToolErrorArtifact = { error };
      return new ToolMessage({ content: describeStepError(error, name), artifact, tool_call_id: id, name, status: 'error' });
    }
  }) as typeof codeTool.call;
  return codeTool;
}
