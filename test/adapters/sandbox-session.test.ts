// createSandboxSession over a real zeroboot Sandbox: the AI SDK's SandboxSession contract (commands, spawn,
// kill, abort, stat, listDirectory, deleteFile with their null/reject semantics), and an AI SDK tool that
// takes `experimental_sandbox` running inside zeroboot through generateText.
import { createSandboxSession } from '@zeroboot/vercel-ai';
import { generateText, isStepCount, jsonSchema, tool } from 'ai';
import { MockLanguageModelV4 } from 'ai/test';
import { describe, expect, test } from 'vitest';

import { eventually, marker, sharedZeroboot } from '../helpers.js';

const zb = sharedZeroboot({ templates: { shell: { pool: 2 }, python: { pool: 1 } }, limits: { timeoutMs: 5_000 } });

describe('createSandboxSession over a zeroboot Sandbox', () => {
  test('run: exit code, both streams, env and a working directory relative to /workspace', async () => {
    await using sandbox = await zb().sandbox();
    const session = createSandboxSession(sandbox);
    await session.writeTextFile({ path: 'sub/dir/x', content: '' });
    expect(await session.run({ command: 'pwd; echo "$GREETING" >&2; exit 4', workingDirectory: 'sub/dir', env: { GREETING: 'hi' } })).toEqual({ exitCode: 4, stdout: '/workspace/sub/dir\n', stderr: 'hi\n' });
    expect((await session.run({ command: 'true', workingDirectory: 'no/such/dir' })).exitCode).toBe(1);
  });

  test('spawn streams stdout as it is printed; wait gives the exit code', async () => {
    await using sandbox = await zb().sandbox();
    const process = await createSandboxSession(sandbox).spawn({ command: 'echo one; sleep 0.3; echo two; echo err >&2; exit 5' });
    const reader = process.stdout.getReader();
    const first = await reader.read();
    expect(new TextDecoder().decode(first.value)).toBe('one\n'); // before the command has finished
    let rest = '';
    for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) rest += new TextDecoder().decode(chunk.value);
    expect(rest).toBe('two\n');
    expect(await new Response(process.stderr).text()).toBe('err\n');
    expect(await process.wait()).toEqual({ exitCode: 5 });
  });

  test('spawn: a reader that cancels stdout only stops reading; the command runs on and wait gives its exit code', async () => {
    await using sandbox = await zb().sandbox();
    const process = await createSandboxSession(sandbox).spawn({ command: 'for i in $(seq 1 10); do echo line $i; sleep 0.02; done; echo done >&2; exit 2' });
    const reader = process.stdout.getReader();
    expect(new TextDecoder().decode((await reader.read()).value)).toMatch(/^line 1\n/);
    await reader.cancel();
    expect(await process.wait()).toEqual({ exitCode: 2 });
    expect(await new Response(process.stderr).text()).toBe('done\n');
  });

  test('spawn streams the bytes the command wrote, not a re-encoding of their UTF-8 decoding', async () => {
    await using sandbox = await zb().sandbox();
    const process = await createSandboxSession(sandbox).spawn({ command: 'head -c 4096 /dev/urandom > r.bin; cat r.bin; printf "\\377\\376" >&2' });
    const stdout = new Uint8Array(await new Response(process.stdout).arrayBuffer());
    expect(await process.wait()).toEqual({ exitCode: 0 });
    expect(stdout).toEqual(await sandbox.files.read('r.bin'));
    expect(new Uint8Array(await new Response(process.stderr).arrayBuffer())).toEqual(new Uint8Array([0xff, 0xfe]));
  });

  test('kill ends the whole process tree; wait resolves with 137; abort rejects wait with the reason', async () => {
    await using sandbox = await zb().sandbox();
    const session = createSandboxSession(sandbox);
    const sleeper = marker();
    const process = await session.spawn({ command: `python3 -c '${sleeper.code}'; sleep 30` });
    expect(await eventually(() => sleeper.find().length === 1, 5_000)).toBe(true);
    await process.kill();
    await process.kill(); // idempotent
    expect(await process.wait()).toEqual({ exitCode: 137 });
    expect(await eventually(() => sleeper.gone(), 2_000)).toBe(true);

    const controller = new AbortController();
    const aborted = await session.spawn({ command: 'sleep 30', abortSignal: controller.signal });
    setTimeout(() => controller.abort(new Error('user stop')), 50);
    await expect(aborted.wait()).rejects.toThrow('user stop');
    const run = session.run({ command: 'sleep 30', abortSignal: AbortSignal.timeout(100) });
    await expect(run).rejects.toThrow(/timeout|aborted/i);
  });

  test('stat, listDirectory and deleteFile: null for what is missing, a rejection for the wrong kind', async () => {
    await using sandbox = await zb().sandbox();
    const session = createSandboxSession(sandbox);
    await session.writeTextFile({ path: 'dir/file.txt', content: 'hello' });
    await sandbox.run('shell', 'ln -s dir/file.txt link');
    expect(await session.stat({ path: 'dir/file.txt' })).toEqual({ type: 'file', size: 5 });
    expect(await session.stat({ path: 'link' })).toEqual({ type: 'file', size: 5 }); // followed
    expect(await session.stat({ path: '/workspace/dir' })).toMatchObject({ type: 'directory' });
    expect(await session.stat({ path: '/dev/null' })).toMatchObject({ type: 'other' }); // a device
    expect(await session.stat({ path: 'nope' })).toBeNull();
    expect((await session.listDirectory({ path: '.' }))!.sort((a, b) => a.name.localeCompare(b.name))).toEqual([
      { name: 'dir', type: 'directory' },
      { name: 'link', type: 'symlink' },
    ]);
    expect((await session.listDirectory({ path: '/dev' }))!.find((entry) => entry.name === 'null')).toEqual({ name: 'null', type: 'other' });
    expect(await session.listDirectory({ path: 'nope' })).toBeNull();
    await expect(session.listDirectory({ path: 'dir/file.txt' })).rejects.toThrow(/is not a directory/);
    expect(await session.deleteFile({ path: 'link' })).toBe(true); // the link, not its target
    expect(await session.readTextFile({ path: 'dir/file.txt' })).toBe('hello');
    expect(await session.deleteFile({ path: 'link' })).toBe(false);
    await expect(session.deleteFile({ path: 'dir' })).rejects.toThrow(/is a directory/);
    await expect(session.deleteFile({ path: '/usr/bin/env' })).rejects.toThrow(/Could not delete/);
    await expect(session.writeTextFile({ path: 'dir', content: 'x' })).rejects.toThrow(/is a directory/);
  });

  test('bytes go in and out unchanged; readTextFile reads back what writeTextFile wrote, in each encoding they take', async () => {
    await using sandbox = await zb().sandbox();
    const session = createSandboxSession(sandbox);
    const text = 'caf\u00e9 \u0080\u0099\u00ff'; // 0x80-0x9f: windows-1252 (TextDecoder's "latin1") reads them as other characters
    for (const encoding of ['utf-8', 'UTF-8', 'utf8', 'utf-16le', 'latin1']) {
      await session.writeTextFile({ path: 't.txt', content: text, encoding });
      expect(await session.readTextFile({ path: 't.txt', encoding })).toBe(text);
    }
    await session.writeTextFile({ path: 'latin1.txt', content: 'café', encoding: 'latin1' });
    expect(await session.readBinaryFile({ path: 'latin1.txt' })).toEqual(new Uint8Array([0x63, 0x61, 0x66, 0xe9]));
    expect(await session.readTextFile({ path: 'latin1.txt', encoding: 'latin1' })).toBe('café');
    const bytes = new Uint8Array(256).map((_, i) => i);
    await session.writeBinaryFile({ path: 'all.bin', content: bytes });
    expect((await session.run({ command: 'od -An -tx1 all.bin | tr -d " \\n" | head -c 8' })).stdout).toBe('00010203');
    expect(await session.readBinaryFile({ path: 'all.bin' })).toEqual(bytes);
  });

  test("an AI SDK tool that takes experimental_sandbox runs its commands inside zeroboot", async () => {
    await using sandbox = await zb().sandbox();
    const session = createSandboxSession(sandbox);
    const bash = tool({
      description: 'Run a bash command',
      inputSchema: jsonSchema<{ command: string }>({ type: 'object', properties: { command: { type: 'string' } }, required: ['command'] }),
      execute: async ({ command }, { experimental_sandbox }) => experimental_sandbox!.run({ command }),
    });
    const usage = { inputTokens: { total: 1, noCache: 1, cacheRead: 0, cacheWrite: 0 }, outputTokens: { total: 1, text: 1, reasoning: 0 } };
    const model = new MockLanguageModelV4({
      doGenerate: [
        { content: [{ type: 'tool-call', toolCallId: 'c1', toolName: 'bash', input: JSON.stringify({ command: 'id -u; cat /proc/1/cmdline | tr "\\0" " "; echo made > made.txt' }) }], finishReason: { unified: 'tool-calls', raw: undefined }, usage, warnings: [] },
        { content: [{ type: 'text', text: 'ok' }], finishReason: { unified: 'stop', raw: undefined }, usage, warnings: [] },
      ],
    });
    const result = await generateText({ model, tools: { bash }, experimental_sandbox: session, stopWhen: isStepCount(3), prompt: 'who am I' });
    const output = result.steps[0]!.toolResults[0]!.output as { exitCode: number; stdout: string };
    expect(output.exitCode).toBe(0);
    expect(output.stdout).toMatch(/^1000\n/); // uid 1000 of the sandbox's user namespace, not the host's root
    expect(await sandbox.files.read('made.txt', 'utf8')).toBe('made\n');
  });
});
