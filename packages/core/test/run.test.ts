// Behaviour of Zeroboot.start and zb.run, seen from the outside: what the caller gets back and what the
// code inside the sandbox can see.
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, symlinkSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { describe, expect, test } from 'vitest';

import {
  ROOTLESS,
  Zeroboot,
  alive,
  eventually,
  marker,
  py,
  record,
  run,
  runJson,
  sandboxGroups,
  sharedZeroboot,
  within,
  withZeroboot,
  zerobootError,
  type RunResult,
  type StartOptions,
} from '../../../test/helpers.js';

// Set before the shared instance starts: the sandbox must never see it.
const HOST_SECRET = `zb-host-secret-${randomBytes(8).toString('hex')}`;
process.env.ZB_TEST_HOST_SECRET = HOST_SECRET;

const zb = sharedZeroboot();

describe('Zeroboot.start', () => {
  test('defaults: the documented limits and a warm template for every runtime found', async () => {
    expect(zb().limits).toEqual({ timeoutMs: 10_000, memoryMb: 256, maxProcesses: 64, maxOutputBytes: 1 << 20, diskMb: 256 });
    const stats = zb().stats();
    record('stats', stats);
    expect(Object.keys(stats.templates)).toEqual(['python', 'node', 'shell']);
    for (const name of ['python', 'node', 'shell']) expect(await eventually(() => zb().stats().templates[name]!.ready > 0, 5000)).toBe(true);
  });

  test.each<[string, unknown, RegExp]>([
    ['a negative limits.timeoutMs', { limits: { timeoutMs: -1 } }, /limits\.timeoutMs/],
    ['a fractional limits.timeoutMs', { limits: { timeoutMs: 1.5 } }, /limits\.timeoutMs/],
    ['a string limits.memoryMb', { limits: { memoryMb: '256' } }, /limits\.memoryMb/],
    ['a tiny limits.memoryMb', { limits: { memoryMb: 1 } }, /limits\.memoryMb/],
    ['limits.maxProcesses 0', { limits: { maxProcesses: 0 } }, /limits\.maxProcesses/],
    ['a negative limits.maxOutputBytes', { limits: { maxOutputBytes: -5 } }, /limits\.maxOutputBytes/],
    ['limits.diskMb 0', { limits: { diskMb: 0 } }, /limits\.diskMb/],
    ['an unknown limit', { limits: { timeout: 5 } }, /limits\.timeout\b/],
    ['an unknown top-level option', { bogus: true }, /bogus/],
    ['network other than none', { network: 'host' }, /network/],
    ['maxLimits.timeoutMs 0', { maxLimits: { timeoutMs: 0 } }, /maxLimits\.timeoutMs/],
    ['a template name with capitals', { templates: { Python: {} } }, /templates/],
    ['a template whose runtime is unknown', { templates: { python: { runtime: 'ruby' } } }, /templates\.python\.runtime/],
    ['a custom template without a runtime', { templates: { 'my-tpl': {} } }, /templates\.my-tpl\.runtime/],
    ['a preload that is not a module name', { templates: { python: { preload: ['os; import evil'] } } }, /templates\.python\.preload/],
    ['a negative pool', { templates: { python: { pool: -1 } } }, /templates\.python\.pool/],
    ['concurrency 0', { templates: { python: { concurrency: 0 } } }, /templates\.python\.concurrency/],
    ['an unknown template option', { templates: { python: { warm: true } } }, /templates\.python\.warm/],
  ])('rejects %s with INVALID_ARGUMENT naming the field', async (_name, options, field) => {
    const error = await zerobootError(Zeroboot.start(options as StartOptions));
    expect(error.code).toBe('INVALID_ARGUMENT');
    expect(error.message).toMatch(field);
  });

  test('a template whose interpreter does not exist fails to start with a ZerobootError', async () => {
    const error = await zerobootError(Zeroboot.start({ templates: { python: { executable: '/nonexistent/python3' } } }));
    expect(error.message).toMatch(/python/i);
  });

  test('named custom templates preload their modules; other templates do not have them', async () => {
    await withZeroboot({ templates: { 'py-data': { runtime: 'python', preload: ['json', 'decimal'], pool: 1 }, python: { pool: 1 } } }, async (zb) => {
      expect(Object.keys(zb.stats().templates).sort()).toEqual(['py-data', 'python']);
      const data = await runJson(zb, "import sys, json; print(json.dumps('decimal' in sys.modules))");
      expect(data).toBe(false); // runJson uses the python template
      const custom = await zb.run('py-data', "import sys; print('decimal' in sys.modules, 'json' in sys.modules)");
      record('py-data run', custom);
      expect(custom.stdout).toBe('True True\n');
      const error = await zerobootError(zb.run('node', 'console.log(1)'));
      expect(error.code).toBe('UNKNOWN_RUNTIME');
    });
  });

  test('a template with prewarm: false runs code exactly like a pre-warmed one', async () => {
    await withZeroboot({ templates: { cold: { runtime: 'python', prewarm: false, pool: 2 }, python: { pool: 1 } } }, async (zb) => {
      const code = 'import sys, os, threading, atexit\natexit.register(lambda: print("bye"))\nthreading.Thread(target=lambda: print("thread")).start()\nprint(sys.argv, os.getcwd(), __name__)';
      const [cold, warm] = await Promise.all([zb.run('cold', code), zb.run('python', code)]);
      record('cold', cold);
      record('warm', warm);
      expect(cold.exitCode).toBe(0);
      expect(cold.stdout).toBe(warm.stdout);
      expect(cold.stdout).toContain("['-c'] /workspace __main__");
      expect(cold.stdout).toContain('bye');
    });
  });

  test('limits.timeoutMs is the default deadline of every run', async () => {
    await withZeroboot({ limits: { timeoutMs: 300 }, templates: { python: { pool: 1 } } }, async (zb) => {
      const started = performance.now();
      const r = await run(zb, 'import time; time.sleep(30)');
      expect(r.timedOut).toBe(true);
      expect(performance.now() - started).toBeLessThan(3000);
    });
  });

  test('a run may not ask for more than maxLimits.timeoutMs', async () => {
    await withZeroboot({ maxLimits: { timeoutMs: 1000 }, limits: { timeoutMs: 500 }, templates: { python: { pool: 0 } } }, async (zb) => {
      const error = await zerobootError(zb.run('python', 'pass', { timeoutMs: 2000 }));
      expect(error.code).toBe('INVALID_ARGUMENT');
      expect(error.message).toMatch(/timeoutMs/);
      expect((await run(zb, 'print(1)', { timeoutMs: 1000 })).stdout).toBe('1\n');
    });
  });

  test('pool: 0 forks on demand', async () => {
    await withZeroboot({ templates: { python: { pool: 0 } } }, async (zb) => {
      expect(zb.stats().templates.python!.ready).toBe(0);
      expect((await run(zb, 'print("on demand")')).stdout).toBe('on demand\n');
    });
  });
});

