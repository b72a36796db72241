import { z } from 'zod';

import { ZerobootError, describe } from './errors.js';

/** The runtimes zeroboot knows how to warm. */
export const RUNTIMES = ['python', 'node', 'shell'] as const;
export type RuntimeKind = (typeof RUNTIMES)[number];

/** Checked per runtime when the template starts (runtimes.ts): Python module names, Node built-ins. */
const moduleName = z.string().min(1).max(200);

const templateSchema = z
  .object({
    /** Which runtime this template warms. Default: the template's name when it names a runtime. */
    runtime: z.enum(RUNTIMES).optional(),
    /**
     * Modules loaded once in the fork-server, so every sandbox starts with them loaded: Python module names
     * ("numpy", "os.path"), or Node.js built-ins ("node:zlib"). None for shell. Default: [].
     */
    preload: z.array(moduleName).max(256).default([]),
    /** How many isolated sandboxes to keep forked, parked and ready. Default: 8 for python, 4 for node and shell. */
    pool: z.number().int().min(0).max(256).optional(),
    /**
     * The interpreter to warm. Default: `python3` on the SDK's PATH; the SDK's own Node (22 or later);
     * /bin/bash, else /bin/sh.
     */
    executable: z.string().min(1).optional(),
    /**
     * Run a tiny program in each parked sandbox before it waits for work, so that the pages a run touches
     * are already copied: about 0.3 ms faster per run, for about 0.4 MiB more private memory per parked
     * sandbox. Default: true.
     */
    prewarm: z.boolean().default(true),
    /** How many runs may be in flight on this template at once; the rest wait in order. Default: 64. */
    concurrency: z.number().int().min(1).max(1024).default(64),
  })
  .strict();

const limitsSchema = z
  .object({
    timeoutMs: z.number().int().min(1).max(24 * 3600_000).default(10_000),
    memoryMb: z.number().int().min(16).max(1 << 20).default(256),
    maxProcesses: z.number().int().min(1).max(1 << 16).default(64),
    maxOutputBytes: z.number().int().min(0).max(1 << 30).default(1 << 20),
    diskMb: z.number().int().min(1).max(1 << 20).default(256),
  })
  .strict();

export const startSchema = z
  .object({
    templates: z
      .record(z.string().regex(/^[a-z][a-z0-9-]{0,31}$/, 'a template name: lowercase letters, digits and dashes, starting with a letter'), templateSchema)
      .refine((t) => Object.keys(t).length >= 1 && Object.keys(t).length <= 8, 'from 1 to 8 templates')
      .optional(),
    limits: limitsSchema.default(limitsSchema.parse({})),
    /** The most a single run may ask for with `RunOptions.timeoutMs`. Default: 10 minutes. */
    maxLimits: z.object({ timeoutMs: z.number().int().min(1).max(24 * 3600_000).default(600_000) }).strict().default({ timeoutMs: 600_000 }),
    network: z.literal('none').default('none'),
  })
  .strict();

export type StartOptions = z.input<typeof startSchema>;
export type ResolvedStartOptions = z.output<typeof startSchema>;
export type TemplateOptions = z.input<typeof templateSchema>;
export type Limits = z.output<typeof limitsSchema>;

const envName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'an environment variable name ([A-Za-z_][A-Za-z0-9_]*)');
const noNul = (what: string) => z.string().refine((s) => !s.includes('\0'), `${what} without NUL characters`);
const bytes = z.union([z.string(), z.instanceof(Uint8Array)]);
/**
 * Whether the kernel takes `path` inside a sandbox: at most 4000 bytes (PATH_MAX is 4096 bytes, with
 * `/workspace/` and the NUL) and no name longer than NAME_MAX (255 bytes). Bytes, not characters: a name
 * of 100 '€' is 300 bytes, which open(2) refuses with ENAMETOOLONG.
 */
export function fitsKernelPath(path: string): boolean {
  return Buffer.byteLength(path) <= 4000 && path.split('/').every((name) => Buffer.byteLength(name) <= 255);
}
const callback = <T>() => z.custom<(chunk: T) => void>((v) => typeof v === 'function', 'a function');

export const runOptionsSchema = z
  .object({
    timeoutMs: z.number().int().min(1).optional(),
    env: z.record(envName, noNul('a value')).optional(),
    stdin: bytes.optional(),
    files: z.record(noNul('a path').pipe(z.string().min(1).refine(fitsKernelPath, 'a path of at most 4000 bytes whose every name is at most 255 bytes')), bytes).optional(),
    onStdout: callback<string>().optional(),
    onStderr: callback<string>().optional(),
    onStdoutBytes: callback<Uint8Array>().optional(),
    onStderrBytes: callback<Uint8Array>().optional(),
    signal: z.instanceof(AbortSignal).optional(),
  })
  .strict();

/** Options of one run. Every field is optional. */
export interface RunOptions {
  /** Wall-clock limit; the whole process tree is killed at the deadline. Default: `limits.timeoutMs`; at most `maxLimits.timeoutMs`. */
  timeoutMs?: number;
  /** Added to the sandbox's clean environment (PATH, HOME=/workspace, LANG=C.UTF-8). The host's environment never leaks in. */
  env?: Record<string, string>;
  /** The code's standard input. Default: empty (/dev/null). */
  stdin?: string | Uint8Array;
  /** Written into /workspace (relative paths) or at the absolute path inside the sandbox before the code starts. */
  files?: Record<string, string | Uint8Array>;
  /** Called with each chunk of standard output, in order, as the code prints (Python flushes at each newline). */
  onStdout?: (chunk: string) => void;
  /** Called with each chunk of standard error, in order. */
  onStderr?: (chunk: string) => void;
  /**
   * Called with each chunk of standard output as the bytes the code wrote, undecoded (binary output, or
   * text in another encoding), in order and up to `limits.maxOutputBytes`. May be given with `onStdout`.
   */
  onStdoutBytes?: (chunk: Uint8Array) => void;
  /** Called with each chunk of standard error as bytes, undecoded, in order. */
  onStderrBytes?: (chunk: Uint8Array) => void;
  /** Aborting kills the run's process tree; the promise rejects with code `ABORTED`. */
  signal?: AbortSignal;
}

/** Parses with zod and turns the first issue into an INVALID_ARGUMENT that names the field. */
export function parseOrThrow<T extends z.ZodType>(schema: T, value: unknown, root: string): z.output<T> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const path = [root, ...issue.path.map(String)].join('.');
  let got: unknown = value;
  for (const key of issue.path) got = got !== null && typeof got === 'object' ? (got as Record<PropertyKey, unknown>)[key as PropertyKey] : undefined;
  const message =
    issue.code === 'unrecognized_keys'
      ? `Unknown option${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `\`${path}.${k}\``).join(', ')}: check the spelling against the documented options.`
      : `Invalid \`${path}\`: ${issue.message} (got ${describe(got)}).`;
  throw new ZerobootError('INVALID_ARGUMENT', message, { cause: result.error });
}
