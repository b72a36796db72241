// ZerobootSandbox against the fake Sandbox (no kernel): Deep Agents' three primitives and their error codes.
import type { Sandbox } from '@zeroboot/core';
import { describe, expect, test } from 'vitest';

import { fakeZeroboot } from '../../../test/adapters/fake-zeroboot.js';
import { ZerobootSandbox } from '../src/zeroboot-sandbox.js';

async function backend() {
  const zb = fakeZeroboot();
  const sandbox = await zb.sandbox();
  return { sandbox, backend: new ZerobootSandbox(sandbox as unknown as Sandbox, { runtime: 'js' }) };
}

describe('ZerobootSandbox', () => {
  test('has an id from the sandbox and refuses what is not a Sandbox', async () => {
    const { sandbox, backend: b } = await backend();
    expect(b.id).toBe(`zeroboot-${sandbox.id}`);
    expect(() => new ZerobootSandbox({} as Sandbox)).toThrow(/Expected `sandbox` to be a zeroboot Sandbox/);
  });

  test('execute returns both streams as one output, the exit code and truncation', async () => {
    const { backend: b } = await backend();
    expect(await b.execute("return { stdout: 'out\\n', stderr: 'err\\n', exitCode: 3, truncated: true }")).toEqual({ output: 'out\nerr\n', exitCode: 3, truncated: true });
  });

  test('a killed or timed-out command has exit code 128 + the signal, and says it timed out', async () => {
    const { backend: b } = await backend();
    const response = await b.execute("return { exitCode: null, signal: 'SIGKILL', timedOut: true, durationMs: 1000 }");
    expect(response.exitCode).toBe(137);
    expect(response.output).toContain('[timed out after 1000 ms: the command was killed]');
  });

  test('uploadFiles and downloadFiles succeed or fail per file, a file past the disk quota included', async () => {
    const { sandbox, backend: b } = await backend();
    const bytes = new TextEncoder().encode('hello');
    expect(await b.uploadFiles([['/workspace/a.txt', bytes], ['/usr/evil', bytes], ['../../x', bytes], ['full/big.bin', bytes], ['b.txt', bytes]])).toEqual([
      { path: '/workspace/a.txt', error: null },
      { path: '/usr/evil', error: 'permission_denied' },
      { path: '../../x', error: 'invalid_path' },
      { path: 'full/big.bin', error: 'permission_denied' }, // the fake's disk is full there
      { path: 'b.txt', error: null },
    ]);
    expect([...sandbox.contents.keys()]).toEqual(['a.txt', 'b.txt']);
    await sandbox.files.write('dir/inner.txt', 'x');
    const downloads = await b.downloadFiles(['/workspace/a.txt', '/workspace/missing', '/workspace/dir']);
    expect(downloads.map((d) => [d.path, d.content && new TextDecoder().decode(d.content), d.error])).toEqual([
      ['/workspace/a.txt', 'hello', null],
      ['/workspace/missing', null, 'file_not_found'],
      ['/workspace/dir', null, 'is_directory'],
    ]);
  });

  test('an error that is not about the file (a closed sandbox) is thrown, not hidden as a file error', async () => {
    const { sandbox, backend: b } = await backend();
    await sandbox.close();
    await expect(b.uploadFiles([['a', new Uint8Array()]])).rejects.toMatchObject({ code: 'SANDBOX_CLOSED' });
    await expect(b.downloadFiles(['a'])).rejects.toMatchObject({ code: 'SANDBOX_CLOSED' });
    await expect(b.execute('return {}')).rejects.toMatchObject({ code: 'SANDBOX_CLOSED' });
  });
});
