// runStep and the code tools' shared options, against the fake Zeroboot (no kernel): the workspace semantics
// both adapters rely on. The same semantics over real sandboxes are tested through the agents in test/adapters.
import { describe, expect, test } from 'vitest';

import { fakeZeroboot, FakeZeroboot } from '../../../test/adapters/fake-zeroboot.js';
import { describeStep, describeStepError, isStepAborted, resolveCodeToolOptions, runStep, ZerobootError, type CodeToolOptions, type RunResult, type StepResult } from '../src/index.js';

async function workspaceWith(files: Record<string, string>) {
  const zb = fakeZeroboot();
  const workspace = await zb.sandbox();
  for (const [path, text] of Object.entries(files)) await workspace.files.write(path, text);
  return { zb, workspace };
}

describe('runStep', () => {
  test('without a workspace, runs once in a fresh sandbox and keeps nothing', async () => {
    const zb = fakeZeroboot();
    const step = await runStep(zb, { runtime: 'js', code: "files.set('a', '1'); return { stdout: 'hi' }" });
    expect(step).toMatchObject({ runtime: 'js', changes: [], workspace: false, merged: false, conflicts: [] });
    expect(step.result.stdout).toBe('hi');
    expect(zb.calls).toEqual(['run js']);
  });

  test.each([
    ['on-success', 0, true],
    ['on-success', 1, false],
    ['always', 1, true],
    ['never', 0, false],
  ] as const)("merge '%s' with exit code %i: merged %s; the branch is closed either way", async (merge, exitCode, merged) => {
    const { zb, workspace } = await workspaceWith({ 'data.csv': 'a\n' });
    const step = await runStep(zb, { runtime: 'js', code: `files.set('data.csv', 'b\\n'); return { exitCode: ${exitCode} }`, workspace, merge });
    expect(step.changes).toEqual([{ path: 'data.csv', kind: 'modified' }]);
    expect(step.merged).toBe(merged);
    expect(workspace.contents.get('data.csv')).toBe(merged ? 'b\n' : 'a\n');
    expect([...zb.open]).toEqual([workspace]);
  });

  test('a timed-out run is not a success, even with exit code 0', async () => {
    const { zb, workspace } = await workspaceWith({ a: '1' });
    const step = await runStep(zb, { runtime: 'js', code: "files.set('a', '2'); return { exitCode: 0, timedOut: true }", workspace });
    expect(step.merged).toBe(false);
    expect(workspace.contents.get('a')).toBe('1');
  });

  test('parallel steps branch from the same workspace and merge in completion order; a conflict applies nothing and is reported', async () => {
    const { zb, workspace } = await workspaceWith({ 'notes.md': 'start\n' });
    const slow = runStep(zb, { runtime: 'js', code: "await sleep(30); files.set('notes.md', 'slow'); files.set('slow-only', 'x')", workspace });
    const fast = runStep(zb, { runtime: 'js', code: "files.set('notes.md', 'fast')", workspace });
    const [slowStep, fastStep] = await Promise.all([slow, fast]);
    expect(fastStep).toMatchObject({ merged: true, conflicts: [] });
    expect(slowStep).toMatchObject({ merged: false, conflicts: [{ path: 'notes.md' }] });
    expect(Object.fromEntries(workspace.contents)).toEqual({ 'notes.md': 'fast' });
    expect(describeStep(slowStep)).toContain('NOT APPLIED: another call changed notes.md');
    expect(zb.open.size).toBe(1);
  });

  test('an abort rejects with ABORTED, merges nothing and still closes the branch', async () => {
    const { zb, workspace } = await workspaceWith({ a: '1' });
    const controller = new AbortController();
    const step = runStep(zb, { runtime: 'js', code: "files.set('a', '2'); await sleep(10_000)", workspace, signal: controller.signal });
    setTimeout(() => controller.abort(), 10);
    await expect(step).rejects.toMatchObject({ code: 'ABORTED' });
    expect(workspace.contents.get('a')).toBe('1');
    expect(zb.open.size).toBe(1);
  });

  test('an abort that lands after the run, before the merge, rejects with ABORTED and merges nothing', async () => {
    const controller = new AbortController();
    const zb = new FakeZeroboot({
      js: (_code, files) => {
        files.set('a', '2');
        controller.abort(); // the run itself completed: the signal fires while the step diffs
        return { exitCode: 0 };
      },
    });
    const workspace = await zb.sandbox();
    await workspace.files.write('a', '1');
    await expect(runStep(zb, { runtime: 'js', code: '', workspace, signal: controller.signal })).rejects.toMatchObject({ code: 'ABORTED', message: /after its run/ });
    expect(workspace.contents.get('a')).toBe('1');
    expect(zb.calls).toEqual(['branch', 'run js']);
    expect(zb.open.size).toBe(1);
  });

  test('an already-aborted signal rejects with ABORTED before any branch is made', async () => {
    const { zb, workspace } = await workspaceWith({});
    await expect(runStep(zb, { runtime: 'js', code: '', workspace, signal: AbortSignal.abort() })).rejects.toMatchObject({ code: 'ABORTED' });
    expect(zb.calls).toEqual([]);
  });

  test('a merge policy that is not one is INVALID_ARGUMENT, not "never"', async () => {
    const { zb, workspace } = await workspaceWith({});
    await expect(runStep(zb, { runtime: 'js', code: '', workspace, merge: 'on-sucess' as never })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: /`merge`/ });
    expect(zb.calls).toEqual([]);
  });

  test('a run that throws (an unknown runtime) closes the branch and rethrows', async () => {
    const { zb, workspace } = await workspaceWith({});
    await expect(runStep(zb, { runtime: 'ruby', code: 'puts 1', workspace })).rejects.toMatchObject({ code: 'UNKNOWN_RUNTIME' });
    expect(zb.open.size).toBe(1);
  });
});

