// zeroboot quickstart: isolated Python, Node and shell runs from warm pools. Run with `pnpm demo` (Node >= 22 runs .ts directly).
import { Zeroboot, ZerobootError } from '@zeroboot/core';

const ms = (n: number) => `${n.toFixed(3)} ms`;

const startedAt = performance.now();
await using zb = await Zeroboot.start({
  templates: { python: { preload: ['json', 're', 'math'], pool: 8 }, node: { pool: 4 }, shell: { pool: 4 } },
  limits: { timeoutMs: 5_000, memoryMb: 256 },
});
console.log(`started the python, node and shell fork-servers and their pools in ${ms(performance.now() - startedAt)}`);

// 1. One-shot run: a fresh sandbox forked from the warm template, run, collected, discarded.
const first = await zb.run('python', 'print(1 + 1)');
console.log(`\n$ print(1 + 1)\n${first.stdout.trimEnd()}    (exit ${first.exitCode}, ${ms(first.durationMs)})`);

// The same in Node (a CommonJS script with top-level await) and in the shell (bash -c).
const js = await zb.run('node', 'const { setTimeout: wait } = require("node:timers/promises"); await wait(1); console.log(1 + 1)');
console.log(`$ node: console.log(1 + 1)\n${js.stdout.trimEnd()}    (exit ${js.exitCode}, ${ms(js.durationMs)})`);
const sh = await zb.run('shell', 'echo "$(( 1 + 1 )) from $0 in $PWD"');
console.log(`$ shell: echo $(( 1 + 1 ))\n${sh.stdout.trimEnd()}    (exit ${sh.exitCode}, ${ms(sh.durationMs)})`);

// 2. Files, stdin and env go in; stdout, stderr and the exit status come back.
const csv = await zb.run('python', `
import csv, os, sys, json
rows = list(csv.reader(open('data.csv')))
print(json.dumps({'rows': rows, 'stdin': sys.stdin.read(), 'greeting': os.environ['GREETING']}))
sys.exit(3)
`, { files: { 'data.csv': 'a,b\n1,2\n' }, stdin: 'hello from stdin', env: { GREETING: 'hi' } });
console.log(`\n$ files + stdin + env\n${csv.stdout.trimEnd()}    (exit ${csv.exitCode})`);

// 3. What the sandbox cannot do.
const probe = await zb.run('python', `
import os, socket
def attempt(what, fn):
    try:
        fn(); print(f'{what}: ALLOWED')
    except Exception as e:
        print(f'{what}: blocked ({type(e).__name__}: {e})')
attempt('read /etc/shadow', lambda: open('/etc/shadow').read())
attempt('write /usr', lambda: open('/usr/evil', 'w'))
attempt('open a TCP socket', lambda: socket.create_connection(('127.0.0.1', 22), timeout=1))
print('processes visible:', sorted(int(p) for p in os.listdir('/proc') if p.isdigit()))
print('uid:', os.getuid(), ' pid:', os.getpid(), ' hostname:', os.uname().nodename)
`);
console.log(`\n$ isolation probe\n${probe.stdout.trimEnd()}`);

// 4. Streaming output, and a deadline that kills the whole process tree.
const streamed: string[] = [];
const slow = await zb.run('python', 'import time\nfor i in range(3):\n    print("tick", i); time.sleep(0.05)\ntime.sleep(10)', {
  timeoutMs: 400,
  onStdout: (chunk) => streamed.push(chunk.trimEnd()),
});
console.log(`\n$ streaming + timeout\nstreamed ${JSON.stringify(streamed)}; timedOut=${slow.timedOut}, signal=${slow.signal}`);

// 5. Bad input is a ZerobootError with a stable code.
try {
  await zb.run('python', 'print(1)', { timeoutMs: -5 });
} catch (error) {
  if (error instanceof ZerobootError) console.log(`\n$ bad input\n${error.code}: ${error.message}`);
}

// 6. A sandbox keeps its files across runs; a branch is an O(1) copy whose changes merge back only if
//    the step succeeded, the way an agent should try things.
{
  await using workspace = await zb.sandbox();
  await workspace.files.write('data.csv', 'a,b\n1,2\n');
  for (const [step, code] of [
    ['append a row', 'open("data.csv", "a").write("3,4\\n")'],
    ['a failing step', 'open("data.csv", "w").write("garbage"); raise SystemExit(1)'],
  ] as const) {
    const t = performance.now();
    await using trial = await workspace.branch();
    const r = await trial.run('python', code);
    const changes = await trial.diff();
    const merged = r.exitCode === 0 ? await workspace.merge(trial) : undefined;
    console.log(`\n$ step "${step}" in a branch: exit ${r.exitCode}, changed ${JSON.stringify(changes)} -> ${merged ? `merged ${merged.applied.length}` : 'not merged'} (branch, run, diff, merge: ${ms(performance.now() - t)})`);
  }
  const count = await workspace.run('shell', 'wc -l < data.csv');
  console.log(`workspace data.csv: ${JSON.stringify(await workspace.files.read('data.csv', 'utf8'))} (${count.stdout.trim()} lines, read by the shell)`);
}

// 7. How fast: 200 sequential runs.
const times: number[] = [];
for (let i = 0; i < 200; i++) {
  const t = performance.now();
  await zb.run('python', 'print(1 + 1)');
  times.push(performance.now() - t);
  await new Promise((resolve) => setTimeout(resolve, 1)); // an agent loop is never back-to-back
}
times.sort((a, b) => a - b);
console.log(`\n200 isolated runs of print(1 + 1): p50 ${ms(times[99]!)}, p99 ${ms(times[197]!)}`);
console.log('stats:', JSON.stringify(zb.stats()));