describe('run: output and exit', () => {
  test('stdout, stderr and exit code 0, with the documented result shape', async () => {
    const r = await run(zb(), 'import sys\nprint("out")\nprint("err", file=sys.stderr)');
    expect(r).toEqual({
      stdout: 'out\n',
      stderr: 'err\n',
      exitCode: 0,
      signal: null,
      timedOut: false,
      truncated: false,
      outcome: 'exited',
      durationMs: expect.any(Number),
    });
    expect(r.durationMs).toBeGreaterThan(0);
  });

  test('sys.exit(3) is exit code 3, not an error', async () => {
    const r = await run(zb(), 'import sys; print("bye"); sys.exit(3)');
    expect(r).toMatchObject({ stdout: 'bye\n', exitCode: 3, signal: null, outcome: 'exited' });
  });

  test('sys.exit("message") prints the message and exits 1, as python3 -c does', async () => {
    const r = await run(zb(), 'import sys; sys.exit("fatal: no input")');
    expect(r).toMatchObject({ exitCode: 1, stderr: 'fatal: no input\n' });
  });

  test('an uncaught exception exits 1 with a traceback that starts at File "<string>"', async () => {
    const r = await run(zb(), py(`
      def f():
          raise ValueError("boom")
      f()
    `));
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/^Traceback \(most recent call last\):\n {2}File "<string>", line 3, in <module>\n/);
    expect(r.stderr).toMatch(/ValueError: boom\n$/);
    expect(r.stderr).not.toMatch(/zygote|zeroboot/);
  });

  test('a syntax error exits 1 and says so', async () => {
    const r = await run(zb(), 'def (:');
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/SyntaxError/);
  });

  test('a run killed by a signal has exitCode null, the signal name and outcome signaled', async () => {
    const r = await run(zb(), 'import ctypes; print("before", flush=True); ctypes.string_at(0)');
    expect(r).toMatchObject({ stdout: 'before\n', exitCode: null, signal: 'SIGSEGV', outcome: 'signaled', timedOut: false });
  });

  test('atexit handlers and non-daemon threads run before the end, as in a script', async () => {
    const r = await run(zb(), py(`
      import atexit, threading, time
      atexit.register(lambda: print("atexit"))
      def late():
          time.sleep(0.1)
          print("thread")
      threading.Thread(target=late).start()
      print("main")
    `));
    expect(r.stdout).toBe('main\nthread\natexit\n');
  });

  test('UTF-8 output is decoded; invalid bytes are replaced, never thrown on', async () => {
    const r = await run(zb(), py(`
      import sys
      sys.stdout.buffer.write(b"ok \\xff\\xfe end \\xc3\\n")
      sys.stdout.write("h\\u00e9llo \\u2713 \\U0001F600\\n")
      sys.stderr.buffer.write(b"\\x80err\\n")
    `));
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toBe('ok \uFFFD\uFFFD end \uFFFD\nhéllo ✓ 😀\n');
    expect(r.stderr).toBe('\uFFFDerr\n');
  });

  test('a character split across two writes is decoded whole', async () => {
    const chunks: string[] = [];
    const r = await run(
      zb(),
      py(`
        import sys, time
        sys.stdout.buffer.write(b"\\xc3"); sys.stdout.flush()
        time.sleep(0.1)
        sys.stdout.buffer.write(b"\\xa9\\n"); sys.stdout.flush()
      `),
      { onStdout: (c) => chunks.push(c) },
    );
    expect(r.stdout).toBe('é\n');
    expect(chunks.join('')).toBe('é\n');
  });
});