describe('describeStep', () => {
  test('says the exit status, the output, the files and what happened to them', async () => {
    const { zb, workspace } = await workspaceWith({});
    const step = await runStep(zb, { runtime: 'js', code: "files.set('out.txt', 'x'); return { exitCode: 2, stdout: 'partial\\n', stderr: 'boom\\n' }", workspace });
    expect(describeStep(step)).toBe(
      ['js: exit code 2', 'stdout:', 'partial', 'stderr:', 'boom', 'files changed: out.txt (added)', 'These changes were discarded: the workspace is as it was before this call.'].join('\n'),
    );
  });

  test('a timeout, a signal, no output, and no workspace', async () => {
    const zb = fakeZeroboot();
    const timedOut = await runStep(zb, { runtime: 'js', code: 'return { exitCode: null, signal: "SIGKILL", timedOut: true, durationMs: 2000 }' });
    expect(describeStep(timedOut)).toBe('js: timed out after 2000 ms and was killed\n(no output)');
    const oom = await runStep(zb, { runtime: 'js', code: 'return { exitCode: null, signal: "SIGKILL", outcome: "out-of-memory", stdout: "x" }' });
    expect(describeStep(oom)).toBe('js: killed by SIGKILL (out of memory)\nstdout:\nx');
  });

  test('long output keeps its head and tail with a marker; long file lists are cut too', async () => {
    const { zb, workspace } = await workspaceWith({});
    const step = await runStep(zb, {
      runtime: 'js',
      code: "for (let i = 0; i < 60; i++) files.set(`f${String(i).padStart(2, '0')}`, 'x'); return { stdout: 'A'.repeat(3000) + 'B'.repeat(7000) }",
      workspace,
    });
    const text = describeStep(step, 1000);
    expect(text).toContain(`stdout:\n${'A'.repeat(600)}\n[… 9000 characters cut …]\n${'B'.repeat(400)}\n`);
    expect(text).toContain('f49 (added), … and 10 more');
    expect(text).not.toContain('f50 (added)');
  });

  test('a long conflict list is cut like the list of changed files', () => {
    const conflicts = Array.from({ length: 3000 }, (_, i) => ({ path: `src/file-${i}.ts` }));
    const step: StepResult = { runtime: 'js', result: runResult({}), changes: [{ path: 'x', kind: 'added' }], workspace: true, merged: false, conflicts };
    const text = describeStep(step);
    expect(text).toContain('src/file-49.ts, … and 2950 more in the workspace while this one ran');
    expect(text).not.toContain('src/file-50.ts');
    expect(text.length).toBeLessThan(2000);
  });

  test('output is never cut between the two halves of a surrogate pair', () => {
    const step: StepResult = { runtime: 'js', result: runResult({ stdout: `ab${'😀'.repeat(5000)}` }), changes: [], workspace: false, merged: false, conflicts: [] };
    for (const max of [1000, 1001, 1002]) {
      const text = describeStep(step, max);
      expect(text).toContain('characters cut');
      expect(text.isWellFormed()).toBe(true);
    }
  });
});

describe('describeStepError', () => {
  test('says what happened and whether to retry, never the error message (host paths) itself', () => {
    const hostError = Object.assign(new Error("ENOSPC: no space left on device, open '/var/tmp/zeroboot/zb-123/layers/9/f'"), { code: 'ENOSPC' });
    const cases: Array<[unknown, RegExp]> = [
      [new ZerobootError('SANDBOX_CLOSED', 'This sandbox is closed: make a new one with zb.sandbox()'), /^run_code is no longer available.*Retrying will not help/],
      [new ZerobootError('FORKSERVER_DIED', 'fork-server of python exited (status 9)'), /restarted.*Retrying the same call should work/],
      [new ZerobootError('DISK_QUOTA_EXCEEDED', 'past limits.diskMb'), /disk limit.*try again/],
      [new ZerobootError('INVALID_ARGUMENT', '200 layers deep'), /cannot run code as the application set it up.*Retrying will not help/],
      [new ZerobootError('SANDBOX_SETUP_FAILED', 'mount /var/tmp/zeroboot failed'), /failed on the host \(not because of your code\).*retry once/],
      [hostError, /failed on the host \(not because of your code\).*retry once/],
      ['a string', /failed on the host/],
    ];
    for (const [error, text] of cases) {
      const described = describeStepError(error, 'run_code');
      expect(described).toMatch(text);
      expect(described).not.toMatch(/\/var\/tmp|zb\.sandbox|limits\.|fix your mistakes/);
    }
    expect(describeStepError(new ZerobootError('SANDBOX_CLOSED', ''))).toMatch(/^This tool is no longer available/);
  });

  test('isStepAborted: ABORTED, or any error once the call was aborted', () => {
    expect(isStepAborted(new ZerobootError('ABORTED', ''), undefined)).toBe(true);
    expect(isStepAborted(new ZerobootError('SANDBOX_CLOSED', ''), AbortSignal.abort())).toBe(true);
    expect(isStepAborted(new ZerobootError('SANDBOX_CLOSED', ''), new AbortController().signal)).toBe(false);
    expect(isStepAborted(new Error('x'), undefined)).toBe(false);
  });
});

