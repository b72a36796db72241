// LangChain's own agent loop (createAgent), scripted by fakeModel, driving the code tool over real zeroboot
// sandboxes; and a Deep Agent (createDeepAgent) whose backend is a ZerobootSandbox. Checked from outside: the
// workspace's files, the ToolMessages the model got, the branches left open and the processes left running.
import { AIMessage, ToolMessage, type BaseMessage } from '@langchain/core/messages';
import { fakeModel } from '@langchain/core/testing';
import { createCodeTool, type CodeToolArtifact } from '@zeroboot/langchain';
import { ZerobootSandbox } from '@zeroboot/langchain/deep-agents';
import { createDeepAgent } from 'deepagents';
import { createAgent } from 'langchain';
import { describe, expect, test } from 'vitest';

import { marker, record, sharedZeroboot } from '../helpers.js';
import { expectAbortKillsCall, trackBranches } from './agent-checks.js';

const zb = sharedZeroboot({ templates: { python: { pool: 2 }, shell: { pool: 2 } }, limits: { timeoutMs: 5_000 } });

const user = (content: string) => ({ messages: [{ role: 'user', content }] });
function toolMessages(messages: BaseMessage[]): Record<string, ToolMessage> {
  return Object.fromEntries(messages.filter((m) => ToolMessage.isInstance(m)).map((m) => [m.tool_call_id, m]));
}

describe('createAgent with createCodeTool over a workspace', () => {
  test('merges successful steps, keeps a failing step out, reports a parallel conflict, and answers bad input with what to fix', async () => {
    await using workspace = await zb().sandbox();
    await workspace.files.write('count.txt', '0\n');
    const branches = trackBranches(workspace);
    const model = fakeModel()
      .respondWithTools([{ name: 'run_code', id: 'inc', args: { runtime: 'python', code: 'n = int(open("count.txt").read()); open("count.txt", "w").write(f"{n + 1}\\n"); print(n + 1)' } }])
      .respondWithTools([{ name: 'run_code', id: 'fail', args: { runtime: 'shell', code: 'echo 999 > count.txt; exit 7' } }])
      // left sleeps 1.5 s so that right branches, runs and merges first even on a loaded 2-core machine.
      .respondWithTools([
        { name: 'run_code', id: 'left', args: { runtime: 'python', code: 'import time; time.sleep(1.5); open("count.txt", "a").write("left\\n")' } },
        { name: 'run_code', id: 'right', args: { runtime: 'shell', code: 'echo right >> count.txt' } },
      ])
      .respondWithTools([
        { name: 'run_code', id: 'ruby', args: { runtime: 'ruby', code: 'puts 1' } },
        { name: 'run_code', id: 'no-code', args: { runtime: 'python' } },
      ])
      .respond(new AIMessage('done'));
    const agent = createAgent({ model, tools: [createCodeTool({ zeroboot: zb(), runtimes: ['python', 'shell'], workspace })] });
    const { messages } = await agent.invoke(user('count'));
    record('messages', messages.map((m) => [m.type, m.content]));

    expect(messages.at(-1)!.content).toBe('done');
    expect(await workspace.files.read('count.txt', 'utf8')).toBe('1\nright\n');
    const seen = toolMessages(messages);
    expect(seen.inc!.content).toBe('python: exit code 0\nstdout:\n1\nfiles changed: count.txt (modified)\nThese changes are now in the workspace.');
    expect((seen.inc!.artifact as CodeToolArtifact).result).toMatchObject({ exitCode: 0, stdout: '1\n', timedOut: false });
    expect(seen.fail!.content).toBe('shell: exit code 7\n(no output)\nfiles changed: count.txt (modified)\nThese changes were discarded: the workspace is as it was before this call.');
    expect(seen.right!.content).toContain('These changes are now in the workspace.');
    expect(seen.left!.content).toContain('NOT APPLIED: another call changed count.txt');
    expect((seen.left!.artifact as CodeToolArtifact).conflicts).toEqual([{ path: 'count.txt' }]);
    expect(seen.ruby).toMatchObject({ status: 'error' });
    expect(seen.ruby!.content).toMatch(/^Invalid input for run_code, nothing was run:\n✖ Invalid option: expected one of "python"\|"shell"\n  → at runtime\n/);
    expect(seen['no-code']!.content).toMatch(/→ at code/);
    await branches.expectAllClosed(4);
  });

  test('aborting agent.invoke kills the running call, merges nothing and leaves no process behind', async () => {
    await using workspace = await zb().sandbox();
    await workspace.files.write('state.txt', 'clean\n');
    const branches = trackBranches(workspace);
    const sleeper = marker();
    const model = fakeModel()
      .respondWithTools([{ name: 'run_code', id: 'slow', args: { runtime: 'python', code: `open("state.txt", "w").write("dirty")\n${sleeper.code}\nimport time; time.sleep(30)` } }])
      .respond(new AIMessage('never'));
    const agent = createAgent({ model, tools: [createCodeTool({ zeroboot: zb(), runtimes: ['python'], workspace })] });
    await expectAbortKillsCall((signal) => agent.invoke(user('sleep'), { signal }), sleeper);
    expect(await workspace.files.read('state.txt', 'utf8')).toBe('clean\n');
    await branches.expectAllClosed(1);
    expect(zb().stats().sandboxes).toBe(0);
  });
});

