// The same behaviour from every runtime: one table of programs (the same task written for python, node and
// shell), one set of assertions. Plus fork hygiene: what one sandbox of a template must not share with
// another (random number generators), and what one run must not leave to the next.
import { createHash, randomBytes } from 'node:crypto';

import { describe, expect, test } from 'vitest';

import { RUNTIMES, Zeroboot, eventually, hostProcesses, record, sharedZeroboot, withZeroboot, within, zerobootError, type RunOptions, type RunResult, type Runtime } from '../../../test/helpers.js';

const HOST_SECRET = `zb-host-secret-${randomBytes(8).toString('hex')}`;
process.env.ZB_TEST_RUNTIMES_SECRET = HOST_SECRET;

const zb = sharedZeroboot({ templates: { python: { pool: 2 }, node: { pool: 2 }, shell: { pool: 2 } } });

async function run(runtime: Runtime, code: string, options: RunOptions = {}): Promise<RunResult> {
  const result = await zb().run(runtime, code, options);
  record(`${runtime}: ${code}`, result);
  return result;
}

/** One task, written for each runtime. */
type Program = Record<Runtime, string>;

const P = {
  hello: { python: 'print(1 + 1)', node: 'console.log(1 + 1)', shell: 'echo 2' },
  exit3: { python: 'import sys; print("out"); sys.exit(3)', node: 'console.log("out"); process.exit(3)', shell: 'echo out; exit 3' },
  stderr: {
    python: 'import sys; print("to err", file=sys.stderr)',
    node: 'console.error("to err")',
    shell: 'echo "to err" >&2',
  },
  uncaught: { python: 'raise ValueError("boom-42")', node: 'throw new Error("boom-42")', shell: 'set -e; false; echo never' },
  identity: {
    python: 'import os, socket, json; print(json.dumps([os.getcwd(), os.getuid(), os.getgid(), socket.gethostname()]))',
    node: 'const os = require("os"); console.log(JSON.stringify([process.cwd(), process.getuid(), process.getgid(), os.hostname()]))',
    shell: 'printf \'["%s",%s,%s,"%s"]\\n\' "$PWD" "$(id -u)" "$(id -g)" "$(hostname)"',
  },
  env: {
    python: 'import os; print(os.environ.get("GREETING"), os.environ.get("ZB_TEST_RUNTIMES_SECRET"), os.environ["HOME"])',
    node: 'console.log(process.env.GREETING, process.env.ZB_TEST_RUNTIMES_SECRET ?? "None", process.env.HOME)',
    shell: 'echo "$GREETING" "${ZB_TEST_RUNTIMES_SECRET:-None}" "$HOME"',
  },
  stdinHash: {
    python: 'import sys, hashlib; d = sys.stdin.buffer.read(); print(len(d), hashlib.sha256(d).hexdigest())',
    node: 'const d = require("fs").readFileSync(0); console.log(d.length, require("crypto").createHash("sha256").update(d).digest("hex"))',
    shell: 'f=$(mktemp); cat > "$f"; echo "$(wc -c < "$f") $(sha256sum < "$f" | cut -d" " -f1)"',
  },
  files: {
    python: 'print(open("data/in.txt").read().strip(), open("/tmp/abs.txt").read().strip())',
    node: 'const fs = require("fs"); console.log(fs.readFileSync("data/in.txt", "utf8").trim(), fs.readFileSync("/tmp/abs.txt", "utf8").trim())',
    shell: 'echo "$(cat data/in.txt) $(cat /tmp/abs.txt)"',
  },
  stream: {
    python: 'import time; print("first", flush=True); time.sleep(0.3); print("second")',
    node: 'console.log("first"); await new Promise((r) => setTimeout(r, 300)); console.log("second")',
    shell: 'echo first; sleep 0.3; echo second',
  },
  busy: { python: 'print("started", flush=True)\nwhile True: pass', node: 'console.log("started"); for (;;) {}', shell: 'echo started; while :; do :; done' },
  flood: {
    python: 'import sys; sys.stdout.write("x" * 100000); sys.stdout.flush()',
    node: 'process.stdout.write("x".repeat(100000))',
    shell: 'head -c 100000 /dev/zero | tr "\\0" x',
  },
  sleeper: {
    python: 'import subprocess; subprocess.Popen(["sleep", "31.777"]); subprocess.run(["sleep", "30"])',
    node: 'require("child_process").spawn("sleep", ["31.777"]); require("child_process").execSync("sleep 30")',
    shell: 'sleep 31.777 & sleep 30',
  },
} satisfies Record<string, Program>;

