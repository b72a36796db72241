// The same few programs in each runtime's own language, for the reliability tests: they run on every
// template, not only python's, so that each kind of fork-server (CPython, Node, the C shell server) is
// killed, closed, aborted and loaded the same way.
import { readdirSync } from 'node:fs';

import { expect } from 'vitest';

import { RUNTIMES, hostProcesses, hostUidFrom, marker, sandboxUidProcesses, type Runtime, type Zeroboot } from '../helpers.js';

export { RUNTIMES, type Runtime };

export interface Programs {
  /** Prints `host-uid N`: the host uid every sandbox of the instance runs as. */
  hostUid: string;
  /** Prints `text` and a newline. */
  echo(text: string): string;
  /** Prints "up" (flushed), then sleeps. */
  upThenSleep(seconds: number): string;
  /** Starts `sleep <arg>` in the background (a marker the host can find). */
  background(arg: string): string;
}

export const PROGRAMS: Record<Runtime, Programs> = {
  python: {
    hostUid: 'print("host-uid", open("/proc/self/uid_map").read().split()[1], flush=True)',
    echo: (text) => `print(${JSON.stringify(text)})`,
    upThenSleep: (seconds) => `import time\nprint("up", flush=True)\ntime.sleep(${seconds})`,
    background: (arg) => `import subprocess\nsubprocess.Popen(["sleep", "${arg}"])`,
  },
  node: {
    hostUid: `console.log('host-uid', require('fs').readFileSync('/proc/self/uid_map', 'utf8').trim().split(/\\s+/)[1]);`,
    echo: (text) => `console.log(${JSON.stringify(text)});`,
    upThenSleep: (seconds) => `console.log('up');\nawait new Promise((resolve) => setTimeout(resolve, ${seconds * 1000}));`,
    background: (arg) => `require('child_process').spawn('sleep', ['${arg}'], { stdio: 'ignore' });`,
  },
  shell: {
    hostUid: 'set -- $(cat /proc/self/uid_map); echo host-uid $2',
    echo: (text) => `echo '${text.replaceAll("'", "'\\''")}'`,
    upThenSleep: (seconds) => `echo up\nsleep ${seconds}`,
    background: (arg) => `sleep ${arg} &`,
  },
};

/** A marker process (helpers.ts) started from `runtime`'s code. */
export function runtimeMarker(runtime: Runtime) {
  const m = marker();
  return { ...m, code: PROGRAMS[runtime].background(m.cmdline.split(' ')[1]!) };
}

/** The host uid of every sandbox of `zb` (one run of `runtime` that prints it). */
export async function hostUidOf(zb: Zeroboot, runtime: Runtime = 'shell'): Promise<number> {
  const r = await zb.run(runtime, PROGRAMS[runtime].hostUid);
  return hostUidFrom(r.stdout);
}

/** Nothing of the instance is left on the host: no process as its sandbox uid, no fork-server alive. */
export function leftovers(hostUid: number, serverPids: number[]): string[] {
  const processes = hostProcesses();
  const sandboxes = sandboxUidProcesses((p) => p.uid === hostUid).map((p) => `sandbox process ${p.pid} (${p.cmdline.slice(0, 60)})`);
  const servers = serverPids.filter((pid) => processes.some((p) => p.pid === pid && !p.state.startsWith('Z'))).map((pid) => `fork-server ${pid}`);
  return [...sandboxes, ...servers];
}

/** Open fds and resident memory (kB) of a process, from /proc. */
export function footprint(pid: number): { fds: number; rssKb: number } {
  const p = hostProcesses().find((q) => q.pid === pid);
  expect(p, `process ${pid} is gone`).toBeDefined();
  return { fds: readdirSync(`/proc/${pid}/fd`).length, rssKb: p!.rssKb };
}
