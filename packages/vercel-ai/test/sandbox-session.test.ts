// createSandboxSession against the fake Sandbox (no kernel): the files side of the SandboxSession contract,
// with its null/reject semantics. Commands, stat and deleteFile are shell runs: test/adapters covers them on
// real sandboxes.
import type { Sandbox } from '@zeroboot/core';
import { describe, expect, test } from 'vitest';

import { fakeZeroboot } from '../../../test/adapters/fake-zeroboot.js';
import { createSandboxSession } from '../src/index.js';

async function session() {
  const zb = fakeZeroboot();
  const sandbox = await zb.sandbox();
  return { sandbox, session: createSandboxSession(sandbox as unknown as Sandbox, { shell: 'js' }) };
}

describe('createSandboxSession (files)', () => {
  test('describes the sandbox for the agent, or says what you give it', async () => {
    const { session: s } = await session();
    expect(s.description).toMatch(/without network access.*\/workspace/);
    expect(createSandboxSession((await fakeZeroboot().sandbox()) as unknown as Sandbox, { description: 'mine' }).description).toBe('mine');
    expect(() => createSandboxSession({} as Sandbox)).toThrow(/Expected `sandbox` to be a zeroboot Sandbox/);
  });

  test('writes and reads text, bytes and streams; a missing file reads as null', async () => {
    const { sandbox, session: s } = await session();
    await s.writeTextFile({ path: 'a.txt', content: 'one\ntwo\nthree\n' });
    await s.writeBinaryFile({ path: 'b.bin', content: new Uint8Array([104, 105]) });
    await s.writeFile({ path: '/workspace/c.txt', content: new Blob(['stre', 'am']).stream() });
    expect(Object.fromEntries(sandbox.contents)).toEqual({ 'a.txt': 'one\ntwo\nthree\n', 'b.bin': 'hi', 'c.txt': 'stream' });
    expect(await s.readTextFile({ path: 'a.txt' })).toBe('one\ntwo\nthree\n');
    expect(await s.readBinaryFile({ path: 'b.bin' })).toEqual(new Uint8Array([104, 105]));
    expect(await new Response((await s.readFile({ path: 'c.txt' }))!).text()).toBe('stream');
    for (const read of [s.readFile, s.readBinaryFile, s.readTextFile]) expect(await read({ path: 'missing' })).toBeNull();
  });

  test('readTextFile line ranges are 1-based and inclusive; past the end reads to the end', async () => {
    const { session: s } = await session();
    await s.writeTextFile({ path: 'a.txt', content: 'one\ntwo\nthree\n' });
    expect(await s.readTextFile({ path: 'a.txt', startLine: 2, endLine: 2 })).toBe('two\n');
    expect(await s.readTextFile({ path: 'a.txt', startLine: 2 })).toBe('two\nthree\n');
    expect(await s.readTextFile({ path: 'a.txt', endLine: 99 })).toBe('one\ntwo\nthree\n');
  });

  test('an encoding outside that set is INVALID_ARGUMENT both ways, and nothing is written', async () => {
    const { sandbox, session: s } = await session();
    await s.writeTextFile({ path: 'r.txt', content: 'x' });
    for (const encoding of ['klingon', 'hex', 'base64', 'shift_jis']) {
      await expect(s.writeTextFile({ path: 'x', content: 'x', encoding })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: /Expected `encoding`/ });
      await expect(s.readTextFile({ path: 'r.txt', encoding })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: /Expected `encoding`/ });
    }
    expect(sandbox.contents.has('x')).toBe(false);
  });

  test('stat and deleteFile reject an empty path, as the other methods do', async () => {
    const { session: s } = await session();
    await expect(s.deleteFile({ path: '' })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: /Expected `path`/ });
    await expect(s.stat({ path: '' })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });

  test('run says at the end of stderr that output was dropped at the sandbox limit, or that the command timed out', async () => {
    const { session: s } = await session();
    expect(await s.run({ command: "return { stdout: 'x', stderr: 'e', truncated: true }" })).toEqual({ exitCode: 0, stdout: 'x', stderr: 'e\n[output past the sandbox limit (maxOutputBytes) was dropped]' });
    expect((await s.run({ command: "return { exitCode: null, signal: 'SIGKILL', timedOut: true, durationMs: 300 }" })).stderr).toBe('\n[timed out after 300 ms: the command was killed]');
  });

  test('writing over a directory and reading one reject', async () => {
    const { session: s } = await session();
    await s.writeTextFile({ path: 'dir/inner.txt', content: 'x' });
    await expect(s.writeTextFile({ path: 'dir', content: 'x' })).rejects.toThrow(/is a directory/);
    await expect(s.readBinaryFile({ path: 'dir' })).rejects.toThrow(/is a directory/);
  });

  test('listDirectory lists names and types', async () => {
    const { session: s } = await session();
    await s.writeTextFile({ path: 'dir/inner.txt', content: 'x' });
    await s.writeTextFile({ path: 'top.txt', content: 'x' });
    expect(await s.listDirectory({ path: '.' })).toEqual([
      { name: 'dir', type: 'directory' },
      { name: 'top.txt', type: 'file' },
    ]);
  });

  test('an aborted signal rejects before anything is read or written', async () => {
    const { sandbox, session: s } = await session();
    const signal = AbortSignal.abort(new Error('stop'));
    await expect(s.writeTextFile({ path: 'a', content: 'x', abortSignal: signal })).rejects.toThrow('stop');
    await expect(s.readTextFile({ path: 'a', abortSignal: signal })).rejects.toThrow('stop');
    await expect(s.run({ command: 'return {}', abortSignal: signal })).rejects.toThrow('stop');
    expect(sandbox.contents.size).toBe(0);
  });

  test('spawn with stdin: true rejects before starting anything', async () => {
    const { session: s } = await session();
    await expect(s.spawn({ command: 'cat', stdin: true })).rejects.toThrow(/stdin: true` is not supported/);
  });
});
