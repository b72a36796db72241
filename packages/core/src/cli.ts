#!/usr/bin/env node
// The `zeroboot` command: run code in a sandbox, check the machine, run the benchmark.
import { readFileSync } from 'node:fs';
import { constants } from 'node:os';
import { parseArgs } from 'node:util';

import { formatDoctorReport, runDoctor } from './doctor.js';
import { ZerobootError } from './errors.js';
import { RUNTIMES } from './options.js';
import type { RunResult } from './run.js';
import { Zeroboot } from './zeroboot.js';

const USAGE = `Usage: zeroboot <command> [options]

Commands:
  run <runtime> [-c CODE | FILE | -]   Run code in a fresh sandbox; exits with the code's exit status
                                      (128+N when killed by signal N, 124 on timeout). With no CODE or
                                      FILE, or with -, the code is read from stdin. The code's own stdin
                                      is empty.
      -c, --code CODE                 The code to run.
      --timeout-ms N                  Wall-clock limit in milliseconds. Default: 10000.
      -e, --env NAME=VALUE            Set an environment variable in the sandbox (repeatable).
  doctor [--json]                     Check the kernel features sandboxes need, and how to get missing ones.
  bench [--quick] [--out FILE | --no-json]
                                      The side-by-side benchmark: prints a table and writes every raw
                                      number to FILE (default: ./bench-results.json).

Options:
  -h, --help                          Show this help.
  -V, --version                       Show the version.

Runtimes: ${RUNTIMES.join(', ')}
`;

/** A mistake in the command line: exit status 2. */
class UsageError extends Error {}


/** Exit status of a run that timed out, as timeout(1) has it. */
const TIMED_OUT_STATUS = 124;
/** The SDK's default ceiling for one run's timeout; raised when the command line asks for more. */
const DEFAULT_MAX_TIMEOUT_MS = 600_000;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case undefined:
      process.stderr.write(USAGE);
      return 2;
    case '-h':
    case '--help':
    case 'help':
      process.stdout.write(USAGE);
      return 0;
    case '-V':
    case '--version':
      process.stdout.write(`${version()}\n`);
      return 0;
    case 'run':
      return run(rest);
    case 'doctor':
      return doctor(rest);
    case 'bench':
      return bench(rest);
    default:
      throw new UsageError(`unknown command ${JSON.stringify(command)}: expected run, doctor or bench (see zeroboot --help)`);
  }
}