describe('run: what the code sees', () => {
  test('cwd /workspace, argv ["-c"], __main__, hostname sandbox, uid/gid 1000, pid 1', async () => {
    const seen = await runJson(zb(), py(`
      import os, sys, socket, json
      print(json.dumps({
          "cwd": os.getcwd(), "argv": sys.argv, "name": __name__, "path0": sys.path[0],
          "hostname": socket.gethostname(), "uname": os.uname().nodename,
          "uid": os.getuid(), "euid": os.geteuid(), "gid": os.getgid(), "groups": sorted(set(os.getgroups())),
          "pid": os.getpid(), "home": os.environ.get("HOME"),
      }))
    `));
    expect(seen).toEqual({
      cwd: '/workspace', argv: ['-c'], name: '__main__', path0: '', hostname: 'sandbox', uname: 'sandbox',
      uid: 1000, euid: 1000, gid: 1000, groups: sandboxGroups(), pid: 1, home: '/workspace',
    });
  });

  test('each run is a fresh sandbox: files, globals and modules of an earlier run are gone', async () => {
    await run(zb(), 'import sys, decimal; open("/workspace/left.txt","w").write("x"); open("/tmp/left.txt","w").write("x"); sys.zb_marker = 1');
    const seen = await runJson(zb(), py(`
      import os, sys, json
      print(json.dumps([os.listdir("/workspace"), os.path.exists("/tmp/left.txt"), hasattr(sys, "zb_marker"), "decimal" in sys.modules]))
    `));
    expect(seen).toEqual([[], false, false, false]);
  });

  test('env is added to a clean environment; the host environment never leaks in', async () => {
    expect(process.env.ZB_TEST_HOST_SECRET).toBe(HOST_SECRET);
    const seen = await runJson(
      zb(),
      py(`
        import os, json
        try:
            pid1 = open("/proc/1/environ", "rb").read().decode("utf-8", "replace")
        except PermissionError:
            pid1 = "(unreadable)"  # the sandbox is not dumpable: its /proc files belong to an unmapped root
        print(json.dumps({"environ": dict(os.environ), "pid1": pid1}))
      `),
      { env: { GREETING: 'héllo wörld', EMPTY: '', PATHLIKE: 'a:b=c' } },
    );
    expect(seen.environ).toMatchObject({ GREETING: 'héllo wörld', EMPTY: '', PATHLIKE: 'a:b=c', HOME: '/workspace', LANG: 'C.UTF-8' });
    expect(seen.environ.PATH).toMatch(/\/usr\/bin/);
    const everything = JSON.stringify(seen);
    expect(everything).not.toContain(HOST_SECRET);
    expect(everything).not.toContain('ZB_TEST_HOST_SECRET');
    // No variable of the test process (vitest sets many) may be there, apart from the sandbox's own base set.
    const base = new Set(['PATH', 'HOME', 'LANG', 'USER', 'LOGNAME', 'PWD', 'LC_CTYPE']);
    const leaked = Object.keys(process.env).filter((k) => !base.has(k) && (k in seen.environ || seen.pid1.includes(`${k}=`)));
    expect(leaked).toEqual([]);
  });

  test('env names and values are validated: INVALID_ARGUMENT naming options.env', async () => {
    for (const env of [{ 'BAD-NAME': 'x' }, { '1X': 'x' }, { OK: 'nul\0inside' }, { OK: 42 }]) {
      const error = await zerobootError(zb().run('python', 'pass', { env: env as unknown as Record<string, string> }));
      expect(error.code).toBe('INVALID_ARGUMENT');
      expect(error.message).toMatch(/options\.env/);
    }
  });

  test('stdin as a string', async () => {
    const r = await run(zb(), 'import sys; data = sys.stdin.read(); print(len(data), data[::-1])', { stdin: 'héllo\nworld' });
    expect(r.stdout).toBe('11 dlrow\nolléh\n');
  });

  test('stdin as a Uint8Array arrives byte for byte, every byte value', async () => {
    const bytes = new Uint8Array(4096 + 256);
    for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 7 + (i >> 8)) & 0xff;
    const r = await run(zb(), 'import sys, hashlib; d = sys.stdin.buffer.read(); print(len(d), hashlib.sha256(d).hexdigest())', { stdin: bytes });
    expect(r.stdout).toBe(`${bytes.length} ${createHash('sha256').update(bytes).digest('hex')}\n`);
  });

  test('a large stdin (several MB) arrives whole', async () => {
    const bytes = randomBytes(3 * 1024 * 1024 + 17);
    const r = await run(zb(), 'import sys, hashlib; d = sys.stdin.buffer.read(); print(len(d), hashlib.sha256(d).hexdigest())', { stdin: bytes });
    expect(r.stdout).toBe(`${bytes.length} ${createHash('sha256').update(bytes).digest('hex')}\n`);
  });

  test('without stdin, reading it ends at once (empty, not a hang)', async () => {
    const r = await run(zb(), 'import sys; print(repr(sys.stdin.read()))', { timeoutMs: 3000 });
    expect(r).toMatchObject({ stdout: "''\n", timedOut: false });
  });

  test('files: relative paths land in /workspace, absolute ones where they say, nested dirs are created', async () => {
    const binary = new Uint8Array([0, 1, 2, 253, 254, 255, 0x0a, 0x0d]);
    const seen = await runJson(
      zb(),
      py(`
        import json, os
        def read(p):
            return list(open(p, "rb").read())
        print(json.dumps({
            "rel": open("data.csv").read(),
            "abs_rel": open("/workspace/data.csv").read(),
            "nested": read("deep/er/still/blob.bin"),
            "tmp": open("/tmp/abs.txt").read(),
            "abs_ws": open("/workspace/sub/abs.txt").read(),
            "listing": sorted(os.listdir(".")),
        }))
      `),
      {
        files: {
          'data.csv': 'a,b\n1,2\n',
          'deep/er/still/blob.bin': binary,
          '/tmp/abs.txt': 'in tmp ✓',
          '/workspace/sub/abs.txt': 'absolute in workspace',
        },
      },
    );
    expect(seen).toEqual({
      rel: 'a,b\n1,2\n',
      abs_rel: 'a,b\n1,2\n',
      nested: [...binary],
      tmp: 'in tmp ✓',
      abs_ws: 'absolute in workspace',
      listing: ['data.csv', 'deep', 'sub'],
    });
  });

  test('a large file (several MB) is written whole', async () => {
    const blob = randomBytes(2 * 1024 * 1024 + 3);
    const r = await run(zb(), 'import hashlib; d = open("big.bin","rb").read(); print(len(d), hashlib.sha256(d).hexdigest())', { files: { 'big.bin': blob } });
    expect(r.stdout).toBe(`${blob.length} ${createHash('sha256').update(blob).digest('hex')}\n`);
  });

  test('files that do not fit in limits.diskMb reject with DISK_QUOTA_EXCEEDED', async () => {
    await withZeroboot({ limits: { diskMb: 4 }, templates: { python: { pool: 1 } } }, async (zb) => {
      const error = await zerobootError(zb.run('python', 'print("ran")', { files: { 'big.bin': new Uint8Array(8 * 1024 * 1024) } }));
      expect(error.code).toBe('DISK_QUOTA_EXCEEDED');
    });
  });

  test('bad files options are INVALID_ARGUMENT naming options.files', async () => {
    for (const files of [{ '': 'x' }, { 'a\0b': 'x' }, { 'a.txt': 42 }]) {
      const error = await zerobootError(zb().run('python', 'pass', { files: files as unknown as Record<string, string> }));
      expect(error.code).toBe('INVALID_ARGUMENT');
      expect(error.message).toMatch(/options\.files/);
    }
  });
});

