// codeTool against the fake Zeroboot (no kernel): the AI SDK tool's schema, execute's structured result,
// toModelOutput's text, and the call's abortSignal.
import { ZerobootError, type CodeToolOptions } from '@zeroboot/core';
import { asSchema } from 'ai';
import { describe, expect, test } from 'vitest';

import { fakeZeroboot, FakeZeroboot } from '../../../test/adapters/fake-zeroboot.js';
import { codeTool, type CodeToolOutput } from '../src/index.js';

const zerobootError = (promise: Promise<unknown>): Promise<ZerobootError> =>
  promise.then(
    () => expect.unreachable('resolved'),
    (error: unknown) => (expect(ZerobootError.isInstance(error)).toBe(true), error as ZerobootError),
  );
const options = (abortSignal?: AbortSignal) => ({ toolCallId: 'call-1', messages: [], context: {}, ...(abortSignal ? { abortSignal } : {}) });

describe('codeTool', () => {
  test('has the input schema { runtime: enum, code: string } with descriptions for the model', async () => {
    const runCode = codeTool({ zeroboot: fakeZeroboot(), runtimes: ['python', 'js'] });
    const schema = (await asSchema(runCode.inputSchema).jsonSchema) as { properties: Record<string, { enum?: string[]; description?: string }>; required: string[] };
    expect(schema.required).toEqual(['runtime', 'code']);
    expect(schema.properties.runtime!.enum).toEqual(['python', 'js']);
    expect(schema.properties.code!.description).toContain('No network');
    expect(runCode.description).toContain('isolated Linux sandbox');
  });

  test('execute returns the structured step; toModelOutput the compact text', async () => {
    const zb = fakeZeroboot();
    const workspace = await zb.sandbox();
    const runCode = codeTool({ zeroboot: zb, runtimes: ['js'], workspace, merge: 'never' });
    const input = { runtime: 'js', code: "files.set('x', '1'); return { stdout: 'done' }" };
    const output = (await runCode.execute!(input, options())) as CodeToolOutput;
    expect(output).toMatchObject({ runtime: 'js', changes: [{ path: 'x', kind: 'added' }], merged: false, workspace: true });
    expect(output.result.stdout).toBe('done');
    expect(workspace.contents.has('x')).toBe(false);
    expect(await runCode.toModelOutput!({ toolCallId: 'call-1', input, output })).toEqual({
      type: 'text',
      value: 'js: exit code 0\nstdout:\ndone\nfiles changed: x (added)\nThese changes were discarded: the workspace is as it was before this call.',
    });
    expect(JSON.parse(JSON.stringify(output))).toEqual(output); // a tool result must survive being sent as JSON
  });

  test("the call's abortSignal kills the run, and its branch is closed", async () => {
    const zb = fakeZeroboot();
    const runCode = codeTool({ zeroboot: zb, runtimes: ['js'], workspace: await zb.sandbox() });
    const controller = new AbortController();
    const pending = runCode.execute!({ runtime: 'js', code: 'await sleep(10_000)' }, options(controller.signal)) as Promise<CodeToolOutput>;
    setTimeout(() => controller.abort(), 10);
    await expect(pending).rejects.toMatchObject({ code: 'ABORTED' });
    expect(zb.open.size).toBe(1);
  });

  test('a step that throws is a tool error whose message says what happened, the error as cause; never the error text (host paths)', async () => {
    const zb = fakeZeroboot();
    const workspace = await zb.sandbox();
    const runCode = codeTool({ zeroboot: zb, runtimes: ['js'], workspace });
    await workspace.close();
    const closed = await zerobootError(runCode.execute!({ runtime: 'js', code: 'return {}' }, options()) as Promise<unknown>);
    expect(closed.code).toBe('SANDBOX_CLOSED');
    expect(closed.message).toMatch(/^This tool is no longer available: the application closed its sandbox/);
    expect(closed.cause).toMatchObject({ code: 'SANDBOX_CLOSED' });

    const hostError = new Error("EACCES: permission denied, open '/var/tmp/zeroboot/zb-1/layers/7/x'");
    const failing = codeTool({ zeroboot: new FakeZeroboot({ js: () => Promise.reject(hostError) }), runtimes: ['js'] });
    const failed = await zerobootError(failing.execute!({ runtime: 'js', code: '' }, options()) as Promise<unknown>);
    expect(failed.message).toMatch(/^This tool failed on the host \(not because of your code\)/);
    expect(failed.message).not.toMatch(/\/var\/tmp|EACCES/);
    expect(failed.cause).toBe(hostError);
  });

  test('`name` is refused: an AI SDK tool is named by its key in tools', () => {
    expect(() => codeTool({ zeroboot: fakeZeroboot(), runtimes: ['js'], name: 'x' } as never)).toThrow(/Unknown option `codeTool.name`.*key in `tools`/);
  });

  test('bad options throw INVALID_ARGUMENT naming the field', () => {
    let error: unknown;
    try {
      codeTool({ zeroboot: fakeZeroboot(), runtimes: ['js'], merge: 'on-failure' } as unknown as CodeToolOptions);
    } catch (caught) {
      error = caught;
    }
    expect(ZerobootError.isInstance(error) && error.code).toBe('INVALID_ARGUMENT');
    expect((error as Error).message).toMatch(/^Invalid `codeTool.merge`/);
  });
});
