// One agent step, the way the adapters (@zeroboot/langchain, @zeroboot/vercel-ai) run a tool call: in a fresh
// sandbox, or in a branch of a workspace whose changes go back only per the merge policy. Everything the two
// adapters share lives here, so they stay thin and cannot drift apart: the options they take, the input schema
// the model fills in, the step itself, and the compact text the model reads back.
import { z } from 'zod';

import { ZerobootError, invalidArgument } from './errors.js';
import { parseOrThrow } from './options.js';
import type { RunResult } from './run.js';
import type { Change, MergeResult, Sandbox } from './sandbox.js';
import type { Zeroboot } from './zeroboot.js';

const MERGE_POLICIES = ['on-success', 'always', 'never'] as const;
/** When a call's file changes go back into the workspace. */
export type MergePolicy = (typeof MERGE_POLICIES)[number];

/** What a step needs of a Zeroboot: structural, so adapters can be tested against a fake. */
export type StepRunner = Pick<Zeroboot, 'run' | 'stats' | 'limits' | 'maxLimits' | 'ownsSandbox'>;

/** What a step needs of a workspace and of its branches. */
export interface StepWorkspace {
  branch(): Promise<StepBranch>;
  merge(branch: StepBranch, options?: { onConflict?: 'fail' }): Promise<MergeResult>;
}
export type StepBranch = Pick<Sandbox, 'run' | 'diff' | 'close'>;

export interface StepOptions {
  runtime: string;
  code: string;
  /** Run in a branch of this sandbox instead of a fresh one. Default: none (nothing is kept). */
  workspace?: StepWorkspace | Sandbox | undefined;
  /** With a workspace: when the branch's changes are merged back. Default: 'on-success' (exit code 0, not timed out). */
  merge?: MergePolicy | undefined;
  /** Wall-clock limit of the run. Default: the instance's `limits.timeoutMs`. */
  timeoutMs?: number | undefined;
  /** Aborting kills the run; the promise rejects with `ABORTED` and nothing is merged. */
  signal?: AbortSignal | undefined;
}

export interface StepResult {
  runtime: string;
  result: RunResult;
  /** What the call changed in its branch (empty without a workspace: nothing is kept). */
  changes: Change[];
  /** Whether a workspace was given (changes can only be kept with one). */
  workspace: boolean;
  /** Whether the changes are now in the workspace. */
  merged: boolean;
  /** Paths another call changed in the workspace since this call branched: nothing of this call was applied. */
  conflicts: { path: string }[];
}

const workspaceSchema = z.custom<StepWorkspace>((v) => typeof (v as StepWorkspace | null)?.branch === 'function' && typeof (v as StepWorkspace).merge === 'function', 'a Sandbox (await zb.sandbox())');

// runStep is public: a malformed step (a workspace that is not a Sandbox, an unknown merge policy) is an
// INVALID_ARGUMENT naming the field, not a TypeError from the middle of a branch and merge.
const stepOptionsSchema = z
  .object({
    runtime: z.string(),
    code: z.string(),
    workspace: workspaceSchema.optional(),
    merge: z.enum(MERGE_POLICIES).optional(),
    timeoutMs: z.number().int().min(1).optional(),
    signal: z.instanceof(AbortSignal).optional(),
  })
  .strict();

/**
 * Runs one step. With a workspace: branch it, run in the branch, diff, merge per policy (conflicts fail the
 * merge as a whole and are reported, not thrown), and close the branch whatever happens. Parallel steps of one
 * workspace each branch from it as it is when they start and merge in completion order.
 */