describe('createDeepAgent with ZerobootSandbox', () => {
  test('write_file, execute, edit_file, ls, glob, grep and read_file all work inside the sandbox', async () => {
    await using sandbox = await zb().sandbox();
    const model = fakeModel()
      .respondWithTools([{ name: 'write_file', id: 'write', args: { file_path: '/workspace/src/app.py', content: 'def greet():\n    return "hello"\nprint(greet())\n' } }])
      .respondWithTools([{ name: 'execute', id: 'exec', args: { command: 'python3 src/app.py; id -u; exit 3' } }])
      .respondWithTools([{ name: 'edit_file', id: 'edit', args: { file_path: '/workspace/src/app.py', old_string: '"hello"', new_string: '"hi"' } }])
      .respondWithTools([
        { name: 'ls', id: 'ls', args: { path: '/workspace/src' } },
        { name: 'glob', id: 'glob', args: { pattern: '**/*.py', path: '/workspace' } },
        { name: 'grep', id: 'grep', args: { pattern: 'def greet', path: '/workspace' } },
        { name: 'read_file', id: 'read', args: { file_path: '/workspace/src/app.py' } },
        { name: 'read_file', id: 'missing', args: { file_path: '/workspace/nope.py' } },
        { name: 'write_file', id: 'readonly', args: { file_path: '/usr/evil.py', content: 'x' } },
      ])
      .respond(new AIMessage('done'));
    const agent = createDeepAgent({ model, backend: new ZerobootSandbox(sandbox) });
    const { messages } = await agent.invoke(user('go'));
    record('messages', messages.map((m) => [m.type, m.content]));
    const seen = toolMessages(messages);

    expect(seen.write!.text).toContain("Successfully wrote to '/workspace/src/app.py'");
    // Runs inside the sandbox: cwd /workspace, uid 1000 of its user namespace; the exit status comes back.
    expect(seen.exec!.text).toMatch(/^hello\n1000\n[\s\S]*exit code 3/);
    expect(seen.edit!.text).toContain('Successfully replaced 1 occurrence');
    expect(seen.ls!.text).toContain('/workspace/src/app.py');
    expect(seen.glob!.text).toContain('src/app.py');
    expect(seen.grep!.text).toMatch(/\/workspace\/src\/app.py:\s*\n\s*1: def greet/);
    expect(seen.read!.text).toContain('return "hi"');
    expect(seen.missing!.text).toMatch(/not found/i);
    expect(seen.readonly!.text).toMatch(/permission_denied/);
    expect(await sandbox.files.read('src/app.py', 'utf8')).toBe('def greet():\n    return "hi"\nprint(greet())\n');
    expect(messages.at(-1)!.content).toBe('done');
  });
});