describe.each(RUNTIMES)('%s: the same behaviour as every runtime', (runtime) => {
  test('stdout, exit code 0 and the result shape', async () => {
    const r = await run(runtime, P.hello[runtime]);
    expect(r).toMatchObject({ stdout: '2\n', stderr: '', exitCode: 0, signal: null, timedOut: false, truncated: false, outcome: 'exited' });
    expect(r.durationMs).toBeGreaterThan(0);
  });

  test('an exit status of the code is the exit code, with what it printed', async () => {
    expect(await run(runtime, P.exit3[runtime])).toMatchObject({ stdout: 'out\n', exitCode: 3, outcome: 'exited' });
  });

  test('stderr is its own stream', async () => {
    expect(await run(runtime, P.stderr[runtime])).toMatchObject({ stdout: '', stderr: 'to err\n', exitCode: 0 });
  });

  test('an uncaught error exits non-zero, with the error on stderr (shell: set -e)', async () => {
    const r = await run(runtime, P.uncaught[runtime]);
    expect(r.exitCode).toBe(1);
    expect(r.stdout).toBe('');
    if (runtime !== 'shell') expect(r.stderr).toContain('boom-42');
  });

  test('cwd /workspace, uid and gid 1000, hostname sandbox', async () => {
    const r = await run(runtime, P.identity[runtime]);
    expect(JSON.parse(r.stdout)).toEqual(['/workspace', 1000, 1000, 'sandbox']);
  });

  test('env is added to a clean environment; the host environment never leaks in', async () => {
    const r = await run(runtime, P.env[runtime], { env: { GREETING: "it's a test" } });
    expect(r.stdout).toBe("it's a test None /workspace\n");
  });

  test('stdin arrives byte for byte, every byte value, and large', async () => {
    const data = Buffer.concat([Buffer.from(Array.from({ length: 256 }, (_, i) => i)), randomBytes(3 << 20)]);
    const r = await run(runtime, P.stdinHash[runtime], { stdin: data });
    expect(r.stdout).toBe(`${data.length} ${createHash('sha256').update(data).digest('hex')}\n`);
  });

  test('files are written before the code starts, relative to /workspace or absolute', async () => {
    const r = await run(runtime, P.files[runtime], { files: { 'data/in.txt': 'relative\n', '/tmp/abs.txt': new TextEncoder().encode('absolute') } });
    expect(r.stdout).toBe('relative absolute\n');
  });

  test('onStdout gets the first chunk while the code still runs', async () => {
    const chunks: Array<{ text: string; at: number }> = [];
    const r = await run(runtime, P.stream[runtime], { onStdout: (text) => chunks.push({ text, at: performance.now() }) });
    const resolvedAt = performance.now();
    expect(r.stdout).toBe('first\nsecond\n');
    expect(chunks.map((c) => c.text).join('')).toBe(r.stdout);
    expect(chunks[0]!.text).toMatch(/^first\n/);
    expect(resolvedAt - chunks[0]!.at).toBeGreaterThan(200);
  });

  test('timeoutMs kills a busy loop at the deadline, keeping what it printed', async () => {
    const started = performance.now();
    const r = await run(runtime, P.busy[runtime], { timeoutMs: 500 });
    expect(r).toMatchObject({ stdout: 'started\n', exitCode: null, signal: 'SIGKILL', timedOut: true, outcome: 'timed-out' });
    expect(performance.now() - started).toBeLessThan(2000);
  });

  test('abort kills the run and its process tree, and rejects with ABORTED', async () => {
    const controller = new AbortController();
    const pending = zb().run(runtime, P.sleeper[runtime], { signal: controller.signal });
    const find = () => hostProcesses().filter((p) => p.cmdline === 'sleep 31.777' && !p.state.startsWith('Z'));
    expect(await eventually(() => find().length > 0, 5000)).toBe(true);
    controller.abort(new Error('stop'));
    expect((await within(zerobootError(pending), 3000, 'the aborted run')).code).toBe('ABORTED');
    expect(await eventually(() => find().length === 0, 3000)).toBe(true);
  });

  test('output past maxOutputBytes is dropped and truncated is set', async () => {
    await withZeroboot({ templates: { [runtime]: { pool: 1 } }, limits: { maxOutputBytes: 1000 } }, async (small) => {
      const r = await small.run(runtime, P.flood[runtime]);
      record('flood', r);
      expect(r.stdout).toBe('x'.repeat(1000));
      expect(r.truncated).toBe(true);
    });
  });
});

