export { Zeroboot, type Enforcement, type TemplateStats, type ZerobootStats } from './zeroboot.js';
export { ZerobootError, type ZerobootErrorCode, type ZerobootErrorOptions } from './errors.js';
export type { RunOptions, StartOptions, TemplateOptions, Limits } from './options.js';
export type { RunResult, RunOutcome } from './run.js';
export { Sandbox, SandboxFiles, type Change, type FileEntry, type MergeOptions, type MergeResult } from './sandbox.js';
export { shellExitCode, timeoutNote, assertSandbox } from './commands.js';
export {
  runStep,
  describeStep,
  describeStepError,
  isStepAborted,
  resolveCodeToolOptions,
  type StepOptions,
  type StepResult,
  type StepRunner,
  type StepWorkspace,
  type StepBranch,
  type MergePolicy,
  type CodeToolOptions,
  type ResolvedCodeToolOptions,
  type CodeInput,
  type CodeInputSchema,
} from './step.js';
