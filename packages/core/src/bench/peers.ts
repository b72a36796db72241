// The peers zeroboot is compared with, run from this same Node process: a cold `python3 -c` and the same
// interpreter under bubblewrap, and isolated-vm's isolates. Also the facts about the machine that go into the JSON.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, lstatSync, readFileSync } from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';

import { findPython, SYSTEM_PATHS, type PythonInstall } from '../host.js';
import type { IsolatedVmReport } from './isolated-vm-peer.js';
import { nowMs, summarize, type Summary } from './measure.js';

export interface PeerResult {
  name: string;
  command: string[];
  summary: Summary;
  samplesMs: number[];
  failures: number;
  firstError?: string;
  /** Why the peer could not run at all (a missing tool or module); no samples then. */
  unavailable?: string;
}

/** Times `argv` to its exit, `runs` times after `warmup` unrecorded runs; checks that it printed "2". */
export function timeCommand(name: string, argv: string[], runs: number, warmup = 3): PeerResult {
  const [file, ...args] = argv as [string, ...string[]];
  const samplesMs: number[] = [];
  let failures = 0;
  let firstError: string | undefined;
  for (let i = 0; i < warmup + runs; i++) {
    const start = nowMs();
    const result = spawnSync(file, args, { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
    const elapsed = nowMs() - start;
    const ok = result.status === 0 && result.stdout === '2\n';
    if (!ok) {
      failures++;
      firstError ??= result.error ? String(result.error.message) : `exit ${result.status ?? result.signal}: ${(result.stderr || result.stdout || '').trim().slice(0, 300)}`;
    }
    if (i >= warmup && ok) samplesMs.push(elapsed);
  }
  return { name, command: argv, summary: summarize(samplesMs), samplesMs, failures, ...(firstError === undefined ? {} : { firstError }) };
}

/**
 * isolated-vm, `runs` times after `warmup` unrecorded runs: per run a new isolate and context, `code` compiled
 * and run with a console.log that collects its output, the isolate disposed. Timed inside a child node (see
 * isolated-vm-peer.ts), so a crash there cannot end the bench; a missing or unloadable module makes the row
 * `unavailable`.
 */
export function timeIsolatedVm(name: string, code: string, runs: number, warmup = 3): PeerResult {
  const script = fileURLToPath(new URL('./isolated-vm-peer.js', import.meta.url));
  const command = [process.execPath, '--no-node-snapshot', script, String(runs), String(warmup), code];
  const [file, ...args] = command as [string, ...string[]];
  const result = spawnSync(file, args, { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8', timeout: 300_000 });
  let report: IsolatedVmReport | undefined;
  try {
    report = JSON.parse(result.stdout) as IsolatedVmReport;
  } catch {
    // crashed or killed before it printed: reported below
  }
  if (result.status !== 0 || report === undefined) {
    const why = result.error ? result.error.message : `exit ${result.status ?? result.signal}: ${(result.stderr || result.stdout || '').trim().slice(0, 300)}`;
    return { name, command, summary: summarize([]), samplesMs: [], failures: runs, firstError: why };
  }
  if (report.unavailable !== undefined) {
    return { name, command, summary: summarize([]), samplesMs: [], failures: 0, unavailable: report.unavailable };
  }
  return {
    name,
    command,
    summary: summarize(report.samplesMs),
    samplesMs: report.samplesMs,
    failures: report.failures,
    ...(report.firstError === undefined ? {} : { firstError: report.firstError }),
  };
}

/** The bwrap command line for `python -c 'print(1+1)'`: everything unshared, /usr read-only, the interpreter's prefix bound. */
export function bwrapArgv(python: PythonInstall, pythonFlags: string[] = []): string[] {
  return bwrapCommand([python.executable, ...pythonFlags, '-c', 'print(1+1)'], python.extraPaths);
}

/**
 * bwrap around a command: everything unshared, /usr read-only, plus `readOnly` and the command's own file
 * when neither the system paths nor `readOnly` hold it.
 */
export function bwrapCommand(argv: string[], readOnly: string[] = []): string[] {
  const out = ['bwrap', '--unshare-all', '--die-with-parent', '--ro-bind', '/usr', '/usr'];
  // Merged-/usr hosts have /lib -> usr/lib and so on; others have real directories to bind.
  for (const dir of ['/lib', '/lib64', '/bin']) {
    if (!existsSync(dir)) continue;
    const stat = lstatSync(dir);
    if (stat.isSymbolicLink()) out.push('--symlink', `usr${dir}`, dir);
    else out.push('--ro-bind', dir, dir);
  }
  out.push('--proc', '/proc', '--dev', '/dev', '--tmpfs', '/tmp');
  for (const path of readOnly) if (existsSync(path)) out.push('--ro-bind', path, path);
  const [file] = argv as [string];
  if (![...SYSTEM_PATHS, ...readOnly].some((p) => file.startsWith(`${p}/`))) out.push('--ro-bind', file, file);
  return [...out, ...argv];
}

export function hasCommand(command: string): boolean {
  try {
    execFileSync(command, ['--version'], { stdio: 'ignore', timeout: 5000 });
    return true;
  } catch {
    return false;
  }
}

export interface Environment {
  date: string;
  kernel: string;
  kernelVersion: string;
  arch: string;
  cpus: number;
  cpuModel: string;
  memTotalMiB: number;
  node: string;
  python: { executable: string; version: string; command: 'python3' };
  bwrap: string | null;
  cgroup: 'v2' | 'v1/hybrid';
  transparentHugepages: string | null;
  loadAverage: number[];
}

export function environment(python: PythonInstall): Environment {
  let bwrap: string | null = null;
  try {
    bwrap = execFileSync('bwrap', ['--version'], { encoding: 'utf8', timeout: 5000 }).trim();
  } catch {
    // not installed
  }
  let thp: string | null = null;
  try {
    thp = /\[(\w+)\]/.exec(readFileSync('/sys/kernel/mm/transparent_hugepage/enabled', 'utf8'))?.[1] ?? null;
  } catch {
    // no THP
  }
  const cpus = os.cpus();
  return {
    date: new Date().toISOString(),
    kernel: os.release(),
    kernelVersion: os.version(),
    arch: os.arch(),
    cpus: os.availableParallelism(),
    cpuModel: cpus[0]?.model ?? 'unknown',
    memTotalMiB: Math.round(os.totalmem() / 2 ** 20),
    node: process.version,
    python: { executable: python.executable, version: python.version, command: 'python3' },
    bwrap,
    cgroup: existsSync('/sys/fs/cgroup/cgroup.controllers') ? 'v2' : 'v1/hybrid',
    transparentHugepages: thp,
    loadAverage: os.loadavg(),
  };
}

export { findPython };