// ---- fork hygiene ----

/** Random values drawn by a program, one JSON array per run. */
const RANDOMS: Program = {
  python: 'import json, random, uuid, secrets; print(json.dumps([random.random(), str(uuid.uuid4()), secrets.token_hex(16), random.getrandbits(64)]))',
  node: 'const c = require("crypto"); console.log(JSON.stringify([Math.random(), Math.random(), c.randomUUID(), c.randomBytes(16).toString("hex"), Array.from(c.getRandomValues(new Uint32Array(4))), c.randomInt(2 ** 47)]))',
  shell: 'echo "[$RANDOM, $RANDOM, $RANDOM, $RANDOM, $RANDOM, $SRANDOM]"',
};

/** A run that leaves everything it can behind; the next run looks for it. */
const LEAVE: Program = {
  python: 'import os, sys, json; json.LEFT = 1; sys.modules["left_behind"] = json; os.environ["LEFT"] = "1"; open("/workspace/left", "w").write("1"); open("/tmp/left", "w").write("1"); print("left")',
  node: 'globalThis.LEFT = 1; require("fs").LEFT = 1; require.cache["/left.js"] = { exports: 1 }; process.env.LEFT = "1"; require("fs").writeFileSync("/workspace/left", "1"); require("fs").writeFileSync("/tmp/left", "1"); console.log("left")',
  shell: 'export LEFT=1; echo 1 > /workspace/left; echo 1 > /tmp/left; echo left',
};
const FIND: Program = {
  python: 'import os, sys, json; print(json.dumps([hasattr(json, "LEFT"), "left_behind" in sys.modules, "LEFT" in os.environ, os.path.exists("/workspace/left"), os.path.exists("/tmp/left")]))',
  node: 'const fs = require("fs"); console.log(JSON.stringify([typeof globalThis.LEFT !== "undefined" || fs.LEFT !== undefined, "/left.js" in require.cache, "LEFT" in process.env, fs.existsSync("/workspace/left"), fs.existsSync("/tmp/left")]))',
  shell: 'printf "[%s, %s, %s, %s, %s]\\n" false false "$([ -n "${LEFT+x}" ] && echo true || echo false)" "$([ -e /workspace/left ] && echo true || echo false)" "$([ -e /tmp/left ] && echo true || echo false)"',
};

describe.each(RUNTIMES)('%s: fork hygiene', (runtime) => {
  test('two sandboxes of one template draw different random numbers (every RNG the runtime has)', async () => {
    // Concurrent, so that both are forked from the template's same state as close together as can be.
    const results = await Promise.all(Array.from({ length: 6 }, () => run(runtime, RANDOMS[runtime])));
    const draws = results.map((r) => {
      expect(r.exitCode, r.stderr).toBe(0);
      return JSON.parse(r.stdout) as unknown[];
    });
    // No value of one run appears in another: each position compared across all runs.
    for (let position = 0; position < draws[0]!.length; position++) {
      const values = draws.map((d) => JSON.stringify(d[position]));
      if (runtime === 'shell' && position < 5) continue; // $RANDOM is 15 bits: compared as a sequence below
      expect(new Set(values).size, `position ${position}: ${values.join(' ')}`).toBe(values.length);
    }
    if (runtime === 'shell') {
      const sequences = draws.map((d) => JSON.stringify(d.slice(0, 5)));
      expect(new Set(sequences).size).toBe(sequences.length);
    }
  });

  test('nothing of one run is visible to the next: globals, module caches, environment, files', async () => {
    expect((await run(runtime, LEAVE[runtime])).stdout).toBe('left\n');
    const r = await run(runtime, FIND[runtime]);
    expect(JSON.parse(r.stdout)).toEqual([false, false, false, false, false]);
  });
});

