// The isolated-vm peer's own process: `node --no-node-snapshot isolated-vm-peer.js <runs> <warmup> <code>`.
// Each sample is a new isolate, a new context with a console.log that collects lines, `code` compiled and
// run, then the isolate disposed. Prints one JSON line, an `IsolatedVmReport`, and exits 0 even when
// isolated-vm is missing. In-process isolation only: the code shares this process, its memory and its
// syscalls, with no namespace, seccomp or rlimit between them.
//
// A process of its own because isolated-vm asks for --no-node-snapshot from Node 20 on (V8's shared heap
// crashes when isolates start from different snapshots), and a flag is no business of the bench process.
import { createRequire } from 'node:module';

import { nowMs } from './measure.js';

export interface IsolatedVmReport {
  /** Why isolated-vm could not be loaded; no samples then. */
  unavailable?: string;
  samplesMs: number[];
  failures: number;
  firstError?: string;
}

/** The part of isolated-vm's API used here. It is an optional dependency, so its own types may be absent. */
interface IsolatedVm {
  Isolate: new (options: { memoryLimit: number }) => {
    createContextSync(): { global: { setSync(key: string, value: unknown): void } };
    compileScriptSync(code: string): { runSync(context: unknown): unknown };
    dispose(): void;
  };
  Callback: new (fn: (...args: unknown[]) => void) => unknown;
}

const MEMORY_LIMIT_MB = 128;

function runOnce(ivm: IsolatedVm, code: string): string {
  const isolate = new ivm.Isolate({ memoryLimit: MEMORY_LIMIT_MB });
  try {
    const context = isolate.createContextSync();
    let stdout = '';
    // A bare V8 context has no console: give it one whose log appends a line, as node's would print one.
    context.global.setSync('__log', new ivm.Callback((...args: unknown[]) => {
      stdout += `${args.map(String).join(' ')}\n`;
    }));
    isolate.compileScriptSync('globalThis.console = { log: (...args) => __log(...args.map(String)) };').runSync(context);
    isolate.compileScriptSync(code).runSync(context);
    return stdout;
  } finally {
    isolate.dispose();
  }
}

function measure(runs: number, warmup: number, code: string): IsolatedVmReport {
  const require = createRequire(import.meta.url);
  let ivm: IsolatedVm;
  try {
    ivm = require('isolated-vm') as IsolatedVm;
  } catch (error) {
    return { unavailable: String((error as Error).message ?? error).split('\n')[0]!, samplesMs: [], failures: 0 };
  }
  const samplesMs: number[] = [];
  let failures = 0;
  let firstError: string | undefined;
  for (let i = 0; i < warmup + runs; i++) {
    const start = nowMs();
    let error: string | undefined;
    try {
      const stdout = runOnce(ivm, code);
      if (stdout !== '2\n') error = `printed ${JSON.stringify(stdout.slice(0, 200))}`;
    } catch (thrown) {
      error = String((thrown as Error).message ?? thrown);
    }
    const elapsed = nowMs() - start;
    if (error !== undefined) {
      failures++;
      firstError ??= error;
    } else if (i >= warmup) samplesMs.push(elapsed);
  }
  return { samplesMs, failures, ...(firstError === undefined ? {} : { firstError }) };
}

const [runs, warmup, code] = process.argv.slice(2);
process.stdout.write(`${JSON.stringify(measure(Number(runs), Number(warmup), code ?? 'console.log(1+1)'))}\n`);
