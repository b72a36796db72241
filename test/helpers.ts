// Shared fixtures for the test suite: a Zeroboot that is always closed, runs that are printed when the test
// that made them fails, and host-side views of processes (what is left behind, from outside the sandbox).
import { readdirSync, readFileSync } from 'node:fs';
import { inspect } from 'node:util';

import { Zeroboot, ZerobootError, type RunOptions, type RunResult, type StartOptions } from '@zeroboot/core';
import { afterAll, afterEach, beforeAll, beforeEach, expect, inject } from 'vitest';

export { Zeroboot, ZerobootError, type RunOptions, type RunResult, type StartOptions };

/** Everything a test ran, printed if it fails: the result explains the failure far better than the assertion. */
const evidence: Array<{ label: string; value: unknown }> = [];

beforeEach((context) => {
  evidence.length = 0;
  context.onTestFailed(() => {
    for (const { label, value } of evidence) {
      console.error(`--- ${label}\n${inspect(value, { depth: 6, maxStringLength: 4000, breakLength: 120 })}`);
    }
  });
});

export function record(label: string, value: unknown): void {
  evidence.push({ label, value });
}

declare module 'vitest' {
  export interface ProvidedContext {
    attackRuntime: Runtime;
  }
}

/**
 * The suite runs twice in CI (.ci/run): as root, and rootless, as an unprivileged user. Rootless, every
 * sandbox runs as that user's own uid on the host, limits are rlimits unless a cgroup v2 subtree is
 * delegated, and the sandbox keeps the user's supplementary groups (see docs/security.md, "Rootless mode").
 */
export const ROOTLESS = process.getuid?.() !== 0;

/** Where the SDK keeps its instances' state directories (host.ts stateParent), as root or rootless. */
export const STATE_PARENT = !ROOTLESS
  ? '/run/zeroboot'
  : process.env.XDG_RUNTIME_DIR?.startsWith('/')
    ? `${process.env.XDG_RUNTIME_DIR}/zeroboot`
    : `${process.env.TMPDIR ?? '/tmp'}/zeroboot-${process.getuid!()}`;

/** Where the SDK keeps its instances' layer stores (layer-store.ts layerStoreParent), as root or rootless. */
export const LAYER_PARENT = ROOTLESS ? `/var/tmp/zeroboot-${process.getuid!()}` : '/var/tmp/zeroboot';

/**
 * The supplementary groups code in a sandbox has: none as root (setgroups(0) drops them); rootless, the
 * SDK user's, which no process of its user namespaces may drop (setgroups is denied there so that the
 * user's own gid could be mapped): that gid is the sandbox's 1000, any other is unmapped (65534). Sorted.
 */
export function sandboxGroups(): number[] {
  if (!ROOTLESS) return [];
  return [...new Set(process.getgroups!().map((gid) => (gid === process.getgid!() ? 1000 : 65534)))].sort((a, b) => a - b);
}

export const RUNTIMES = ['python', 'node', 'shell'] as const;
export type Runtime = (typeof RUNTIMES)[number];

/**
 * The attack suite (test/security) is one list of attacks written as Python programs, run from each runtime's
 * sandbox (vitest.config.ts runs the files once per runtime). From node and shell the program replaces the
 * runtime's own process (execve, which seccomp allows), so it starts with exactly what that runtime's process
 * had: its fds, environment, credentials, namespaces, seccomp filter, cgroup and rlimits. Runtime-specific
 * attacks that need no Python live in test/security/runtimes.test.ts.
 */
export const ATTACK_RUNTIME: Runtime = inject('attackRuntime') ?? 'python';

/** A Python program as code for `runtime` (see ATTACK_RUNTIME). */
export function attackCode(runtime: Runtime, python: string): string {
  switch (runtime) {
    case 'python':
      return python;
    case 'node':
      // process.execve is experimental in Node 24: drop its warning so stderr stays the program's own.
      return `process.removeAllListeners('warning'); process.execve('/usr/bin/python3', ['python3', '-c', ${JSON.stringify(python)}], process.env);`;
    case 'shell':
      return `exec /usr/bin/python3 -c '${python.replaceAll("'", "'\\''")}'`;
  }
}

/** In the attack suite: the templates with python's settings moved to the attack runtime (which has no preloads). */
function forAttackRuntime(options: StartOptions): StartOptions {
  const python = options.templates?.python;
  if (ATTACK_RUNTIME === 'python' || python === undefined || Object.keys(options.templates!).length !== 1) return options;
  const { preload: _preload, executable: _executable, ...rest } = python;
  return { ...options, templates: { [ATTACK_RUNTIME]: rest } };
}

