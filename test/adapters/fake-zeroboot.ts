// A fake Zeroboot and Sandbox for the adapters' unit tests: no kernel, no fork-server. Files live in a Map;
// a run is a JavaScript function of the code the model sent and the sandbox's files. Branch, diff and merge
// keep core's semantics (a path changed on both sides since the branch point is a conflict; with one,
// nothing is applied), so the adapters' workspace logic can be tested in milliseconds.
import { ZerobootError, type Change, type MergeResult, type RunOptions, type RunResult } from '@zeroboot/core';

/** What a fake run does: reads and writes `files`, returns the parts of a RunResult it cares about. */
export type FakeProgram = (code: string, files: Map<string, string>, options: RunOptions) => Partial<RunResult> | Promise<Partial<RunResult>>;

const result = (partial: Partial<RunResult>): RunResult => ({
  stdout: '',
  stderr: '',
  exitCode: 0,
  signal: null,
  timedOut: false,
  truncated: false,
  durationMs: 0.5,
  outcome: 'exited',
  ...partial,
});

export class FakeSandbox {
  static #nextId = 1;
  readonly id = FakeSandbox.#nextId++;
  readonly files: FakeFiles;
  closed = false;
  readonly #zb: FakeZeroboot;
  #base: Map<string, string>;

  constructor(zb: FakeZeroboot, contents: Map<string, string>) {
    this.#zb = zb;
    this.files = new FakeFiles(this, contents);
    this.#base = new Map(contents);
    zb.open.add(this);
  }

  get contents(): Map<string, string> {
    return this.files.contents;
  }

  async run(runtime: string, code: string, options: RunOptions = {}): Promise<RunResult> {
    this.#check();
    const working = new Map(this.contents);
    const out = await this.#zb.execute(runtime, code, working, options);
    // As in core, a run's writes are kept even when it fails: it is the step that decides what reaches a workspace.
    this.files.contents = working;
    return out;
  }