async function run(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      code: { type: 'string', short: 'c' },
      'timeout-ms': { type: 'string' },
      env: { type: 'string', short: 'e', multiple: true },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const [runtime, file, ...extra] = positionals;
  if (runtime === undefined) throw new UsageError('run needs a runtime: zeroboot run python -c CODE');
  if (!(RUNTIMES as readonly string[]).includes(runtime)) throw new UsageError(`unknown runtime ${JSON.stringify(runtime)}: expected one of ${RUNTIMES.join(', ')}`);
  if (extra.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(extra[0])}: run takes one FILE`);
  if (values.code !== undefined && file !== undefined) throw new UsageError(`give the code either with -c or as a FILE, not both (got -c and ${JSON.stringify(file)})`);

  let timeoutMs: number | undefined;
  if (values['timeout-ms'] !== undefined) {
    timeoutMs = Number(values['timeout-ms']);
    if (!/^\d+$/.test(values['timeout-ms']) || !Number.isSafeInteger(timeoutMs) || timeoutMs < 1) {
      throw new UsageError(`--timeout-ms expects a whole number of milliseconds >= 1, got ${JSON.stringify(values['timeout-ms'])}`);
    }
  }
  const env: Record<string, string> = {};
  for (const pair of values.env ?? []) {
    const match = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/s.exec(pair);
    if (!match) throw new UsageError(`--env expects NAME=VALUE with NAME made of letters, digits and _, got ${JSON.stringify(pair)}`);
    env[match[1]!] = match[2]!;
  }
  const code = readCode(values.code, file);

  const zb = await Zeroboot.start({
    // Pool 0: the one sandbox is forked on demand, and none is forked afterwards only to be thrown away.
    templates: { [runtime]: { pool: 0 } },
    ...(timeoutMs !== undefined && timeoutMs > DEFAULT_MAX_TIMEOUT_MS ? { maxLimits: { timeoutMs } } : {}),
  });
  // Ctrl-C or a kill of this process ends the run (and with it the sandbox) first, then us, as a shell
  // expects of a foreground command: with 128 + the signal's number.
  const controller = new AbortController();
  let received: NodeJS.Signals | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    if (received) process.exit(128 + constants.signals[received]); // a second one: stop waiting
    received = signal;
    controller.abort();
  };
  const handled: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  for (const signal of handled) process.on(signal, onSignal);
  let result: RunResult;
  try {
    result = await zb.run(runtime, code, {
      ...(timeoutMs !== undefined ? { timeoutMs } : {}),
      env,
      signal: controller.signal,
      onStdout: (chunk) => process.stdout.write(chunk),
      onStderr: (chunk) => process.stderr.write(chunk),
    });
  } catch (error) {
    if (received && ZerobootError.isInstance(error) && error.code === 'ABORTED') return 128 + constants.signals[received];
    throw error;
  } finally {
    await zb.close();
    for (const signal of handled) process.off(signal, onSignal);
  }
  if (result.truncated) note('the output went past limits.maxOutputBytes; the rest was dropped');
  if (result.timedOut) {
    note(`timed out after ${timeoutMs ?? zb.limits.timeoutMs} ms`);
    return TIMED_OUT_STATUS;
  }
  if (result.signal !== null) {
    const why = { 'out-of-memory': ': out of memory (limits.memoryMb)', 'seccomp-violation': ': a system call the seccomp filter forbids' }[result.outcome as string] ?? '';
    note(`killed by ${result.signal}${why}`);
    return 128 + (constants.signals[result.signal as NodeJS.Signals] ?? 0);
  }
  return result.exitCode ?? 1;
}

function readCode(inline: string | undefined, file: string | undefined): string {
  if (inline !== undefined) return inline;
  if (file === undefined && process.stdin.isTTY) throw new UsageError('no code to run: pass -c CODE, a FILE, or pipe the code on stdin');
  const path = file === undefined || file === '-' ? 0 : file; // fd 0: stdin
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    throw new UsageError(`cannot read ${path === 0 ? 'the code from stdin' : JSON.stringify(path)}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
}

async function doctor(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } } });
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const report = await runDoctor();
  process.stdout.write(values.json ? `${JSON.stringify(report, null, 2)}\n` : formatDoctorReport(report));
  return report.ok ? 0 : 1;
}

async function bench(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { quick: { type: 'boolean' }, out: { type: 'string' }, 'no-json': { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (values.out !== undefined && values['no-json']) throw new UsageError('give either --out FILE or --no-json, not both');
  // Loaded on demand: `run` should not pay for the benchmark's modules.
  const { formatReport, runBench } = await import('./bench/bench.js');
  const outFile = values['no-json'] ? false : values.out;
  const result = await runBench({ quick: values.quick ?? false, ...(outFile === undefined ? {} : { outFile }) });
  process.stdout.write(`${formatReport(result)}\n`);
  return 0;
}

function note(message: string): void {
  process.stderr.write(`zeroboot: ${message}\n`);
}

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

function isUsageError(error: unknown): boolean {
  if (error instanceof UsageError) return true;
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS_');
}

// A reader that goes away (`| head`) is not our failure: stop writing, keep the exit status.
process.stdout.on('error', () => {});

main(process.argv.slice(2)).then(
  (status) => {
    process.exitCode = status;
  },
  (error: unknown) => {
    if (isUsageError(error)) {
      note((error as Error).message);
      process.exitCode = 2;
    } else if (ZerobootError.isInstance(error)) {
      note(`${error.message} (${error.code})`);
      process.exitCode = 1;
    } else {
      note(error instanceof Error ? (error.stack ?? error.message) : String(error));
      process.exitCode = 1;
    }
  },
);