describe('run: streaming', () => {
  test('onStdout gets the first chunk while the code is still running, in order', async () => {
    const chunks: Array<{ text: string; at: number }> = [];
    const errChunks: string[] = [];
    const started = performance.now();
    const r = await run(
      zb(),
      py(`
        import sys, time
        print("first", flush=True)
        print("warn", file=sys.stderr, flush=True)
        time.sleep(0.3)
        print("second")
      `),
      { onStdout: (text) => chunks.push({ text, at: performance.now() }), onStderr: (text) => errChunks.push(text) },
    );
    const resolvedAt = performance.now();
    record('chunks', { chunks: chunks.map((c) => ({ ...c, at: c.at - started })), resolvedAt: resolvedAt - started, errChunks });
    expect(r.stdout).toBe('first\nsecond\n');
    expect(chunks.map((c) => c.text).join('')).toBe(r.stdout);
    expect(chunks[0]!.text).toMatch(/^first\n/);
    expect(resolvedAt - chunks[0]!.at).toBeGreaterThan(200);
    expect(errChunks.join('')).toBe('warn\n');
  });

  test('many lines stream in order and add up to stdout', async () => {
    const chunks: string[] = [];
    const r = await run(zb(), 'for i in range(20000): print(i)', { onStdout: (c) => chunks.push(c) });
    const expected = Array.from({ length: 20000 }, (_, i) => `${i}\n`).join('');
    expect(r.stdout).toBe(expected);
    expect(chunks.join('')).toBe(expected);
  });

  test('onStdoutBytes and onStderrBytes get the bytes as written, invalid UTF-8 and all, next to the decoded text', async () => {
    const bytes = Array.from({ length: 256 }, (_, i) => i);
    const out: Uint8Array[] = [];
    const err: Uint8Array[] = [];
    const text: string[] = [];
    const r = await run(zb(), `import sys; sys.stdout.buffer.write(bytes(${JSON.stringify(bytes)})); sys.stderr.buffer.write(b"\\xff\\xfeok")`, {
      onStdoutBytes: (chunk) => out.push(chunk),
      onStderrBytes: (chunk) => err.push(chunk),
      onStdout: (chunk) => text.push(chunk),
    });
    expect(Buffer.concat(out)).toEqual(Buffer.from(bytes));
    expect(Buffer.concat(err)).toEqual(Buffer.from([0xff, 0xfe, 0x6f, 0x6b]));
    expect(text.join('')).toBe(r.stdout); // the text callbacks still get the decoded stream
    expect(r.stdout).toBe(Buffer.from(bytes).toString('utf8'));
  });

  test('an onStdout callback that throws fails the run with INVALID_ARGUMENT, with the error as cause', async () => {
    const boom = new Error('callback bug');
    const error = await zerobootError(
      zb().run('python', 'print("x")', {
        onStdout: () => {
          throw boom;
        },
      }),
    );
    expect(error.code).toBe('INVALID_ARGUMENT');
    expect(error.cause).toBe(boom);
  });
});

