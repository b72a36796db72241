import { basename, join } from 'node:path';

import { usernsLauncherPath } from '@zeroboot/native';

import { ZerobootError, invalidArgument } from './errors.js';
import { ForkServer, type ReadySandbox } from './fork-server.js';
import { createStateDir, isRootless, type StateDir } from './host.js';
import { LayerStore, layerStoreParent } from './layer-store.js';
import { encodeRequest, Feature, type RequestParts } from './native-protocol.js';
import { Limiter } from './limiter.js';
import { native } from './native.js';
import { parseOrThrow, RUNTIMES, runOptionsSchema, startSchema, type Limits, type ResolvedStartOptions, type RunOptions, type RuntimeKind, type StartOptions } from './options.js';
import { runInSandbox, type LayeredRun, type RunResult, type SandboxRunResult } from './run.js';
import { availableRuntimes, DEFAULT_POOL, launchFor, type Setting } from './runtimes.js';
import { Sandbox, type SandboxHost } from './sandbox.js';
import { rootlessBlocker } from './user-namespaces.js';

export interface TemplateStats {
  /** Sandboxes forked, isolated and parked, waiting for a run. */
  ready: number;
  /** Sandboxes this template's fork-server has handed over since start. */
  forks: number;
  /** From asking the fork-server for a sandbox to having it ready (recent forks). */
  p50ForkMs: number;
  p99ForkMs: number;
}

/** How this instance's sandboxes are isolated and limited, as its fork-servers report it (HELLO). */
export interface Enforcement {
  /**
   * `'root'`: the SDK runs as root and every sandbox of this instance runs as a host uid of its own
   * (1 000 000 and up). `'rootless'`: the SDK runs as an unprivileged user, and its sandboxes run as that
   * same user on the host (see docs/security.md, "Rootless mode").
   */
  mode: 'root' | 'rootless';
  /** The host uid of the sandboxes' uid 1000. */
  hostUid: number;
  /**
   * How `memoryMb` is held. `'cgroup-v2'`, `'cgroup-v1'`: per sandbox, all its processes and tmpfs pages
   * together; past it the sandbox is killed (`outcome: 'out-of-memory'`). `'rlimit'`: `RLIMIT_AS` per
   * process, counted from what the sandbox had mapped when it was forked; past it allocations fail inside
   * the sandbox (Python's `MemoryError`), and several processes may together use more.
   */
  memory: 'cgroup-v2' | 'cgroup-v1' | 'rlimit';
  /**
   * How `maxProcesses` is held: the sandbox's cgroup (`pids.max`) and `RLIMIT_NPROC`, or `RLIMIT_NPROC`
   * alone (`'rlimit'`), which also counts per sandbox since each has its own user namespace (Linux 5.14+).
   */
  processes: 'cgroup-v2' | 'cgroup-v1' | 'rlimit';
}

export interface ZerobootStats {
  templates: Record<string, TemplateStats>;
  /** Runs in flight. */
  sandboxes: number;
  /** Which limits are enforced how. */
  enforcement: Enforcement;
}

interface Template {
  name: string;
  runtime: RuntimeKind;
  server: ForkServer;
  queue: Limiter;
}

/**
 * As root, each instance gets its own host uid for all its sandboxes (a Sandbox's files pass from one pooled
 * sandbox to the next, of any template: see userns.c), derived from the pid and a counter. Two SDK
 * processes whose pids agree modulo 1024 can share one; sandboxes are isolated from each other by their
 * namespaces, not their uid; what they would share is the kernel's per-uid accounting (pipe buffers,
 * epoll watches; RLIMIT_NPROC is per user namespace since Linux 5.14).
 */
let instanceCounter = 0;

/**
 * The zeroboot SDK: warm templates, isolated runs in well under a millisecond.
 *
 * ```ts
 * await using zb = await Zeroboot.start();
 * const r = await zb.run('python', 'print(1 + 1)'); // r.stdout === '2\n'
 * ```
 */