export async function runStep(zb: StepRunner, options: StepOptions): Promise<StepResult> {
  const { runtime, code, workspace, merge = 'on-success', timeoutMs, signal } = parseOrThrow(stepOptionsSchema, options, 'options');
  // Before the branch: an aborted call must not make one (nor wait in the workspace's queue for it).
  if (signal?.aborted) throw new ZerobootError('ABORTED', 'The step was aborted before it started: nothing ran.', { cause: signal.reason });
  const runOptions = { ...(timeoutMs === undefined ? {} : { timeoutMs }), ...(signal === undefined ? {} : { signal }) };
  if (!workspace) {
    const result = await zb.run(runtime, code, runOptions);
    return { runtime, result, changes: [], workspace: false, merged: false, conflicts: [] };
  }
  const branch = await workspace.branch();
  try {
    const result = await branch.run(runtime, code, runOptions);
    const changes = await branch.diff();
    const succeeded = result.exitCode === 0 && !result.timedOut;
    const wanted = merge === 'always' || (merge === 'on-success' && succeeded);
    if (signal?.aborted) throw new ZerobootError('ABORTED', 'The step was aborted after its run: none of its changes were merged.', { cause: signal.reason });
    if (!wanted || changes.length === 0) return { runtime, result, changes, workspace: true, merged: false, conflicts: [] };
    const { conflicts } = await workspace.merge(branch as Sandbox & StepBranch, { onConflict: 'fail' });
    return { runtime, result, changes, workspace: true, merged: conflicts.length === 0, conflicts };
  } finally {
    await branch.close();
  }
}

const nonEmpty = z.string().min(1);

const toolOptionsSchema = z
  .object({
    zeroboot: z.custom<StepRunner>(
      (v) => typeof (v as StepRunner | null)?.run === 'function' && typeof (v as StepRunner).stats === 'function' && typeof (v as StepRunner).ownsSandbox === 'function',
      'a Zeroboot instance (await Zeroboot.start())',
    ),
    runtimes: z.array(nonEmpty).min(1, 'at least one runtime, e.g. [\'python\']').refine((r) => new Set(r).size === r.length, 'runtimes without duplicates'),
    workspace: workspaceSchema.optional(),
    merge: z.enum(MERGE_POLICIES).default('on-success'),
    name: z.string().regex(/^[a-zA-Z0-9_-]{1,64}$/, 'a tool name of 1 to 64 letters, digits, _ or -').optional(),
    description: nonEmpty.optional(),
    timeoutMs: z.number().int().min(1).optional(),
    maxOutputChars: z.number().int().min(200).default(4000),
  })
  .strict();

/** The options both adapters' code tools take. */
export interface CodeToolOptions {
  /** The instance that runs the calls. */
  zeroboot: Zeroboot | StepRunner;
  /** The runtimes the model may pick from (template names): an enum in the input schema. */
  runtimes: readonly string[];
  /** Run each call in a branch of this sandbox; without it, each call's files are discarded. */
  workspace?: Sandbox | StepWorkspace;
  /** When a call's changes go back into the workspace. Default: 'on-success' (exit 0 and not timed out). */
  merge?: MergePolicy;
  /** The tool's name. Default: 'run_code'. */
  name?: string;
  /** The tool's description for the model. Default: one written from the options (runtimes, workspace, limits). */
  description?: string;
  /** Each call's wall-clock limit. Default: the instance's `limits.timeoutMs`. */
  timeoutMs?: number;
  /** How much of stdout and of stderr the model reads back, each (the head and the tail are kept). Default: 4000. */
  maxOutputChars?: number;
}

export interface ResolvedCodeToolOptions {
  zeroboot: StepRunner;
  runtimes: [string, ...string[]];
  workspace: StepWorkspace | undefined;
  merge: MergePolicy;
  name: string;
  description: string;
  timeoutMs: number | undefined;
  maxOutputChars: number;
  /** The model's input schema: `{ runtime: enum(runtimes), code: string }`, described for the model. */
  inputSchema: CodeInputSchema;
}

export type CodeInputSchema = ReturnType<typeof codeInputSchema>;
export type CodeInput = z.output<CodeInputSchema>;

