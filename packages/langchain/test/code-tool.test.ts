// createCodeTool against the fake Zeroboot (no kernel): what LangChain sees of the tool (name, description,
// JSON schema), what a tool call returns (content for the model, the StepResult as artifact), and how bad
// input and bad options come back.
import { ToolMessage } from '@langchain/core/messages';
import { toJsonSchema } from '@langchain/core/utils/json_schema';
import { ZerobootError, type CodeToolOptions } from '@zeroboot/core';
import { describe, expect, test } from 'vitest';

import { fakeZeroboot, FakeZeroboot } from '../../../test/adapters/fake-zeroboot.js';
import { createCodeTool, type CodeToolArtifact, type CodeToolErrorArtifact } from '../src/index.js';

const call = (args: Record<string, unknown>, id = 'call-1') => ({ type: 'tool_call' as const, id, name: 'run_code', args });

describe('createCodeTool', () => {
  test('is a structured tool whose JSON schema (what the model sees) is { runtime: enum, code: string }, described', () => {
    const runCode = createCodeTool({ zeroboot: fakeZeroboot(), runtimes: ['python', 'js'] });
    expect(runCode.name).toBe('run_code');
    expect(runCode.description).toMatch(/^Run a program \(python, js\) in an isolated Linux sandbox without network access/);
    const schema = toJsonSchema(runCode.schema as never) as { properties: Record<string, { enum?: string[]; description?: string }>; required: string[] };
    expect(schema.required).toEqual(['runtime', 'code']);
    expect(schema.properties.runtime!.enum).toEqual(['python', 'js']);
    expect(schema.properties.code!.description).toContain('cwd /workspace');
  });

  test('a tool call returns a ToolMessage: compact text for the model, the StepResult as artifact', async () => {
    const zb = fakeZeroboot();
    const workspace = await zb.sandbox();
    const runCode = createCodeTool({ zeroboot: zb, runtimes: ['js'], workspace, name: 'python_sandbox' });
    const message = await runCode.invoke({ ...call({ runtime: 'js', code: "files.set('out.txt', '42'); return { stdout: '42\\n' }" }), name: 'python_sandbox' });
    expect(ToolMessage.isInstance(message)).toBe(true);
    expect(message.content).toBe('js: exit code 0\nstdout:\n42\nfiles changed: out.txt (added)\nThese changes are now in the workspace.');
    const artifact = message.artifact as CodeToolArtifact;
    expect(artifact.result).toMatchObject({ stdout: '42\n', exitCode: 0, timedOut: false });
    expect(artifact.changes).toEqual([{ path: 'out.txt', kind: 'added' }]);
    expect(workspace.contents.get('out.txt')).toBe('42');
  });

  test("a call that fails leaves the workspace alone with merge 'on-success'", async () => {
    const zb = fakeZeroboot();
    const workspace = await zb.sandbox();
    await workspace.files.write('data.csv', 'a\n');
    const runCode = createCodeTool({ zeroboot: zb, runtimes: ['js'], workspace });
    const message = await runCode.invoke(call({ runtime: 'js', code: "files.set('data.csv', ''); return { exitCode: 1, stderr: 'oops' }" }));
    expect(message.content).toContain('These changes were discarded');
    expect(workspace.contents.get('data.csv')).toBe('a\n');
  });

  test.each([
    [{ runtime: 'ruby', code: 'puts 1' }, /Invalid option: expected one of "js"\|"python"\s*→ at runtime/],
    [{ runtime: 'js' }, /expected string, received undefined\s*→ at code/],
  ])('model input %o comes back as an error ToolMessage saying what to fix, with nothing run', async (args, problem) => {
    const zb = fakeZeroboot();
    const message = await createCodeTool({ zeroboot: zb, runtimes: ['js', 'python'] }).invoke(call(args, 'bad'));
    expect(ToolMessage.isInstance(message)).toBe(true);
    expect(message).toMatchObject({ status: 'error', tool_call_id: 'bad', name: 'run_code' });
    expect(message.content).toMatch(/^Invalid input for run_code, nothing was run:/);
    expect(message.content).toMatch(problem);
    expect(message.content).not.toMatch(/\bat \S+ \(file:/); // no host stack trace
    expect(zb.calls).toEqual([]);
  });

  test('invoked with bare arguments (not a tool call), bad input still throws', async () => {
    await expect(createCodeTool({ zeroboot: fakeZeroboot(), runtimes: ['js'] }).invoke({ runtime: 'ruby', code: '' } as never)).rejects.toThrow(/did not match expected schema/);
  });

  test("the call's signal aborts the run", async () => {
    const zb = fakeZeroboot();
    const controller = new AbortController();
    const pending = createCodeTool({ zeroboot: zb, runtimes: ['js'], workspace: await zb.sandbox() }).invoke(call({ runtime: 'js', code: 'await sleep(10_000)' }), { signal: controller.signal });
    setTimeout(() => controller.abort(), 10);
    await expect(pending).rejects.toThrow();
    expect(zb.open.size).toBe(1); // the branch was closed
  });

  test('a step that throws is an error ToolMessage saying what happened, the error as artifact; never the error text (host paths)', async () => {
    const zb = fakeZeroboot();
    const workspace = await zb.sandbox();
    const runCode = createCodeTool({ zeroboot: zb, runtimes: ['js'], workspace });
    await workspace.close();
    const closed = await runCode.invoke(call({ runtime: 'js', code: 'return {}' }, 'closed'));
    expect(closed).toMatchObject({ status: 'error', tool_call_id: 'closed', name: 'run_code' });
    expect(closed.content).toMatch(/^run_code is no longer available: the application closed its sandbox.*Retrying will not help/);
    expect((closed.artifact as CodeToolErrorArtifact).error).toMatchObject({ code: 'SANDBOX_CLOSED' });

    const hostError = new Error("EACCES: permission denied, open '/var/tmp/zeroboot/zb-1/layers/7/x'");
    const failing = createCodeTool({ zeroboot: new FakeZeroboot({ js: () => Promise.reject(hostError) }), runtimes: ['js'] });
    const failed = await failing.invoke(call({ runtime: 'js', code: '' }, 'host'));
    expect(failed).toMatchObject({ status: 'error', tool_call_id: 'host' });
    expect(failed.content).toMatch(/^run_code failed on the host \(not because of your code\)/);
    expect(failed.content).not.toMatch(/\/var\/tmp|EACCES|fix your mistakes/);
    expect((failed.artifact as CodeToolErrorArtifact).error).toBe(hostError);
    // Invoked directly (no tool call, no model), the application gets the error itself.
    await expect(failing.invoke({ runtime: 'js', code: '' })).rejects.toBe(hostError);
  });

  test('bad options throw INVALID_ARGUMENT naming the field', () => {
    let error: unknown;
    try {
      createCodeTool({ zeroboot: fakeZeroboot(), runtimes: 'python' } as unknown as CodeToolOptions);
    } catch (caught) {
      error = caught;
    }
    expect(ZerobootError.isInstance(error) && error.code).toBe('INVALID_ARGUMENT');
    expect((error as Error).message).toMatch(/^Invalid `createCodeTool.runtimes`/);
  });
});