export class Zeroboot {
  readonly #options: ResolvedStartOptions;
  readonly #templates = new Map<string, Template>();
  readonly #state: StateDir;
  readonly #sandboxes = new Set<Sandbox>();
  readonly #store: LayerStore;
  readonly #hostUid: number;
  #host: SandboxHost | undefined;
  #inFlight = 0;
  #closed = false;
  #closing: Promise<void> | undefined;

  private constructor(options: ResolvedStartOptions, state: StateDir, hostUid: number) {
    this.#options = options;
    this.#state = state;
    this.#hostUid = hostUid;
    const parent = layerStoreParent();
    this.#store = new LayerStore(parent ? join(parent, basename(state.path)) : join(state.path, 'layers'), hostUid);
  }

  /** Starts a fork-server per template and fills its pool. Default templates: every runtime found on the machine. */
  static async start(options: StartOptions = {}): Promise<Zeroboot> {
    const resolved = parseOrThrow(startSchema, options, 'options');
    native(); // UNSUPPORTED_PLATFORM / a missing build, before anything is created
    const rootless = isRootless();
    if (rootless) {
      const blocked = rootlessBlocker();
      if (blocked) throw blocked;
    }
    const templates: NonNullable<ResolvedStartOptions['templates']> =
      resolved.templates ?? Object.fromEntries(availableRuntimes().map((r) => [r, { preload: [], prewarm: true, concurrency: 64 }]));
    const state = createStateDir();
    const instance = (process.pid % 1024) * 64 + (instanceCounter++ % 64);
    // Rootless, the kernel lets us map only our own uid: every sandbox is the SDK's user on the host.
    const hostUid = rootless ? process.getuid!() : 1_000_000 + instance;
    let zb: Zeroboot;
    try {
      zb = new Zeroboot(resolved, state, hostUid);
    } catch (error) {
      state.remove();
      throw error;
    }
    try {
      for (const [name, spec] of Object.entries(templates)) {
        const runtime: RuntimeKind | undefined = spec.runtime ?? RUNTIMES.find((r) => r === name);
        if (!runtime) throw invalidArgument(`options.templates.${name}.runtime`, `one of ${RUNTIMES.map((r) => `'${r}'`).join(', ')} (the template's name is not a runtime)`, spec.runtime);
        const limits = resolved.limits;
        const launch = launchFor(runtime, spec, [
          ['state_dir', state.path],
          ['etc_dir', state.etcDir],
          ['layer_dir', zb.#store.root],
          ['template', name],
          ...(rootless ? [['rootless', 1] satisfies Setting] : [['host_uid', hostUid] satisfies Setting]),
          ['memory_mb', limits.memoryMb],
          ['max_processes', limits.maxProcesses],
          ['disk_mb', limits.diskMb],
          ['sdk_pid', process.pid],
          ['control_fd', 3],
        ], `options.templates.${name}`);
        // Rootless, through the launcher that enters the server's own user namespace (userns.c).
        const command = rootless ? { command: usernsLauncherPath, args: [launch.command, launch.argv0 ?? launch.command, ...launch.args], argv0: launch.argv0 } : launch;
        const server = new ForkServer({ template: name, ...command, pool: spec.pool ?? DEFAULT_POOL[runtime] });
        zb.#templates.set(name, { name, runtime, server, queue: new Limiter(spec.concurrency) });
      }
      await Promise.all([...zb.#templates.values()].map((t) => t.server.start()));
    } catch (error) {
      await zb.close();
      throw error;
    }
    return zb;
  }

  /** The defaults every run gets. */
  get limits(): Readonly<Limits> {
    return this.#options.limits;
  }

  /** The most a single run may ask for (`RunOptions.timeoutMs` up to `maxLimits.timeoutMs`). */
  get maxLimits(): Readonly<{ timeoutMs: number }> {
    return this.#options.maxLimits;
  }

  /** @internal Whether `sandbox` is an open Sandbox of this instance: the code tools check their workspace with it. */
  ownsSandbox(sandbox: unknown): boolean {
    return this.#sandboxes.has(sandbox as Sandbox);
  }

  /** Runs `code` in a fresh sandbox forked from the template's warm fork-server, then discards the sandbox. */
  async run(runtime: string, code: string, options: RunOptions = {}): Promise<RunResult> {
    if (typeof code !== 'string') throw invalidArgument('code', 'a string of source code', code);
    return this.#execute(runtime, { code }, options);
  }

  /**
   * A sandbox whose filesystem (/workspace, /tmp) persists across its runs, of any runtime; it can be
   * branched, diffed and merged. Close it when done (or `await using`).
   */
  async sandbox(): Promise<Sandbox> {
    if (this.#closed) throw closedError();
    const store = this.#store;
    const top = await store.create();
    const sandbox = new Sandbox(this.#sandboxHost(), [top, store.base], undefined);
    this.#sandboxes.add(sandbox);
    return sandbox;
  }


  #sandboxHost(): SandboxHost {
    const zb = this;
    this.#host ??= {
      store: this.#store,
      diskBytes: this.#options.limits.diskMb * 1024 * 1024,
      get closed() {
        return zb.#closed;
      },
      execute: (runtime, parts, options, layered, rawStdout) => this.#execute(runtime, parts, options, layered, rawStdout),
      fileOpTemplate: () => {
        // Any template will do (no code runs): the one with the most parked sandboxes.
        let best: Template | undefined;
        for (const t of this.#templates.values()) if (!best || t.server.readyCount > best.server.readyCount) best = t;
        return best!.name;
      },
      forget: (sandbox) => this.#sandboxes.delete(sandbox),
      track: (sandbox) => this.#sandboxes.add(sandbox),
      sandboxes: () => [...this.#sandboxes],
    };
    return this.#host;
  }

  async #execute(runtime: string, parts: RequestParts, options: RunOptions, layered?: LayeredRun, rawStdout = false): Promise<SandboxRunResult> {
    if (this.#closed) throw closedError();
    if (typeof runtime !== 'string') throw invalidArgument('runtime', 'a template name such as "python"', runtime);
    // No options is the common case of an agent loop: nothing to validate, and zod's parse is ~50 µs cold.
    const opts: RunOptions = isEmptyObject(options) ? {} : parseOrThrow(runOptionsSchema, options, 'options');
    const template = this.#templates.get(runtime);
    if (!template) {
      throw new ZerobootError('UNKNOWN_RUNTIME', `No template named "${runtime}": this instance has ${[...this.#templates.keys()].map((n) => `"${n}"`).join(', ')}. Add it to Zeroboot.start({ templates }).`);
    }
    const timeoutMs = opts.timeoutMs ?? this.#options.limits.timeoutMs;
    if (timeoutMs > this.#options.maxLimits.timeoutMs) {
      throw invalidArgument('options.timeoutMs', `at most maxLimits.timeoutMs (${this.#options.maxLimits.timeoutMs})`, timeoutMs);
    }
    const signal = opts.signal;
    if (signal?.aborted) throw abortedError(signal);
    const request = encodeRequest({ ...parts, env: opts.env, stdin: opts.stdin, files: { ...parts.files, ...opts.files } });
    const settings = { timeoutMs, maxOutputBytes: this.#options.limits.maxOutputBytes, onStdout: opts.onStdout, onStderr: opts.onStderr, onStdoutBytes: opts.onStdoutBytes, onStderrBytes: opts.onStderrBytes, signal, rawStdout };
    const task = async () => {
      this.#inFlight++;
      try {
        const acquiredAt = performance.now();
        // A parked sandbox that died before its run (killed from outside) is found when the request cannot
        // be sent; that run takes the next sandbox instead, once.
        for (let attempt = 1; ; attempt++) {
          const sandbox = await acquireWithin(template.server, settings.timeoutMs - (performance.now() - acquiredAt), signal);
          if (sandbox === 'timed-out') return timedOutBeforeStart(acquiredAt);
          try {
            const remainingMs = Math.max(1, settings.timeoutMs - (performance.now() - acquiredAt));
            return await runInSandbox(template.server, sandbox, request, { ...settings, timeoutMs: remainingMs }, acquiredAt, layered);
          } catch (error) {
            if (attempt === 1 && isStaleSandbox(error)) continue;
            throw error;
          }
        }
      } finally {
        this.#inFlight--;
      }
    };
    // A waiting run whose signal aborts leaves the line at once; a running one kills its sandbox and
    // rejects with ABORTED itself, keeping its place until its sandbox is gone.
    return template.queue.run(task, signal, () => abortedError(signal!));
  }

  stats(): ZerobootStats {
    const templates: Record<string, TemplateStats> = {};
    for (const t of this.#templates.values()) {
      templates[t.name] = {
        ready: t.server.readyCount,
        forks: t.server.forks,
        p50ForkMs: t.server.forkMs.percentile(50),
        p99ForkMs: t.server.forkMs.percentile(99),
      };
    }
    return { templates, sandboxes: this.#inFlight, enforcement: this.enforcement };
  }

  /** How sandboxes are isolated and limited (also in `stats()`). */
  get enforcement(): Enforcement {
    // Every fork-server of an instance runs on the same machine as the same user: the first one speaks for all.
    const features = [...this.#templates.values()][0]?.server.features ?? 0;
    const cgroup = features & Feature.CGROUP_V2 ? 'cgroup-v2' : features & Feature.CGROUP_V1 ? 'cgroup-v1' : 'rlimit';
    return { mode: features & Feature.ROOTLESS ? 'rootless' : 'root', hostUid: this.#hostUid, memory: cgroup, processes: cgroup };
  }

  /** Internal view for the benchmark and doctor: the fork-server of a template. */
  forkServer(template: string): ForkServer | undefined {
    return this.#templates.get(template)?.server;
  }

  /** Ends every fork-server and sandbox; no process is left behind. Runs in flight reject with SANDBOX_CLOSED. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#closed = true;
      await Promise.all([...this.#templates.values()].map((t) => t.server.close()));
      await Promise.all([...this.#sandboxes].map((sb) => sb.close().catch(() => {})));
      this.#store.remove();
      this.#state.remove();
    })();
    return this.#closing;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/**
 * Waits for a sandbox for at most the run's deadline, and no longer than its signal allows: the deadline
 * and an abort cover the wait for a sandbox too, not only the run.
 */
async function acquireWithin(server: ForkServer, timeoutMs: number, signal: AbortSignal | undefined): Promise<ReadySandbox | 'timed-out'> {
  if (signal?.aborted) throw abortedError(signal);
  // The common case, a parked sandbox: no deadline or abort wiring for a wait that does not happen.
  const parked = server.takeReady();
  if (parked) return parked;
  const cancel = new AbortController();
  const timer = setTimeout(() => cancel.abort(new Error('deadline')), Math.max(1, timeoutMs));
  const onAbort = () => cancel.abort(new Error('aborted'));
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    return await server.acquire(cancel.signal);
  } catch (error) {
    if (signal?.aborted) throw abortedError(signal);
    if (cancel.signal.aborted) return 'timed-out';
    throw error;
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener('abort', onAbort);
  }
}

function timedOutBeforeStart(acquiredAt: number): RunResult {
  return { stdout: '', stderr: '', exitCode: null, signal: null, timedOut: true, truncated: false, durationMs: performance.now() - acquiredAt, outcome: 'timed-out' };
}

/** The request could not be sent: the parked sandbox was already gone (EPIPE, ECONNRESET). */
function isStaleSandbox(error: unknown): boolean {
  return ZerobootError.isInstance(error) && error.step === 'request' && (error.errno === 32 || error.errno === 104);
}

function isEmptyObject(value: unknown): boolean {
  if (value === null || typeof value !== 'object' || Object.getPrototypeOf(value) !== Object.prototype) return false;
  for (const _ in value) return false;
  return true;
}

function closedError(): ZerobootError {
  return new ZerobootError('SANDBOX_CLOSED', 'This Zeroboot instance is closed: start a new one with Zeroboot.start().');
}

function abortedError(signal: AbortSignal): ZerobootError {
  return new ZerobootError('ABORTED', 'The run was aborted through its AbortSignal before it finished.', { cause: signal.reason });
}