/** A view of zb whose 'python' runs go to the attack runtime's template as attackCode, once forAttackRuntime retargeted it. */
function attacking(zb: Zeroboot, retargeted: boolean): Zeroboot {
  if (!retargeted) return zb;
  return new Proxy(zb, {
    get(target, property) {
      if (property === 'run') {
        return (runtime: string, code: string, opts?: RunOptions) =>
          runtime === 'python' ? target.run(ATTACK_RUNTIME, attackCode(ATTACK_RUNTIME, code), opts) : target.run(runtime, code, opts);
      }
      const value: unknown = Reflect.get(target, property, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

/** Starts a Zeroboot for the body only, and closes it however the body ends. */
export async function withZeroboot<T>(options: StartOptions, body: (zb: Zeroboot) => Promise<T>): Promise<T> {
  const started = forAttackRuntime(options);
  const zb = await Zeroboot.start(started);
  try {
    return await body(attacking(zb, started !== options));
  } finally {
    await zb.close();
  }
}

/** One Zeroboot for every test of the file (starting one costs a fork-server and a pool): closed after the file. */
export function sharedZeroboot(options: StartOptions = {}): () => Zeroboot {
  let zb: Zeroboot | undefined;
  beforeAll(async () => {
    const started = forAttackRuntime(options);
    zb = attacking(await Zeroboot.start(started), started !== options);
  }, 30_000);
  afterAll(async () => {
    await zb?.close();
  });
  return () => {
    if (!zb) throw new Error('sharedZeroboot: not started (beforeAll failed?)');
    return zb;
  };
}

/** Strips the common indentation, so Python can be written indented inside template literals. */
export function py(code: string): string {
  const lines = code.replace(/^\n/, '').replace(/\n\s*$/, '\n').split('\n');
  const indents = lines.filter((l) => l.trim() !== '').map((l) => /^ */.exec(l)![0].length);
  const cut = indents.length > 0 ? Math.min(...indents) : 0;
  return lines.map((l) => l.slice(cut)).join('\n');
}

/** A python run whose result is kept as evidence for the failure report. */
export async function run(zb: Zeroboot, code: string, options: RunOptions = {}): Promise<RunResult> {
  const started = performance.now();
  try {
    const result = await zb.run('python', code, options);
    record(`run (${Math.round(performance.now() - started)} ms)\n${code}`, result);
    return result;
  } catch (error) {
    record(`run threw after ${Math.round(performance.now() - started)} ms\n${code}`, error);
    throw error;
  }
}

/** Runs code that prints one JSON document as its last line of stdout, expects exit 0 and returns the document. */
export async function runJson<T = any>(zb: Zeroboot, code: string, options: RunOptions = {}): Promise<T> {
  const result = await run(zb, code, options);
  expect(result.exitCode, `the run failed:\n${result.stderr}`).toBe(0);
  const last = result.stdout.trimEnd().split('\n').at(-1) ?? '';
  return JSON.parse(last) as T;
}

/** The rejection of a promise that must reject with a ZerobootError; fails the test if it resolves. */
export async function zerobootError(promise: Promise<unknown>): Promise<ZerobootError> {
  let outcome: unknown;
  try {
    outcome = await promise;
  } catch (error) {
    record('rejected with', error);
    expect(ZerobootError.isInstance(error), `not a ZerobootError: ${inspect(error)}`).toBe(true);
    return error as ZerobootError;
  }
  record('resolved with', outcome);
  throw new Error(`expected a ZerobootError, the promise resolved with ${inspect(outcome, { depth: 4 })}`);
}

/** The promise's value, or a clear failure if it takes longer than `ms` (a hang must fail the test, not time it out). */
export async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: still pending after ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Polls `probe` until it returns true or the deadline passes; returns the last answer. */
export async function eventually(probe: () => boolean, timeoutMs: number, everyMs = 50): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (probe()) return true;
    if (performance.now() > deadline) return false;
    await sleep(everyMs);
  }
}

export interface HostProcess {
  pid: number;
  ppid: number;
  /** Real uid, as the host sees it. */
  uid: number;
  state: string;
  name: string;
  cmdline: string;
  /** Resident memory, kB (0 for kernel threads and zombies). */
  rssKb: number;
  /** In a pid namespace below the host's (NSpid lists more than one pid): a sandbox's, or a container's. */
  nestedPid: boolean;
}

/** Every process on the host, read from /proc (live ones; a process that exits mid-scan is skipped). */
export function hostProcesses(): HostProcess[] {
  const out: HostProcess[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const status = readFileSync(`/proc/${entry}/status`, 'utf8');
      const field = (name: string) => new RegExp(`^${name}:\\s*(.*)$`, 'm').exec(status)?.[1] ?? '';
      const cmdline = readFileSync(`/proc/${entry}/cmdline`).toString('utf8').replaceAll('\0', ' ').trim();
      out.push({
        pid: Number(entry),
        ppid: Number(field('PPid')),
        uid: Number(field('Uid').split(/\s+/)[0]),
        state: field('State'),
        name: field('Name'),
        cmdline,
        rssKb: Number.parseInt(field('VmRSS'), 10) || 0,
        nestedPid: field('NSpid').split(/\s+/).length > 1,
      });
    } catch {
      // gone between readdir and read
    }
  }
  return out;
}

/** The lowest host uid a sandbox can have as root (uid_base starts at 1_000_000): nothing else on the host runs there. */
export const SANDBOX_UID_FLOOR = 1_000_000;

/**
 * A sandbox's process, seen from the host. As root: one running as a sandbox uid. Rootless, sandboxes run
 * as the test's own uid, as the test runner and the fork-servers do; a sandbox's process is the one in a
 * pid namespace of its own.
 */
export function isSandboxProcess(p: HostProcess): boolean {
  return ROOTLESS ? p.uid === process.getuid!() && p.nestedPid : p.uid >= SANDBOX_UID_FLOOR;
}

/** Processes of sandboxes (isSandboxProcess), except zombies (already dead, only waiting to be reaped). */
export function sandboxUidProcesses(filter: (p: HostProcess) => boolean = () => true): HostProcess[] {
  return hostProcesses().filter((p) => isSandboxProcess(p) && !p.state.startsWith('Z') && filter(p));
}

/** Whether a pid is alive (not reaped; zombies count as dead). */
export function alive(pid: number): boolean {
  try {
    return !/^State:\s*Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return false;
  }
}

/** The pids of every descendant of `root` (not including it). */
export function descendants(root: number, processes = hostProcesses()): HostProcess[] {
  const found: HostProcess[] = [];
  const frontier = [root];
  while (frontier.length > 0) {
    const parent = frontier.pop()!;
    for (const p of processes) {
      if (p.ppid === parent) {
        found.push(p);
        frontier.push(p.pid);
      }
    }
  }
  return found;
}

/** Python that prints the host uid this sandbox runs as (the second column of its uid_map). */
export const PRINT_HOST_UID = `print("host-uid", open("/proc/self/uid_map").read().split()[1], flush=True)`;

export function hostUidFrom(stdout: string): number {
  const m = /host-uid (\d+)/.exec(stdout);
  if (!m) throw new Error(`no host-uid line in ${JSON.stringify(stdout.slice(0, 500))}`);
  // Rootless, uid_map names the fork-server's namespace's uid 0, which is the SDK's user on the host.
  if (ROOTLESS && m[1] === '0') return process.getuid!();
  return Number(m[1]);
}

/**
 * A process a sandbox starts so the host can find it: `sleep 30.NNNNNN`, unique by its fraction and gone by
 * itself within 30 s even if a test fails to clean up. Its parent on the host is the sandbox's pid 1.
 */
export interface Marker {
  /** The command line to look for in /proc. */
  cmdline: string;
  /** Python that starts the marker in the background. */
  code: string;
  /** The live marker processes (0 or 1). */
  find(): HostProcess[];
  gone(): boolean;
}

const markers: Marker[] = [];

export function marker(): Marker {
  const arg = `30.${String(Math.floor(Math.random() * 1e6)).padStart(6, '0')}`;
  const cmdline = `sleep ${arg}`;
  const m: Marker = {
    cmdline,
    // Popen returns once the child has begun its exec, before the kernel has filled in its new command
    // line (/proc/<pid>/cmdline reads empty meanwhile): wait for it, so the host finds the marker at once.
    code: `import subprocess; _marker = subprocess.Popen(["sleep", "${arg}"]); next(c for c in iter(lambda: open("/proc/%d/cmdline" % _marker.pid, "rb").read(), None) if c)`,
    find: () => hostProcesses().filter((p) => p.cmdline === cmdline && !p.state.startsWith('Z')),
    gone: () => m.find().length === 0,
  };
  markers.push(m);
  return m;
}

// A failing test may leave its sandbox behind: kill what it started (the marker and its sandbox), so that
// one failure does not leak into the next test, and say so.
afterEach(() => {
  for (const m of markers.splice(0)) {
    for (const p of m.find()) {
      const parent = hostProcesses().find((q) => q.pid === p.ppid);
      console.error(`leftover after the test: ${m.cmdline} (pid ${p.pid}, uid ${p.uid}), parent ${parent?.pid} ${parent?.cmdline.slice(0, 80)}`);
      for (const pid of [p.pid, parent && isSandboxProcess(parent) ? parent.pid : 0]) {
        try {
          if (pid) process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }
  }
});

/** SIGKILL to each process (gone ones are skipped): what a test left behind must not leak into the next. */
export function killAll(processes: ReadonlyArray<{ pid: number }>): void {
  for (const p of processes) {
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
}