describe('run: limits', () => {
  test('timeoutMs: a busy loop is killed at the deadline, promptly, with what it printed so far', async () => {
    const started = performance.now();
    const r = await run(zb(), 'print("before", flush=True)\nwhile True: pass', { timeoutMs: 400 });
    const elapsed = performance.now() - started;
    expect(r).toMatchObject({ stdout: 'before\n', timedOut: true, signal: 'SIGKILL', exitCode: null, outcome: 'timed-out' });
    expect(elapsed).toBeGreaterThanOrEqual(390);
    expect(elapsed).toBeLessThan(2500);
  });

  test('timeoutMs kills the whole process tree, not only the code', async () => {
    const m = marker();
    const r = await run(zb(), `${m.code}\nimport time; time.sleep(60)`, { timeoutMs: 500 });
    expect(r.timedOut).toBe(true);
    expect(await eventually(() => m.gone(), 3000)).toBe(true);
  });

  test('timeoutMs is validated: INVALID_ARGUMENT naming options.timeoutMs', async () => {
    for (const timeoutMs of [-1, 0, 1.5, Number.NaN]) {
      const error = await zerobootError(zb().run('python', 'pass', { timeoutMs }));
      expect(error.code).toBe('INVALID_ARGUMENT');
      expect(error.message).toMatch(/options\.timeoutMs/);
    }
  });

  test('maxOutputBytes: output past the cap is dropped and truncated is set, per stream', async () => {
    await withZeroboot({ limits: { maxOutputBytes: 1000 }, templates: { python: { pool: 2 } } }, async (zb) => {
      const r = await run(zb, 'import sys\nprint("x" * 5000)\nprint("y" * 10, file=sys.stderr)\nprint("ran to the end", file=sys.stderr)');
      expect(r.exitCode).toBe(0);
      expect(r.truncated).toBe(true);
      expect(r.stdout).toBe('x'.repeat(1000));
      expect(r.stderr).toBe(`${'y'.repeat(10)}\nran to the end\n`);
      const exact = await run(zb, 'print("z" * 999)');
      expect(exact).toMatchObject({ stdout: `${'z'.repeat(999)}\n`, truncated: false });
      const multibyte = await run(zb, 'print("é" * 1000)');
      expect(multibyte.truncated).toBe(true);
      expect(Buffer.byteLength(multibyte.stdout)).toBeLessThanOrEqual(1003);
      expect(multibyte.stdout.startsWith('é'.repeat(499))).toBe(true);
    });
  });

  test('maxOutputBytes 0 keeps nothing', async () => {
    await withZeroboot({ limits: { maxOutputBytes: 0 }, templates: { python: { pool: 1 } } }, async (zb) => {
      const r = await run(zb, 'print("hidden")');
      expect(r).toMatchObject({ stdout: '', truncated: true, exitCode: 0 });
    });
  });
});