// ---- runtime specifics ----

describe('node', () => {
  test('top-level await, require of built-ins, CommonJS module objects', async () => {
    const r = await run('node', 'const zlib = require("node:zlib"); const v = await Promise.resolve(zlib.gunzipSync(zlib.gzipSync("round")).toString()); console.log(v, typeof module.exports, __filename, typeof exports)');
    expect(r.stdout).toBe('round object [eval] object\n');
  });

  test('process.exitCode, an unhandled rejection, and a syntax error', async () => {
    expect(await run('node', 'process.exitCode = 5')).toMatchObject({ exitCode: 5 });
    const rejected = await run('node', 'await Promise.reject(new TypeError("nope"))');
    expect(rejected.exitCode).toBe(1);
    expect(rejected.stderr).toMatch(/TypeError: nope/);
    const syntax = await run('node', 'let = = 1');
    expect(syntax.exitCode).toBe(1);
    expect(syntax.stderr).toMatch(/SyntaxError/);
  });

  test('exit handlers run, timers and child processes work, and the pid is the namespace\'s', async () => {
    const r = await run('node', 'process.on("exit", (c) => console.log("exit", c)); setTimeout(() => console.log(process.pid, require("child_process").execFileSync("echo", ["child"]).toString().trim()), 20)');
    expect(r.stdout).toBe('1 child\nexit 0\n');
  });

  test('a custom template preloads node built-ins; a package name is INVALID_ARGUMENT', async () => {
    await withZeroboot({ templates: { js: { runtime: 'node', preload: ['node:zlib'], pool: 1 } } }, async (custom) => {
      const r = await custom.run('js', 'console.log(Object.keys(require.cache).length, typeof require("zlib").gzipSync)');
      record('custom', r);
      expect(r.stdout).toBe('0 function\n');
    });
    const error = await zerobootError(Zeroboot.start({ templates: { js: { runtime: 'node', preload: ['left-pad'] } } }));
    expect(error.code).toBe('INVALID_ARGUMENT');
    expect(error.message).toMatch(/templates\.js\.preload\.0/);
  });
});

describe('shell', () => {
  test('bash, with the host\'s tools read-only: coreutils, grep, sed, awk, python3, node', async () => {
    const r = await run('shell', 'echo "$BASH_VERSION" | cut -c1; printf "b\\na\\n" | sort | tr "\\n" " "; echo abc | grep -o b; echo x | sed s/x/y/; echo 1 2 | awk "{print \\$2}"; python3 -c "print(3)"; node -e "console.log(4)"; touch /usr/zb 2>/dev/null || echo read-only');
    // With memoryMb held by RLIMIT_AS (no memory cgroup, as rootless on cgroup v1), a Node started from the shell has
    // no room for the 1.1 GB of address space V8 reserves; the shell's tools all work.
    const node = zb().enforcement.memory === 'rlimit' ? '' : '4\n';
    expect(r.stdout).toBe(`5\na b b\ny\n2\n3\n${node}read-only\n`);
  });

  test('a script killed by a signal has exitCode null and the signal', async () => {
    expect(await run('shell', 'echo before; kill -SEGV $$')).toMatchObject({ stdout: 'before\n', exitCode: null, signal: 'SIGSEGV', outcome: 'signaled' });
  });

  test('$0 and $LINENO are as with bash -c', async () => {
    expect((await run('shell', 'echo $0\necho $LINENO')).stdout).toBe('bash\n2\n');
  });
});
