// The `zeroboot` command, run as a user runs it: the built dist/cli.js in a child process.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, test } from 'vitest';

import { runDoctor } from '../src/doctor.js';
import { ROOTLESS } from '../../../test/helpers.js';

const cli = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
const scratch = mkdtempSync(join(tmpdir(), 'zeroboot-cli-test-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function zeroboot(args: string[], input = '') {
  const result = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', input, timeout: 30_000 });
  if (result.error) throw result.error;
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe('zeroboot run', () => {
  test('prints what the code prints and exits 0', () => {
    const r = zeroboot(['run', 'python', '-c', 'print(40+2)']);
    expect(r).toMatchObject({ status: 0, stdout: '42\n', stderr: '' });
  });

  test("exits with the code's exit status", () => {
    expect(zeroboot(['run', 'python', '-c', 'raise SystemExit(7)']).status).toBe(7);
  });

  test('runs a file, with stdout and stderr kept apart', () => {
    const file = join(scratch, 'hello.py');
    writeFileSync(file, 'import sys\nprint("from a file")\nprint("to stderr", file=sys.stderr)\n');
    expect(zeroboot(['run', 'python', file])).toMatchObject({ status: 0, stdout: 'from a file\n', stderr: 'to stderr\n' });
  });

  test('reads the code from stdin with - or no argument', () => {
    expect(zeroboot(['run', 'python', '-'], 'print(6*7)\n')).toMatchObject({ status: 0, stdout: '42\n' });
    expect(zeroboot(['run', 'python'], 'print(6*7)\n')).toMatchObject({ status: 0, stdout: '42\n' });
  });

  test('--env sets variables in the sandbox, and the host environment stays out', () => {
    const r = spawnSync(process.execPath, [cli, 'run', 'python', '--env', 'GREETING=a=b', '-c', 'import os; print(os.environ["GREETING"], os.environ.get("HOST_SECRET"))'], {
      encoding: 'utf8',
      env: { ...process.env, HOST_SECRET: 'leaked' },
    });
    expect(r.stdout).toBe('a=b None\n');
  });

  test('exits 124 on timeout, like timeout(1)', () => {
    const began = performance.now();
    const r = zeroboot(['run', 'python', '--timeout-ms', '300', '-c', 'import time; time.sleep(30)']);
    expect(r.status).toBe(124);
    expect(r.stderr).toContain('timed out after 300 ms');
    expect(performance.now() - began).toBeLessThan(10_000);
  });

  test.each([
    [['run'], /needs a runtime/],
    [['run', 'ruby', '-c', '1'], /unknown runtime "ruby"/],
    [['run', 'python', '-c', '1', 'extra.py'], /either with -c or as a FILE/],
    [['run', 'python', '--bogus'], /Unknown option '--bogus'/],
    [['run', 'python', '--timeout-ms', 'soon', '-c', '1'], /--timeout-ms expects a whole number/],
    [['run', 'python', '--env', 'NOEQUALS', '-c', '1'], /--env expects NAME=VALUE/],
    [['run', 'python', join('/nonexistent', 'x.py')], /cannot read .*ENOENT/],
    [['frobnicate'], /unknown command "frobnicate"/],
  ])('usage error %j exits 2 with a message', (args, message) => {
    const r = zeroboot(args);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/^zeroboot: /);
    expect(r.stderr).toMatch(message);
  });

  test('--help and --version', () => {
    expect(zeroboot(['--help'])).toMatchObject({ status: 0, stdout: expect.stringContaining('run <runtime>') });
    expect(zeroboot(['--version'])).toMatchObject({ status: 0, stdout: expect.stringMatching(/^\d+\.\d+\.\d+/) });
  });
});

describe('zeroboot doctor', () => {
  test('exits 0 on this machine and prints a line per check', () => {
    const r = zeroboot(['doctor']);
    expect(r.status, r.stdout + r.stderr).toBe(0);
    for (const name of ['linux', 'privileges', 'user namespaces', 'seccomp', 'python3', 'end-to-end', 'limits']) {
      expect(r.stdout).toMatch(new RegExp(`^ok +${name} `, 'm'));
    }
    expect(r.stdout).toMatch(/^ok +end-to-end .*print\(1\+1\) -> 2 .*features: /m);
    // Which limit is enforced how: rootless, sandboxes are the user's own uid, and without a delegated cgroup
    // v2 subtree (none on this project's cgroup v1 machines) memory is RLIMIT_AS per process.
    expect(r.stdout).toMatch(ROOTLESS ? /^ok +limits +rootless, sandboxes run as host uid \d+; memoryMb: per process, by RLIMIT_AS/m : /^ok +limits +root, sandboxes run as host uid \d{7,}; memoryMb: per sandbox/m);
  });

  test('runDoctor() returns the checks, named, with the fork-server features', async () => {
    const report = await runDoctor();
    expect(report.ok).toBe(true);
    const names = report.checks.map((c) => c.name);
    expect(names).toEqual(expect.arrayContaining(['linux', 'privileges', 'native addon', 'python3', 'user namespaces', 'namespaces', 'seccomp', 'landlock', 'cgroups', 'overlayfs', 'end-to-end', 'limits']));
    for (const check of report.checks) {
      expect(['error', 'warning']).toContain(check.severity);
      expect(check.detail.length).toBeGreaterThan(0);
      if (!check.ok) expect(check.fix).toBeTruthy();
    }
    expect(report.endToEnd?.features).toContain('seccomp');
  });
});