describe('run: abort', () => {
  test('aborting a running run rejects with ABORTED and kills its processes', async () => {
    const m = marker();
    const controller = new AbortController();
    let sandboxPid = 0;
    const promise = zb().run('python', `${m.code}\nimport time\nprint("running", flush=True)\ntime.sleep(60)`, {
      signal: controller.signal,
      onStdout: () => {
        // The marker's parent on the host is the sandbox's pid 1.
        sandboxPid = m.find()[0]?.ppid ?? 0;
        controller.abort(new Error('user pressed stop'));
      },
    });
    const started = performance.now();
    const error = await zerobootError(promise);
    expect(error.code).toBe('ABORTED');
    expect(performance.now() - started).toBeLessThan(3000);
    expect(sandboxPid).toBeGreaterThan(0);
    expect(await eventually(() => m.gone() && !alive(sandboxPid), 3000)).toBe(true);
    expect(await eventually(() => zb().stats().sandboxes === 0, 2000)).toBe(true);
  });

  test('an aborted run is no longer in flight once its promise rejects', async () => {
    // With concurrency: N, a run that still counts after it rejected lets N + 1 sandboxes run at once.
    await withZeroboot({ templates: { python: { concurrency: 1, pool: 2 } } }, async (zb) => {
      const m = marker();
      const controller = new AbortController();
      const first = zb.run('python', `${m.code}\nimport time\nprint("up", flush=True)\ntime.sleep(20)`, { signal: controller.signal, onStdout: () => controller.abort() });
      const second = run(zb, 'print("second")');
      const error = await zerobootError(first);
      const inFlight = zb.stats().sandboxes;
      const markerGone = m.gone();
      record('at rejection', { inFlight, markerGone });
      expect(error.code).toBe('ABORTED');
      // The first run's processes are gone by the time it rejects; the one run that may be in flight is
      // the second, which the queue starts as soon as the first settles.
      expect(markerGone).toBe(true);
      expect(inFlight).toBeLessThanOrEqual(1);
      expect((await second).stdout).toBe('second\n');
      expect(zb.stats().sandboxes).toBe(0);
    });
  });

  test('the abort reason is the cause', async () => {
    const controller = new AbortController();
    const reason = new Error('why');
    const promise = zb().run('python', 'import time; time.sleep(30)', { signal: controller.signal });
    setTimeout(() => controller.abort(reason), 200);
    const error = await zerobootError(promise);
    expect(error.code).toBe('ABORTED');
    expect(error.cause).toBe(reason);
  });

  test('an already-aborted signal rejects with ABORTED and runs nothing', async () => {
    await eventually(() => zb().stats().sandboxes === 0, 2000);
    const forks = zb().stats().templates.python!.forks;
    const m = marker();
    const error = await zerobootError(zb().run('python', `${m.code}`, { signal: AbortSignal.abort() }));
    expect(error.code).toBe('ABORTED');
    expect(zb().stats().sandboxes).toBe(0);
    expect(zb().stats().templates.python!.forks).toBe(forks);
    expect(m.find()).toEqual([]);
  });

  test('aborting a run queued behind concurrency: 1 rejects at once and never runs it', async () => {
    await withZeroboot({ templates: { python: { concurrency: 1, pool: 2 } } }, async (zb) => {
      const first = run(zb, 'import time; time.sleep(1); print("first done")');
      const controller = new AbortController();
      const m = marker();
      const queued = zb.run('python', `${m.code}\nprint("queued ran")`, { signal: controller.signal });
      await new Promise((r) => setTimeout(r, 200));
      expect(zb.stats().sandboxes).toBe(1);
      const abortedAt = performance.now();
      controller.abort();
      const error = await zerobootError(queued);
      expect(error.code).toBe('ABORTED');
      expect(performance.now() - abortedAt).toBeLessThan(300);
      expect((await first).stdout).toBe('first done\n');
      expect(m.find()).toEqual([]);
    });
  });

  test('a signal that never aborts changes nothing', async () => {
    const r = await run(zb(), 'print("fine")', { signal: new AbortController().signal });
    expect(r.stdout).toBe('fine\n');
  });
});