  async branch(): Promise<FakeSandbox> {
    this.#check();
    this.#zb.calls.push('branch');
    return new FakeSandbox(this.#zb, new Map(this.contents));
  }

  async diff(): Promise<Change[]> {
    this.#check();
    return changesBetween(this.#base, this.contents);
  }

  async merge(branch: FakeSandbox, options: { onConflict?: 'fail' | 'ours' | 'theirs' } = {}): Promise<MergeResult> {
    this.#check();
    this.#zb.calls.push('merge');
    const theirs = changesBetween(branch.#base, branch.contents);
    const ours = new Set(changesBetween(branch.#base, this.contents).map((c) => c.path));
    const conflicts = theirs.filter((c) => ours.has(c.path)).map((c) => ({ path: c.path }));
    if (conflicts.length > 0 && (options.onConflict ?? 'fail') === 'fail') return { applied: [], conflicts };
    for (const change of theirs) {
      if (change.kind === 'deleted') this.contents.delete(change.path);
      else this.contents.set(change.path, branch.contents.get(change.path)!);
    }
    return { applied: theirs, conflicts };
  }

  async close(): Promise<void> {
    this.closed = true;
    this.#zb.open.delete(this);
  }

  #check(): void {
    if (this.closed) throw new ZerobootError('SANDBOX_CLOSED', 'This sandbox is closed.');
  }
}

class FakeFiles {
  readonly #sandbox: FakeSandbox;
  contents: Map<string, string>;

  constructor(sandbox: FakeSandbox, contents: Map<string, string>) {
    this.#sandbox = sandbox;
    this.contents = contents;
  }

  async write(path: string, content: string | Uint8Array): Promise<void> {
    this.#check();
    if (path.startsWith('/usr')) throw new ZerobootError('INVALID_ARGUMENT', `${path} is read-only`, { errno: 30 });
    if (path.includes('..')) throw new ZerobootError('PATH_OUTSIDE_SANDBOX', `${path} climbs out`);
    if (path.startsWith('full/')) throw new ZerobootError('DISK_QUOTA_EXCEEDED', `The sandbox's disk is full: ${path} was not written.`);
    if (this.#isDir(path)) throw new ZerobootError('INVALID_ARGUMENT', `${path} is a directory`, { errno: 21 });
    this.contents.set(normal(path), typeof content === 'string' ? content : new TextDecoder().decode(content));
  }

  read(path: string): Promise<Uint8Array>;
  read(path: string, encoding: 'utf8'): Promise<string>;
  async read(path: string, encoding?: 'utf8'): Promise<Uint8Array | string> {
    this.#check();
    if (this.#isDir(path)) throw new ZerobootError('INVALID_ARGUMENT', `${path} is a directory`, { errno: 21 });
    const text = this.contents.get(normal(path));
    if (text === undefined) throw new ZerobootError('FILE_NOT_FOUND', `No such file: ${path}`, { errno: 2 });
    return encoding ? text : new TextEncoder().encode(text);
  }

  async list(path = '.') {
    const dir = normal(path);
    const prefix = dir === '.' ? '' : `${dir}/`;
    if (this.contents.has(dir) || (prefix && ![...this.contents.keys()].some((p) => p.startsWith(prefix)))) {
      throw new ZerobootError('FILE_NOT_FOUND', `No such directory: ${path}`, { errno: 20 });
    }
    const names = new Map<string, 'file' | 'dir'>();
    for (const p of this.contents.keys()) {
      if (!p.startsWith(prefix)) continue;
      const [first, ...rest] = p.slice(prefix.length).split('/');
      names.set(first!, rest.length > 0 ? 'dir' : 'file');
    }
    return [...names].map(([name, type]) => ({ name, path: `${prefix}${name}`, type, size: 0 }));
  }

  async remove(path: string): Promise<void> {
    this.contents.delete(normal(path));
  }

  async exists(path: string): Promise<boolean> {
    return this.contents.has(normal(path)) || this.#isDir(path);
  }

  #check(): void {
    if (this.#sandbox.closed) throw new ZerobootError('SANDBOX_CLOSED', 'This sandbox is closed.');
  }

  #isDir(path: string): boolean {
    const prefix = `${normal(path)}/`;
    return [...this.contents.keys()].some((p) => p.startsWith(prefix));
  }
}

/** Paths as the files API returns them: relative to /workspace. */
function normal(path: string): string {
  return path.replace(/^\/workspace\/?/, '').replace(/^\.\//, '') || '.';
}

function changesBetween(before: Map<string, string>, after: Map<string, string>): Change[] {
  const changes: Change[] = [];
  for (const [path, text] of after) {
    if (!before.has(path)) changes.push({ path, kind: 'added' });
    else if (before.get(path) !== text) changes.push({ path, kind: 'modified' });
  }
  for (const path of before.keys()) if (!after.has(path)) changes.push({ path, kind: 'deleted' });
  return changes.sort((a, b) => (a.path < b.path ? -1 : 1));
}

export class FakeZeroboot {
  readonly limits = { timeoutMs: 10_000, memoryMb: 256, maxProcesses: 64, maxOutputBytes: 1 << 20, diskMb: 256 };
  readonly maxLimits = { timeoutMs: 600_000 };
  readonly open = new Set<FakeSandbox>();
  /** Every run, branch and merge, in order. */
  readonly calls: string[] = [];
  readonly #programs: Record<string, FakeProgram>;

  constructor(programs: Record<string, FakeProgram>) {
    this.#programs = programs;
  }

  stats() {
    return { templates: Object.fromEntries(Object.keys(this.#programs).map((name) => [name, { ready: 1, forks: 0, p50ForkMs: 0, p99ForkMs: 0 }])), sandboxes: this.open.size };
  }

  async run(runtime: string, code: string, options: RunOptions = {}): Promise<RunResult> {
    return this.execute(runtime, code, new Map(), options);
  }

  ownsSandbox(sandbox: unknown): boolean {
    return this.open.has(sandbox as FakeSandbox);
  }

  async sandbox(): Promise<FakeSandbox> {
    return new FakeSandbox(this, new Map());
  }

  /** @internal */
  async execute(runtime: string, code: string, files: Map<string, string>, options: RunOptions): Promise<RunResult> {
    const program = this.#programs[runtime];
    if (!program) throw new ZerobootError('UNKNOWN_RUNTIME', `No template named ${runtime}.`);
    this.calls.push(`run ${runtime}`);
    options.signal?.throwIfAborted();
    const out = await program(code, files, options);
    options.onStdout?.(out.stdout ?? '');
    options.onStderr?.(out.stderr ?? '');
    return result(out);
  }
}

/**
 * The fake programs most tests use. `js`: the code is a JavaScript function body with `files` (a Map) and
 * `sleep(ms)` in scope, returning a partial RunResult; aborting the run's signal rejects it with ABORTED.
 */
export function fakeZeroboot(): FakeZeroboot {
  const js: FakeProgram = async (code, files, options) => {
    const sleep = (ms: number) =>
      new Promise<void>((resolve, reject) => {
        const timer = setTimeout(resolve, ms);
        options.signal?.addEventListener('abort', () => (clearTimeout(timer), reject(new ZerobootError('ABORTED', 'The run was aborted.'))), { once: true });
      });
    const body = new Function('files', 'sleep', `return (async () => { ${code} })()`) as (f: Map<string, string>, s: typeof sleep) => Promise<Partial<RunResult> | undefined>;
    return (await body(files, sleep)) ?? {};
  };
  return new FakeZeroboot({ js, python: js });
}
