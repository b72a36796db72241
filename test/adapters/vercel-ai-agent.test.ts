// The AI SDK's own agent loop (generateText with stopWhen), scripted by MockLanguageModelV4, driving the code
// tool over real zeroboot sandboxes: steps that merge, a failing step that must not reach the workspace, a
// parallel conflict, bad tool input from the model, and an abort. Checked from outside: the workspace's files,
// what the model was sent back, the sandboxes left open and the processes left running.
import type { LanguageModelV4CallOptions, LanguageModelV4GenerateResult } from '@ai-sdk/provider';
import { codeTool } from '@zeroboot/vercel-ai';
import { generateText, isStepCount } from 'ai';
import { MockLanguageModelV4 } from 'ai/test';
import { describe, expect, test } from 'vitest';

import { marker, record, sharedZeroboot } from '../helpers.js';
import { expectAbortKillsCall, trackBranches } from './agent-checks.js';

const zb = sharedZeroboot({ templates: { python: { pool: 2 }, shell: { pool: 2 } }, limits: { timeoutMs: 5_000 } });

type Call = { id: string; input: unknown };
const usage = { inputTokens: { total: 1, noCache: 1, cacheRead: 0, cacheWrite: 0 }, outputTokens: { total: 1, text: 1, reasoning: 0 } };
/** One model response: tool calls of run_code, or a final text. */
function respond(...calls: Call[]): LanguageModelV4GenerateResult {
  return {
    content: calls.map(({ id, input }) => ({ type: 'tool-call', toolCallId: id, toolName: 'run_code', input: JSON.stringify(input) })),
    finishReason: { unified: 'tool-calls', raw: undefined },
    usage,
    warnings: [],
  };
}
const finish = (text: string): LanguageModelV4GenerateResult => ({ content: [{ type: 'text', text }], finishReason: { unified: 'stop', raw: undefined }, usage, warnings: [] });

/** What the model was sent back for each tool call, by id, in the call that followed. */
function toolOutputsSeen(call: LanguageModelV4CallOptions): Record<string, { type: string; value: unknown }> {
  const seen: Record<string, { type: string; value: unknown }> = {};
  for (const message of call.prompt) {
    if (message.role !== 'tool') continue;
    for (const part of message.content) if (part.type === 'tool-result') seen[part.toolCallId] = part.output as { type: string; value: unknown };
  }
  return seen;
}

describe('generateText with codeTool over a workspace', () => {
  test('merges successful steps, keeps a failing step out, reports a parallel conflict, and answers bad input with a validation error', async () => {
    await using workspace = await zb().sandbox();
    await workspace.files.write('count.txt', '0\n');
    const branches = trackBranches(workspace);
    const model = new MockLanguageModelV4({
      doGenerate: [
        respond({ id: 'inc', input: { runtime: 'python', code: 'n = int(open("count.txt").read()); open("count.txt", "w").write(f"{n + 1}\\n"); print(n + 1)' } }),
        respond({ id: 'fail', input: { runtime: 'shell', code: 'echo 999 > count.txt; echo broke >&2; exit 7' } }),
        // left sleeps 1.5 s so that right branches, runs and merges first even on a loaded 2-core machine.
        respond(
          { id: 'left', input: { runtime: 'python', code: 'import time; time.sleep(1.5); open("count.txt", "a").write("left\\n")' } },
          { id: 'right', input: { runtime: 'shell', code: 'echo right >> count.txt; echo extra > extra.txt' } },
        ),
        respond({ id: 'ruby', input: { runtime: 'ruby', code: 'puts 1' } }, { id: 'no-code', input: { runtime: 'python' } }),
        finish('done'),
      ],
    });
    const result = await generateText({
      model,
      tools: { run_code: codeTool({ zeroboot: zb(), runtimes: ['python', 'shell'], workspace }) },
      stopWhen: isStepCount(10),
      prompt: 'count',
    });
    record('steps', result.steps.map((s) => s.content));

    expect(result.text).toBe('done');
    expect(model.doGenerateCalls).toHaveLength(5);
    // The failing step's write never reached the workspace; of the parallel pair, the fast one (right) merged
    // first and the slow one (left) conflicted on count.txt, so none of it, not even a file only it wrote, applied.
    expect(await workspace.files.read('count.txt', 'utf8')).toBe('1\nright\n');
    expect(await workspace.files.read('extra.txt', 'utf8')).toBe('extra\n');

    const seen = Object.assign({}, ...model.doGenerateCalls.map(toolOutputsSeen)) as ReturnType<typeof toolOutputsSeen>;
    expect(seen.inc).toEqual({ type: 'text', value: 'python: exit code 0\nstdout:\n1\nfiles changed: count.txt (modified)\nThese changes are now in the workspace.' });
    expect(seen.fail!.value).toBe('shell: exit code 7\nstderr:\nbroke\nfiles changed: count.txt (modified)\nThese changes were discarded: the workspace is as it was before this call.');
    expect(seen.right!.value).toContain('These changes are now in the workspace.');
    expect(seen.left!.value).toContain('NOT APPLIED: another call changed count.txt in the workspace while this one ran');
    // Bad input never ran: the AI SDK sends the model its validation error and the loop goes on.
    expect(seen.ruby).toMatchObject({ type: 'error-text' });
    expect(seen.ruby!.value).toMatch(/^AI_InvalidToolInputError: Invalid input for tool run_code[\s\S]*"runtime"[\s\S]*Invalid option: expected one of .*python.*shell/);
    expect(seen['no-code']!.value).toMatch(/^AI_InvalidToolInputError: Invalid input for tool run_code[\s\S]*"code"[\s\S]*expected string, received undefined/);
    await branches.expectAllClosed(4); // inc, fail, left, right: the bad input made none
  });

  test('aborting generateText kills the running call, merges nothing and leaves no process behind', async () => {
    await using workspace = await zb().sandbox();
    await workspace.files.write('state.txt', 'clean\n');
    const branches = trackBranches(workspace);
    const sleeper = marker();
    const model = new MockLanguageModelV4({
      doGenerate: [respond({ id: 'slow', input: { runtime: 'python', code: `open("state.txt", "w").write("dirty")\n${sleeper.code}\nimport time; time.sleep(30)` } }), finish('never')],
    });
    const tools = { run_code: codeTool({ zeroboot: zb(), runtimes: ['python'], workspace }) };
    await expectAbortKillsCall((abortSignal) => generateText({ model, tools, stopWhen: isStepCount(5), prompt: 'sleep', abortSignal }), sleeper);
    expect(await workspace.files.read('state.txt', 'utf8')).toBe('clean\n');
    await branches.expectAllClosed(1);
    expect(zb().stats().sandboxes).toBe(0); // no run in flight
  });

  test('without a workspace each call starts from nothing: files do not carry over', async () => {
    const model = new MockLanguageModelV4({
      doGenerate: [
        respond({ id: 'write', input: { runtime: 'shell', code: 'echo hi > note.txt && cat note.txt' } }),
        respond({ id: 'read', input: { runtime: 'shell', code: 'cat note.txt' } }),
        finish('ok'),
      ],
    });
    await generateText({ model, tools: { run_code: codeTool({ zeroboot: zb(), runtimes: ['shell'] }) }, stopWhen: isStepCount(5), prompt: 'x' });
    const seen = toolOutputsSeen(model.doGenerateCalls[2]!);
    expect(seen.write!.value).toBe('shell: exit code 0\nstdout:\nhi');
    expect(seen.read!.value).toMatch(/^shell: exit code 1\nstderr:\n.*note\.txt: No such file or directory/);
  });
});