describe('run: arguments, runtimes and lifecycle', () => {
  test('an unknown runtime is UNKNOWN_RUNTIME, naming the templates there are', async () => {
    for (const name of ['ruby', 'python3', 'bash']) {
      const error = await zerobootError(zb().run(name, 'x'));
      expect(error.code).toBe('UNKNOWN_RUNTIME');
      expect(error.message).toContain('"python"');
    }
  });

  test('bad arguments are INVALID_ARGUMENT naming the field', async () => {
    const cases: Array<[() => Promise<unknown>, RegExp]> = [
      [() => zb().run(42 as unknown as string, 'pass'), /runtime/],
      [() => zb().run('python', undefined as unknown as string), /code/],
      [() => zb().run('python', 'pass', { timeout: 5 } as never), /options\.timeout\b/],
      [() => zb().run('python', 'pass', { stdin: 42 } as never), /options\.stdin/],
      [() => zb().run('python', 'pass', { onStdout: 'log' } as never), /options\.onStdout/],
      [() => zb().run('python', 'pass', { signal: {} } as never), /options\.signal/],
    ];
    for (const [call, field] of cases) {
      const error = await zerobootError(call());
      expect(error.code).toBe('INVALID_ARGUMENT');
      expect(error.message).toMatch(field);
    }
  });

  test('after close: runs reject with SANDBOX_CLOSED, close again is fine, no fork-server is left', async () => {
    const zb = await Zeroboot.start({ templates: { python: { pool: 1 } } });
    const serverPid = zb.forkServer('python')!.serverPid!;
    expect(alive(serverPid)).toBe(true);
    await zb.close();
    await zb.close();
    expect(await eventually(() => !alive(serverPid), 2000)).toBe(true);
    const error = await zerobootError(zb.run('python', 'print(1)'));
    expect(error.code).toBe('SANDBOX_CLOSED');
  });

  test('close during a run: the run rejects with SANDBOX_CLOSED and its processes are gone', async () => {
    const zb = await Zeroboot.start({ templates: { python: { pool: 1 } } });
    const m = marker();
    let started!: () => void;
    const running = new Promise<void>((r) => (started = r));
    const promise = zb.run('python', `${m.code}\nimport time\nprint("up", flush=True)\ntime.sleep(60)`, { onStdout: () => started() });
    await running;
    const closing = zb.close();
    const error = await zerobootError(promise);
    await closing;
    expect(error.code).toBe('SANDBOX_CLOSED');
    expect(await eventually(() => m.gone(), 3000)).toBe(true);
  });

  test('await using closes the instance at the end of the block', async () => {
    let serverPid = 0;
    let escaped: Zeroboot | undefined;
    {
      await using zb = await Zeroboot.start({ templates: { python: { pool: 1 } } });
      escaped = zb;
      serverPid = zb.forkServer('python')!.serverPid!;
      expect((await run(zb, 'print(6 * 7)')).stdout).toBe('42\n');
    }
    expect(await eventually(() => !alive(serverPid), 2000)).toBe(true);
    expect((await zerobootError(escaped.run('python', 'pass'))).code).toBe('SANDBOX_CLOSED');
  });

  test('stats(): shape, fork counts and runs in flight', async () => {
    await withZeroboot({ templates: { python: { pool: 2 } } }, async (zb) => {
      expect(await eventually(() => zb.stats().templates.python!.ready === 2, 5000)).toBe(true);
      const before = zb.stats();
      record('before', before);
      expect(before).toEqual({
        templates: { python: { ready: 2, forks: expect.any(Number), p50ForkMs: expect.any(Number), p99ForkMs: expect.any(Number) } },
        sandboxes: 0,
        enforcement: {
          mode: ROOTLESS ? 'rootless' : 'root',
          hostUid: ROOTLESS ? process.getuid!() : expect.any(Number),
          memory: expect.stringMatching(/^(cgroup-v1|cgroup-v2|rlimit)$/),
          processes: expect.stringMatching(/^(cgroup-v1|cgroup-v2|rlimit)$/),
        },
      });
      if (!ROOTLESS) expect(before.enforcement.hostUid).toBeGreaterThanOrEqual(1_000_000);
      const t = before.templates.python!;
      expect(t.forks).toBeGreaterThanOrEqual(2);
      expect(t.p50ForkMs).toBeGreaterThan(0);
      expect(t.p99ForkMs).toBeGreaterThanOrEqual(t.p50ForkMs);

      let up!: () => void;
      const running = new Promise<void>((r) => (up = r));
      const slow = Promise.all([0, 1, 2].map(() => run(zb, 'import time; print("up", flush=True); time.sleep(0.5)', { onStdout: () => up() })));
      await running;
      expect(zb.stats().sandboxes).toBe(3);
      await slow;
      for (let i = 0; i < 5; i++) await run(zb, 'pass');
      expect(zb.stats().sandboxes).toBe(0);
      // Every run used a sandbox the server handed over: 8 runs, plus the pool kept full.
      expect(zb.stats().templates.python!.forks).toBeGreaterThanOrEqual(before.templates.python!.forks + 8 - 2);
      expect(await eventually(() => zb.stats().templates.python!.ready === 2, 5000)).toBe(true);
    });
  });

  test('50 concurrent runs all get their own correct result', async () => {
    const results: RunResult[] = await Promise.all(
      Array.from({ length: 50 }, (_, i) => run(zb(), 'import os, sys; print(int(os.environ["N"]) * 2); print(os.getpid(), file=sys.stderr)', { env: { N: String(i) } })),
    );
    results.forEach((r, i) => {
      expect(r).toMatchObject({ stdout: `${i * 2}\n`, stderr: '1\n', exitCode: 0 });
    });
  }, 60_000);
});