/** Checks a code tool's options (INVALID_ARGUMENT naming the field) and fills in the defaults. */
export function resolveCodeToolOptions(options: CodeToolOptions, caller: string): ResolvedCodeToolOptions {
  if (options === null || typeof options !== 'object') throw invalidArgument(`${caller} options`, 'an object with `zeroboot` and `runtimes`', options);
  const parsed = parseOrThrow(toolOptionsSchema, options, caller);
  const templates = Object.keys(parsed.zeroboot.stats().templates);
  const unknown = parsed.runtimes.filter((runtime) => !templates.includes(runtime));
  if (unknown.length > 0) {
    throw new ZerobootError('INVALID_ARGUMENT', `Invalid \`${caller}.runtimes\`: ${unknown.map((r) => JSON.stringify(r)).join(', ')} ${unknown.length > 1 ? 'are not templates' : 'is not a template'} of this Zeroboot (it has ${templates.join(', ')}): start it with that template, or leave it out.`);
  }
  // A workspace of another instance would run each call on that instance's templates and limits (or fail
  // there): every call would go wrong, so say so now.
  if (parsed.workspace !== undefined && !parsed.zeroboot.ownsSandbox(parsed.workspace)) {
    throw new ZerobootError('INVALID_ARGUMENT', `Expected \`${caller}.workspace\` to be an open Sandbox of \`${caller}.zeroboot\` (from its zb.sandbox()), got one that is closed or belongs to another Zeroboot instance.`);
  }
  const maxTimeoutMs = parsed.zeroboot.maxLimits.timeoutMs;
  if (parsed.timeoutMs !== undefined && parsed.timeoutMs > maxTimeoutMs) {
    throw invalidArgument(`${caller}.timeoutMs`, `at most this Zeroboot's maxLimits.timeoutMs (${maxTimeoutMs})`, parsed.timeoutMs);
  }
  const runtimes = parsed.runtimes as [string, ...string[]];
  return {
    zeroboot: parsed.zeroboot,
    runtimes,
    workspace: parsed.workspace,
    merge: parsed.merge,
    name: parsed.name ?? 'run_code',
    description: parsed.description ?? toolDescription(runtimes, parsed.workspace !== undefined, parsed.merge),
    timeoutMs: parsed.timeoutMs,
    maxOutputChars: parsed.maxOutputChars,
    inputSchema: codeInputSchema(runtimes, parsed.timeoutMs ?? parsed.zeroboot.limits.timeoutMs, parsed.zeroboot.limits),
  };
}

function codeInputSchema(runtimes: [string, ...string[]], timeoutMs: number, limits: { memoryMb: number; diskMb: number }) {
  return z.object({
    runtime: z.enum(runtimes).describe(`Which interpreter runs \`code\`: ${runtimes.map(runtimeLine).join('; ')}.`),
    code: z
      .string()
      .describe(
        `The complete program (not a file name), run from the start in a fresh sandbox with cwd /workspace. ` +
          `No network. Limits: ${duration(timeoutMs)} wall clock, ${limits.memoryMb} MB memory, ${limits.diskMb} MB of files; ` +
          `print what you need to see: stdout and stderr come back (long output is cut in the middle).`,
      ),
  });
}

// What the model is told of each runtime: only what holds on every host. The sandbox sees the host's system
// directories read-only, so which Python packages and command-line tools there are depends on the host.
const RUNTIME_LINES: Record<string, string> = {
  python: "'python' = Python 3 (run as a script; only the packages already installed can be imported, nothing can be installed)",
  node: "'node' = Node.js (a CommonJS script, top-level await allowed, require('node:…') built-ins only)",
  shell: "'shell' = a POSIX shell, bash where the system has it (`sh -c`; the system's command-line tools, read-only outside /workspace and /tmp)",
};

function runtimeLine(runtime: string): string {
  return RUNTIME_LINES[runtime] ?? `'${runtime}' = a custom runtime`;
}

function toolDescription(runtimes: readonly string[], workspace: boolean, merge: MergePolicy): string {
  const keep = !workspace
    ? 'Files written are discarded after the call: print results instead.'
    : merge === 'never'
      ? 'The call sees the workspace files in /workspace, but its changes are never kept.'
      : merge === 'always'
        ? 'The call sees the workspace files in /workspace; its file changes are kept, even when it fails.'
        : 'The call sees the workspace files in /workspace; its file changes are kept only if it exits 0 (a failing call leaves the workspace as it was).';
  return `Run a program (${runtimes.join(', ')}) in an isolated Linux sandbox without network access and get its stdout, stderr and exit code. ${keep}`;
}