describe('resolveCodeToolOptions', () => {
  const zb = fakeZeroboot();

  test('fills in the defaults and describes the schema for the model', () => {
    const resolved = resolveCodeToolOptions({ zeroboot: zb, runtimes: ['python'] }, 'createCodeTool');
    expect(resolved).toMatchObject({ name: 'run_code', merge: 'on-success', workspace: undefined, timeoutMs: undefined, maxOutputChars: 4000 });
    expect(resolved.description).toContain('Files written are discarded after the call');
    expect(resolved.inputSchema.parse({ runtime: 'python', code: 'print(1)' })).toEqual({ runtime: 'python', code: 'print(1)' });
    expect(resolved.inputSchema.shape.code.description).toMatch(/cwd \/workspace.*No network.*10 s wall clock, 256 MB memory/);
    expect(resolved.inputSchema.shape.runtime.description).toContain("'python' = Python 3");
  });

  test('a sub-second timeout is described in milliseconds, not as "0 s"', () => {
    expect(resolveCodeToolOptions({ zeroboot: zb, runtimes: ['python'], timeoutMs: 300 }, 'codeTool').inputSchema.shape.code.description).toContain('Limits: 300 ms wall clock');
    expect(resolveCodeToolOptions({ zeroboot: zb, runtimes: ['python'], timeoutMs: 2500 }, 'codeTool').inputSchema.shape.code.description).toContain('Limits: 2.5 s wall clock');
  });

  test('a workspace must be an open sandbox of this instance', async () => {
    const other = await fakeZeroboot().sandbox();
    const closed = await zb.sandbox();
    await closed.close();
    for (const workspace of [other, closed]) {
      expect(() => resolveCodeToolOptions({ zeroboot: zb, runtimes: ['python'], workspace }, 'codeTool')).toThrow(/`codeTool.workspace` to be an open Sandbox of `codeTool.zeroboot`/);
    }
  });

  test.each([
    [{ runtimes: ['python'] }, /`createCodeTool.zeroboot`: a Zeroboot instance/],
    [{ zeroboot: zb, runtimes: [] }, /`createCodeTool.runtimes`: at least one runtime/],
    [{ zeroboot: zb, runtimes: ['python', 'python'] }, /runtimes without duplicates/],
    [{ zeroboot: zb, runtimes: ['ruby'] }, /"ruby" is not a template of this Zeroboot \(it has js, python\)/],
    [{ zeroboot: zb, runtimes: ['python'], merge: 'sometimes' }, /`createCodeTool.merge`/],
    [{ zeroboot: zb, runtimes: ['python'], workspace: {} }, /`createCodeTool.workspace`: a Sandbox/],
    [{ zeroboot: zb, runtimes: ['python'], name: 'run code!' }, /`createCodeTool.name`/],
    [{ zeroboot: zb, runtimes: ['python'], timeoutMs: -1 }, /`createCodeTool.timeoutMs`/],
    [{ zeroboot: zb, runtimes: ['python'], timeoutMs: 10_000_000 }, /`createCodeTool.timeoutMs` to be at most this Zeroboot's maxLimits.timeoutMs \(600000\), got 10000000/],
    [{ zeroboot: zb, runtimes: ['python'], mrege: 'never' }, /Unknown option `createCodeTool.mrege`/],
  ])('%o is INVALID_ARGUMENT naming the field', (options, message) => {
    let error: unknown;
    try {
      resolveCodeToolOptions(options as unknown as CodeToolOptions, 'createCodeTool');
    } catch (caught) {
      error = caught;
    }
    expect(ZerobootError.isInstance(error) && error.code).toBe('INVALID_ARGUMENT');
    expect((error as Error).message).toMatch(message);
  });
});

function runResult(partial: Partial<RunResult>): RunResult {
  return { stdout: '', stderr: '', exitCode: 0, signal: null, timedOut: false, truncated: false, durationMs: 1, outcome: 'exited', ...partial };
}