describe('fork-server death', () => {
  /** Starts a long run, kills the template's fork-server with SIGKILL once the run is up; returns the run's rejection. */
  async function killServerMidRun(zb: Zeroboot, m: ReturnType<typeof marker>) {
    const serverPid = zb.forkServer('python')!.serverPid!;
    let up!: () => void;
    const running = new Promise<void>((r) => (up = r));
    const promise = zb.run('python', `${m.code}\nimport time\nprint("up", flush=True)\ntime.sleep(20)`, { onStdout: () => up() });
    await within(running, 5000, 'the run to start');
    expect(m.find()).toHaveLength(1);
    const sandboxPid = m.find()[0]!.ppid; // the marker's parent on the host: the sandbox's pid 1
    process.kill(serverPid, 'SIGKILL');
    const killedAt = performance.now();
    const error = await within(zerobootError(promise), 5000, 'the run to settle after its fork-server died');
    expect(performance.now() - killedAt).toBeLessThan(3000);
    return { serverPid, sandboxPid, error };
  }

  test('killing the fork-server mid-run: that run rejects with FORKSERVER_DIED, later runs work on a new server', async () => {
    await withZeroboot({ templates: { python: { pool: 2 } } }, async (zb) => {
      const { serverPid, error } = await killServerMidRun(zb, marker());
      expect(error.code).toBe('FORKSERVER_DIED');
      const after = await within(run(zb, 'print("alive again")'), 10_000, 'a run after the fork-server restart');
      expect(after.stdout).toBe('alive again\n');
      const newPid = zb.forkServer('python')!.serverPid!;
      expect(newPid).not.toBe(serverPid);
      expect(alive(newPid)).toBe(true);
    });
  });

  test('killing the fork-server mid-run leaves none of the run\'s processes behind', async () => {
    await withZeroboot({ templates: { python: { pool: 2 } } }, async (zb) => {
      const m = marker();
      const { sandboxPid: pid, error } = await killServerMidRun(zb, m);
      expect(error.code).toBe('FORKSERVER_DIED');
      const clean = await eventually(() => m.gone() && !alive(pid), 3000);
      record('3 s after the kill', { marker: m.find(), sandboxPid: pid, sandboxAlive: alive(pid) });
      expect(clean).toBe(true);
    });
  });

  test('a fork-server that cannot be restarted: runs time out while waiting, then reject with FORKSERVER_DIED, never hang', async () => {
    // The interpreter is reached through a symlink we remove once the server is up: every restart fails.
    const dir = mkdtempSync(join(tmpdir(), 'zb-restart-'));
    const python = JSON.parse(execFileSync('python3', ['-c', 'import sys, json; print(json.dumps(sys.executable))'], { encoding: 'utf8' })) as string;
    symlinkSync(python, join(dir, 'python3'));
    try {
      await withZeroboot({ templates: { python: { pool: 1, executable: join(dir, 'python3') } } }, async (zb) => {
        unlinkSync(join(dir, 'python3'));
        const serverPid = zb.forkServer('python')!.serverPid!;
        process.kill(serverPid, 'SIGKILL');
        // Until the SDK has seen the death, a run could still take the dead server's parked sandbox.
        expect(await eventually(() => !alive(serverPid) && zb.stats().templates.python!.ready === 0, 3000)).toBe(true);
        // While the restarts back off, a run's deadline covers the wait for a sandbox.
        const waiting = await within(zb.run('python', 'print(1)', { timeoutMs: 100 }), 3000, 'a run waiting for a restart');
        record('while restarting', waiting);
        expect(waiting.timedOut).toBe(true);
        expect(waiting.outcome).toBe('timed-out');
        // Once the restarts are given up, runs fail at once with the reason.
        const error = await within(zerobootError(zb.run('python', 'print(1)', { timeoutMs: 10_000 })), 8000, 'a run after the restarts failed');
        expect(error.code).toBe('FORKSERVER_DIED');
        expect(error.message).toMatch(/could not be restarted/);
        const again = await within(zerobootError(zb.run('python', 'print(1)')), 1000, 'a later run');
        expect(again.code).toBe('FORKSERVER_DIED');
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