/** The compact text the model reads back for a step. */
export function describeStep(step: StepResult, maxOutputChars = 4000): string {
  const { result } = step;
  const status = result.timedOut
    ? `timed out after ${Math.round(result.durationMs)} ms and was killed`
    : result.exitCode !== null
      ? `exit code ${result.exitCode}`
      : `killed by ${result.signal ?? 'a signal'}${result.outcome === 'out-of-memory' ? ' (out of memory)' : result.outcome === 'seccomp-violation' ? ' (a forbidden system call)' : ''}`;
  const lines = [`${step.runtime}: ${status}`];
  for (const [name, text] of [['stdout', result.stdout], ['stderr', result.stderr]] as const) {
    if (text !== '') lines.push(`${name}:`, cut(text.replace(/\n$/, ''), maxOutputChars));
  }
  if (result.truncated) lines.push('(output past the sandbox limit was dropped)');
  if (result.stdout === '' && result.stderr === '') lines.push('(no output)');
  if (!step.workspace) return lines.join('\n');
  lines.push(`files changed: ${step.changes.length > 0 ? firstOf(step.changes.map((c) => `${c.path} (${c.kind})`)) : 'none'}`);
  if (step.conflicts.length > 0) {
    lines.push(`NOT APPLIED: another call changed ${firstOf(step.conflicts.map((c) => c.path))} in the workspace while this one ran, so none of this call's changes were kept. Read the current files and try again.`);
  } else if (step.changes.length > 0) {
    lines.push(step.merged ? 'These changes are now in the workspace.' : "These changes were discarded: the workspace is as it was before this call.");
  }
  return lines.join('\n');
}

/** At most `max` characters: the head and the tail, with a marker saying how much was cut between them. */
function cut(text: string, max: number): string {
  if (text.length <= max) return text;
  let head = Math.ceil(max * 0.6);
  let tailStart = text.length - (max - head);
  // Never between the two halves of a surrogate pair (an emoji, say): a lone half is not valid UTF-16,
  // and becomes U+FFFD or a JSON error on its way to the model.
  if (isHighSurrogate(text.charCodeAt(head - 1))) head--;
  if (isLowSurrogate(text.charCodeAt(tailStart))) tailStart++;
  return `${text.slice(0, head)}\n[… ${tailStart - head} characters cut …]\n${text.slice(tailStart)}`;
}

const isHighSurrogate = (unit: number) => unit >= 0xd800 && unit <= 0xdbff;
const isLowSurrogate = (unit: number) => unit >= 0xdc00 && unit <= 0xdfff;

/** The first `max` items, then how many more there are: a list the model reads stays short. */
function firstOf(items: string[], max = 50): string {
  const shown = items.slice(0, max);
  if (items.length > max) shown.push(`… and ${items.length - max} more`);
  return shown.join(', ');
}

/** A duration for the model: milliseconds below a second (a 300 ms limit is not "0 s"), else seconds. */
function duration(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${Number((ms / 1000).toFixed(1))} s`;
}

/**
 * What the model reads when a step threw instead of giving a result (ABORTED aside: the adapters pass an abort
 * on, as their frameworks expect). The error's own message is for the application: it can name host paths and
 * options the model has no use for. The text says what happened and whether retrying makes sense.
 */
export function describeStepError(error: unknown, tool = 'This tool'): string {
  switch (ZerobootError.isInstance(error) ? error.code : undefined) {
    case 'SANDBOX_CLOSED':
      return `${tool} is no longer available: the application closed its sandbox, so nothing ran. Retrying will not help; go on without it.`;
    case 'FORKSERVER_DIED':
      return `The sandbox service restarted while this call ran (not because of your code), so the call did not complete. Retrying the same call should work.`;
    case 'DISK_QUOTA_EXCEEDED':
      return `The call's files did not fit in the sandbox's disk limit, so none of its changes were kept. Write less (or delete files first) and try again.`;
    case 'ABORTED':
      return 'The call was cancelled before it finished.';
    case 'INVALID_ARGUMENT':
    case 'UNKNOWN_RUNTIME':
      return `${tool} cannot run code as the application set it up (not because of your code). Retrying will not help; go on without it.`;
    default:
      return `${tool} failed on the host (not because of your code), so the call did not complete. You may retry once; if it fails again, go on without it.`;
  }
}

/** Whether a step's error is its abort (or came with it): adapters pass those on instead of telling the model. */
export function isStepAborted(error: unknown, signal: AbortSignal | undefined): boolean {
  return (ZerobootError.isInstance(error) && error.code === 'ABORTED') || signal?.aborted === true;
}
