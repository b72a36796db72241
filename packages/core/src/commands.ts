// What the adapters' command backends share (the AI SDK's SandboxSession in @zeroboot/vercel-ai, the Deep
// Agents backend in @zeroboot/langchain): both run an agent's shell commands in a Sandbox and answer the way a
// shell would, so the exit status, the notes on the output and the check of what they were given live here.
import { constants } from 'node:os';

import { ZerobootError } from './errors.js';
import type { RunResult } from './run.js';
import type { Sandbox } from './sandbox.js';

/** A run's exit status as a shell reports it: the exit code, or 128 + the signal's number when a signal ended it. */
export function shellExitCode(result: Pick<RunResult, 'exitCode' | 'signal'>): number {
  if (result.exitCode !== null) return result.exitCode;
  return 128 + ((result.signal && constants.signals[result.signal as keyof typeof constants.signals]) || constants.signals.SIGKILL);
}

/** A line to append to a command's output when it was killed at its deadline (its output does not show it); '' otherwise. */
export function timeoutNote(result: Pick<RunResult, 'timedOut' | 'durationMs'>): string {
  return result.timedOut ? `\n[timed out after ${Math.round(result.durationMs)} ms: the command was killed]` : '';
}

/** Throws INVALID_ARGUMENT unless `value` looks like a zeroboot Sandbox (structurally: adapters are tested with a fake). */
export function assertSandbox(value: unknown, field = 'sandbox'): asserts value is Sandbox {
  const sandbox = value as Partial<Sandbox> | null | undefined;
  if (typeof sandbox?.run !== 'function' || typeof sandbox.files?.read !== 'function') {
    throw new ZerobootError('INVALID_ARGUMENT', `Expected \`${field}\` to be a zeroboot Sandbox: pass \`await zb.sandbox()\`.`);
  }
}
