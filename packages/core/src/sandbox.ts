// A Sandbox: a filesystem that persists across runs, as a stack of layers (layer-store.ts), each run a
// fresh fork of a warm template over it. The stack, top first: the Sandbox's own top layer, the frozen
// layers it shares with its branches and parents, the base. A run mounts the stack read-only under an
// overlay whose writes go to the run's tmpfs; once every process of the run is gone, the SDK applies
// those writes to the top layer (layers.ts, squash). Everything that touches the stack, runs included,
// goes through one queue per Sandbox, so no run sees another half-done and no merge is seen half-applied.
import type { Stats } from 'node:fs';
import { chmod, readdir, utimes } from 'node:fs/promises';
import { constants } from 'node:os';
import { posix } from 'node:path';

import { ZerobootError, invalidArgument } from './errors.js';
import type { ExitInfo } from './fork-server.js';
import type { Layer, LayerStore } from './layer-store.js';
import { diffViews, findConflicts, hiddenBytes, squash, viewLookup, type Change } from './layers.js';
import { FileOp, type RequestParts } from './native-protocol.js';
import { native } from './native.js';
import { fitsKernelPath, type RunOptions } from './options.js';
import { isDiskFull, type LayeredRun, type RunResult, type SandboxRunResult } from './run.js';

export type { Change } from './layers.js';

export interface FileEntry {
  name: string;
  /** As the files API takes it: relative to /workspace when inside it, else absolute. */
  path: string;
  /** 'other': a fifo, a socket or a device. */
  type: 'file' | 'dir' | 'symlink' | 'other';
  /** Bytes; a symlink's is its target's length. */
  size: number;
}

export interface MergeOptions {
  /** A path changed on both sides since the branch point: 'fail' (default) applies nothing, 'ours' keeps this sandbox's version, 'theirs' takes the branch's. */
  onConflict?: 'fail' | 'ours' | 'theirs';
}

export interface MergeResult {
  /** The branch's changes now in this sandbox (none when a conflict failed the merge). */
  applied: Change[];
  /** Paths changed on both sides. With onConflict 'fail' (the default) and any conflict, nothing was applied. */
  conflicts: { path: string }[];
}

/** What a Sandbox needs of its Zeroboot (zeroboot.ts implements it). */
export interface SandboxHost {
  readonly store: LayerStore;
  readonly diskBytes: number;
  readonly closed: boolean;
  execute(runtime: string, parts: RequestParts, options: RunOptions, layered: LayeredRun, rawStdout: boolean): Promise<SandboxRunResult>;
  /** The template file operations use: any will do, they run no code. */
  fileOpTemplate(): string;
  /** Branches are closed with the instance too. */
  track(sandbox: Sandbox): void;
  forget(sandbox: Sandbox): void;
  /** The open sandboxes of the instance. */
  sandboxes(): Iterable<Sandbox>;
}

/** Above this many layers a stack no longer fits in an overlay's mount options: merge or close branches. */
const MAX_STACK = 200;
let nextSandboxId = 1;

/** The files API of one Sandbox: paths relative to /workspace, or absolute inside the sandbox. */
export class SandboxFiles {
  readonly #sandbox: Sandbox;

  constructor(sandbox: Sandbox) {
    this.#sandbox = sandbox;
  }

  /** Writes (creates or replaces) a file, making its directories. */
  async write(path: string, content: string | Uint8Array): Promise<void> {
    if (typeof content !== 'string' && !(content instanceof Uint8Array)) throw invalidArgument('content', 'a string or a Uint8Array', content);
    const target = sandboxPath(path);
    await this.#sandbox.fileOp(FileOp.WRITE, target, { [target]: content });
  }

  /** A file's bytes, or its text with an encoding. */
  read(path: string): Promise<Uint8Array>;
  read(path: string, encoding: 'utf8' | 'utf-8'): Promise<string>;
  async read(path: string, encoding?: 'utf8' | 'utf-8'): Promise<Uint8Array | string> {
    if (encoding !== undefined && encoding !== 'utf8' && encoding !== 'utf-8') throw invalidArgument('encoding', "'utf8' or nothing (bytes)", encoding);
    const bytes = await this.#sandbox.fileOp(FileOp.READ, sandboxPath(path));
    return encoding ? bytes.toString('utf8') : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  /** The entries of a directory (fifos, sockets and devices have type 'other'). */
  async list(path = '.'): Promise<FileEntry[]> {
    const dir = sandboxPath(path);
    const out = await this.#sandbox.fileOp(FileOp.LIST, dir);
    const entries: FileEntry[] = [];
    for (const record of out.toString('utf8').split('\0')) {
      const match = /^([fdlo]) (\d+) ([\s\S]+)$/.exec(record);
      if (!match) continue;
      const name = match[3]!;
      entries.push({ name, path: displayPath(posix.join(dir, name)), type: match[1] === 'f' ? 'file' : match[1] === 'd' ? 'dir' : match[1] === 'l' ? 'symlink' : 'other', size: Number(match[2]) });
    }
    return entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /** Removes a file, a symlink or a whole directory. */
  async remove(path: string): Promise<void> {
    const target = sandboxPath(path);
    if (target === '/') throw invalidArgument('path', 'a path below /', path);
    await this.#sandbox.fileOp(FileOp.REMOVE, target);
  }

  /** Whether the path exists (symlinks followed). */
  async exists(path: string): Promise<boolean> {
    try {
      await this.#sandbox.fileOp(FileOp.STAT, sandboxPath(path));
      return true;
    } catch (error) {
      if (ZerobootError.isInstance(error) && error.code === 'FILE_NOT_FOUND') return false;
      throw error;
    }
  }
}

export class Sandbox {
  readonly id = nextSandboxId++;
  readonly files: SandboxFiles;
  readonly #host: SandboxHost;
  /** Top first; [0] is this sandbox's own and only it writes there; the last is the store's base. */
  #stack: Layer[];
  /** The layer this sandbox was branched at (its diff starts there), or undefined: since creation. */
  #branchPoint: Layer | undefined;
  #queue: Promise<unknown> = Promise.resolve();
  /** A run's writes that could not be kept (the host's disk failed): reported by the next call. */
  #lostWrites: unknown;
  #closed = false;
  #closing: Promise<void> | undefined;

  /** @internal Zeroboot.sandbox() and Sandbox.branch() make them. */
  constructor(host: SandboxHost, stack: Layer[], branchPoint: Layer | undefined) {
    this.#host = host;
    this.#stack = stack;
    this.#branchPoint = branchPoint;
    host.store.retain(stack);
    this.files = new SandboxFiles(this);
  }

  /** Runs code in a fresh sandbox over this one's filesystem; what it writes is there for the next run. */
  run(runtime: string, code: string, options: RunOptions = {}): Promise<RunResult> {
    if (typeof code !== 'string') return Promise.reject(invalidArgument('code', 'a string of source code', code));
    const signal = options?.signal instanceof AbortSignal ? options.signal : undefined;
    let started = false;
    const work = this.#serialised(async (defer) => {
      started = true;
      const result = await this.#execute(runtime, { code }, options, false, defer);
      delete result.stdoutBytes;
      return result;
    }, signal);
    if (!signal) return work;
    // Waiting behind this sandbox's other calls, an abort rejects at once (and the run is skipped when its
    // turn comes); once started, the run itself kills its sandbox and rejects with ABORTED.
    return new Promise<RunResult>((resolve, reject) => {
      const onAbort = () => {
        if (!started) reject(abortedWhileQueued(signal));
      };
      signal.addEventListener('abort', onAbort, { once: true });
      work.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
    });
  }

  /**
   * A copy-on-write copy of this sandbox's filesystem: O(1) in its size. The current top layer is frozen
   * and shared; this sandbox and the branch each get a new empty top.
   */
  branch(): Promise<Sandbox> {
    return this.#serialised(async () => {
      if (this.#stack.length >= MAX_STACK) {
        throw new ZerobootError('INVALID_ARGUMENT', `This sandbox's filesystem is ${this.#stack.length} layers deep, the most a sandbox can mount: merge or close some branches first.`);
      }
      const store = this.#host.store;
      const parentTop = await store.create();
      let branchTop: Layer;
      try {
        branchTop = await store.create();
      } catch (error) {
        store.retain([parentTop]);
        await store.release([parentTop]);
        throw error;
      }
      const frozen = this.#stack;
      this.#stack = [parentTop, ...frozen];
      store.retain([parentTop]);
      const branch = new Sandbox(this.#host, [branchTop, ...frozen], frozen[0]);
      this.#host.track(branch);
      return branch;
    });
  }

  /** What changed since the branch point (or since creation): added, modified and deleted paths. */
  diff(): Promise<Change[]> {
    return this.#serialised(async () => {
      const at = this.#branchPoint ? this.#stack.indexOf(this.#branchPoint) : this.#stack.length - 1;
      const changes = await diffViews(paths(this.#stack.slice(0, at)), paths(this.#stack.slice(at)));
      return changes.map(displayChange);
    });
  }

  /**
   * Applies `branch`'s changes since the two last shared a layer (its branch point, for a branch of this
   * sandbox). A path changed on both sides is a conflict, settled by onConflict. Atomic: the changes are
   * built in a new layer that goes on top of this sandbox's stack in one step, or not at all.
   */
  async merge(branch: Sandbox, options: MergeOptions = {}): Promise<MergeResult> {
    if (!(branch instanceof Sandbox) || branch.#host !== this.#host) throw invalidArgument('branch', 'a Sandbox of the same Zeroboot instance', branch);
    if (branch === this) throw invalidArgument('branch', 'another sandbox than this one', 'itself');
    if (options === null || typeof options !== 'object' || Array.isArray(options)) throw invalidArgument('options', "an object such as { onConflict: 'fail' }", options);
    const onConflict = options.onConflict === undefined ? 'fail' : options.onConflict; // null is not a policy
    if (!['fail', 'ours', 'theirs'].includes(onConflict)) throw invalidArgument('options.onConflict', "'fail', 'ours' or 'theirs'", onConflict);
    // Both queues, always in the same order: two merges between the same pair cannot deadlock.
    const [first, second] = this.id < branch.id ? [this, branch] : [branch, this];
    return first.#serialised(() => second.#serialised(() => this.#merge(branch, onConflict)));
  }

  async #merge(branch: Sandbox, onConflict: 'fail' | 'ours' | 'theirs'): Promise<MergeResult> {
    const ours = this.#stack;
    const theirs = branch.#stack;
    let shared = 0; // layers both stacks share, from the base up
    while (shared < ours.length && shared < theirs.length && ours[ours.length - 1 - shared] === theirs[theirs.length - 1 - shared]) shared++;
    const base = paths(ours.slice(ours.length - shared));
    const ourLayers = paths(ours.slice(0, ours.length - shared));
    const theirLayers = paths(theirs.slice(0, theirs.length - shared));
    const [ourChanges, theirChanges] = await Promise.all([diffViews(ourLayers, base), diffViews(theirLayers, base)]);
    const conflicts = await findConflicts({ changes: ourChanges, view: paths(ours) }, { changes: theirChanges, view: paths(theirs) });
    const result = (applied: Change[]): MergeResult => ({ applied: applied.map(displayChange), conflicts: conflicts.map((path) => ({ path: displayPath(`/${path}`) })) });
    if (conflicts.length > 0 && onConflict === 'fail') return result([]);
    const inConflict = (rel: string) => conflicts.some((c) => rel === c || rel.startsWith(`${c}/`));
    // 'ours': a conflicting path and everything under it stays as this sandbox has it.
    const kept = (rel: string) => onConflict === 'ours' && inConflict(rel);
    const applied = theirChanges.filter((c) => !kept(c.path));
    if (applied.length === 0) return result([]);
    // Their layers hold more than their changes: directories copied up on the way to a change below them,
    // and entries added then removed again. Only the changes go into the delta, and the directories that
    // lead to them where this sandbox still has a directory there: where it has none, no change below can
    // apply (it would have been a conflict, unless it is a deletion, already true here).
    const theirChanged = new Set(theirChanges.map((c) => c.path));
    // Their version goes in as they have it: what they changed, and conflicts settled 'theirs'.
    const takenAsTheirs = (rel: string) => theirChanged.has(rel) || (onConflict === 'theirs' && inConflict(rel));
    const ourView = viewLookup(paths(ours));
    const leftOut = (rel: string, stats: Stats): boolean => {
      if (kept(rel)) return true;
      if (takenAsTheirs(rel)) return false;
      return !stats.isDirectory() || !ourView(rel)?.isDirectory();
    };
    const store = this.#host.store;
    const delta = await store.create();
    store.retain([delta]); // released (and removed) if the merge fails; held by the stack if it succeeds
    try {
      // Their layers, oldest first, into one: their changes since the shared base.
      for (const layer of [...theirLayers].reverse()) {
        delta.bytes += (await squash(layer, delta.path, base, { move: false, uid: store.uid, gid: store.uid, skip: leftOut })).bytesDelta;
      }
      // Those leading directories carry their copy-up's mode and times: make them this sandbox's, so that
      // folding the delta in does not turn back what it did to them.
      await matchDirectories(delta.path, '', (rel) => (takenAsTheirs(rel) ? null : ourView(rel)));
      // What the sandbox would hold once the delta is folded into its top layer (which drops what it hides there).
      const total = this.#usedBytes() + delta.bytes - (await hiddenBytes(delta.path, this.#stack[0]!.path));
      if (total > this.#host.diskBytes) {
        throw new ZerobootError('DISK_QUOTA_EXCEEDED', `Merging would make this sandbox's files take ${total} bytes, past limits.diskMb (${this.#host.diskBytes} bytes): nothing was merged. Raise limits.diskMb or remove files first.`);
      }
    } catch (error) {
      await store.release([delta]).catch(() => {});
      throw error;
    }
    // The one step that makes the merge visible; then fold it into the top layer, which keeps what
    // every run sees unchanged at each step of the way.
    this.#stack = [delta, ...this.#stack];
    await this.#compact();
    return result(applied);
  }

  /** Ends this sandbox and frees its layers (those no branch still holds). Later calls reject with SANDBOX_CLOSED. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#closed = true;
      await this.#queue.catch(() => {});
      this.#host.forget(this);
      await this.#host.store.release(this.#stack);
      // Layers this sandbox shared may now be held by one sandbox alone: fold them now, while the agent
      // thinks, rather than on that sandbox's next call.
      for (const other of this.#host.sandboxes()) other.#compactSoon();
    })();
    return this.#closing;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  #compactSoon(): void {
    if (!this.#closed && !this.#host.closed) this.#serialised(async () => {}).catch(() => {});
  }

  /** @internal A files API operation, done inside a sandbox over this one's filesystem. */
  fileOp(op: number, path: string, files?: Record<string, string | Uint8Array>): Promise<Buffer> {
    return this.#serialised(async (defer) => {
      let result: SandboxRunResult;
      try {
        result = await this.#execute(this.#host.fileOpTemplate(), { fileOp: { op, path }, files }, {}, true, defer);
      } catch (error) {
        // Writing the file failed before the operation (read-only path, full disk): the same errors.
        if (ZerobootError.isInstance(error) && error.step === 'files' && error.errno !== undefined) throw fileOpError(op, error.errno, false, path);
        throw error;
      }
      if (result.exitCode === 0) return result.stdoutBytes ?? Buffer.alloc(0);
      throw fileOpError(op, result.exitCode ?? -1, result.timedOut, path);
    });
  }

  /**
   * One run over this sandbox's layers. Its writes are kept after the caller has its result: they are
   * folded into the top layer once every process of the run is gone (pid 1's exit takes its namespace
   * with it), which `defer` makes the next call on this sandbox wait for, so no call can tell.
   */
  async #execute(runtime: string, parts: RequestParts, options: RunOptions, rawStdout: boolean, defer: (work: Promise<void>) => void): Promise<SandboxRunResult> {
    const stack = this.#stack;
    let upper: { fd: number; exit: Promise<ExitInfo> } | undefined;
    const layered: LayeredRun = { onUpper: (fd, exit) => (upper = { fd, exit }) };
    const diskBytes = Math.max(0, this.#host.diskBytes - this.#usedBytes());
    try {
      return await this.#host.execute(runtime, { ...parts, layers: { names: stack.map((layer) => layer.name), diskBytes } }, options, layered, rawStdout);
    } finally {
      const written = upper;
      if (written) {
        defer(
          (async () => {
            try {
              // Only once the sandbox is reaped: a fork-server gone (exit rejected) may leave its processes
              // alive for a moment, writing where the fold reads. Their writes are dropped.
              if (!(await written.exit.then(() => true, () => false))) throw new Error('the fork-server went away before the run was reaped: its writes were dropped');
              await this.#keep(`/proc/self/fd/${written.fd}`, diskBytes);
            } finally {
              native().close(written.fd);
            }
          })(),
        );
      }
    }
  }

  /**
   * Keeps a finished run's writes (its upper directory, on its tmpfs): copied into a new layer on top of
   * the stack (the one the run saw: the queue lets nothing else in between), then folded into the top
   * layer. The copy is bounded by what the quota left the run (`room`, plus a little for rounding),
   * checked before each file is written: a hard link or a sparse file costs the tmpfs nothing and the
   * host its whole size. A copy that fails (quota, the host's disk) is thrown away whole; a fold that
   * fails leaves the new layer on the stack, which shows the same files, and is retried by the next call.
   */
  async #keep(upper: string, room: number): Promise<void> {
    const store = this.#host.store;
    const stack = this.#stack;
    const layer = await store.create();
    store.retain([layer]);
    try {
      layer.bytes = (await squash(upper, layer.path, paths(stack), { move: false, uid: store.uid, gid: store.uid, budget: room + 64 * 1024 })).bytesDelta;
    } catch (error) {
      await store.release([layer]).catch(() => {});
      if ((error as NodeJS.ErrnoException).code === 'EDQUOT') {
        throw new ZerobootError('DISK_QUOTA_EXCEEDED', `A run left more to keep than limits.diskMb allows this sandbox (${room} bytes; hard links and sparse files count in full): none of that run's writes were kept.`, { cause: error });
      }
      throw error;
    }
    this.#stack = [layer, ...stack];
    // Kept: a fold that fails here (the host's disk) is the next call's to retry and report.
    await this.#compact().catch(() => {});
  }

  /** The bytes of this sandbox's files: every layer of its stack above the base, shared or its own. */
  #usedBytes(): number {
    return this.#stack.slice(0, -1).reduce((sum, layer) => sum + layer.bytes, 0);
  }

  /**
   * Folds layers only this sandbox holds into the one below, top down, so stacks do not grow with every
   * branch and merge: never into a layer a branch shares, nor into this sandbox's branch point (its diff
   * starts there), nor into the base.
   */
  async #compact(): Promise<void> {
    const store = this.#host.store;
    for (let i = 0; i + 1 < this.#stack.length - 1; ) {
      const upper = this.#stack[i]!;
      const lower = this.#stack[i + 1]!;
      if (upper.refs !== 1 || lower.refs !== 1 || lower === this.#branchPoint) {
        i++;
        continue;
      }
      lower.bytes += (await squash(upper.path, lower.path, paths(this.#stack.slice(i + 2)), { move: true, uid: store.uid, gid: store.uid })).bytesDelta;
      this.#stack = [...this.#stack.slice(0, i), ...this.#stack.slice(i + 1)];
      // The branch point folded down: the layer below now holds exactly the view it marked.
      if (upper === this.#branchPoint) this.#branchPoint = lower;
      await store.release([upper]);
    }
  }

  /**
   * Runs f after everything queued before it on this sandbox, compacting first when branches have let go
   * of layers. Work f defers (a run's writes being kept) holds the queue, not f's caller.
   */
  #serialised<T>(f: (defer: (work: Promise<void>) => void) => Promise<T>, signal?: AbortSignal): Promise<T> {
    if (this.#closed || this.#host.closed) return Promise.reject(new ZerobootError('SANDBOX_CLOSED', 'This sandbox is closed: make a new one with zb.sandbox() or sb.branch().'));
    const deferred: Promise<void>[] = [];
    const next = this.#queue.then(async () => {
      if (this.#closed || this.#host.closed) throw new ZerobootError('SANDBOX_CLOSED', 'This sandbox was closed while the call waited: make a new one with zb.sandbox() or sb.branch().');
      // Aborted while it waited: it leaves without doing anything (a lost-writes report stays for the next call).
      if (signal?.aborted) throw abortedWhileQueued(signal);
      if (this.#lostWrites !== undefined) {
        const cause = this.#lostWrites;
        this.#lostWrites = undefined;
        if (ZerobootError.isInstance(cause)) throw cause;
        throw new ZerobootError('SANDBOX_SETUP_FAILED', `The files an earlier run wrote could not be kept in the sandbox's layer (${(cause as Error)?.message ?? cause}): check the host's disk under /var/tmp/zeroboot.`, { cause });
      }
      await this.#compact();
      return f((work) => deferred.push(work));
    });
    this.#queue = next
      .catch(() => {})
      .then(() => Promise.all(deferred))
      .catch((error: unknown) => {
        this.#lostWrites = error;
      });
    return next;
  }
}

/** Gives each directory below `rel` of the SDK's own layer `root` the mode and times `want` says (null: as it is). */
async function matchDirectories(root: string, rel: string, want: (rel: string) => Stats | null): Promise<void> {
  for (const entry of await readdir(posix.join(root, rel), { withFileTypes: true })) {
    if (!entry.isDirectory()) continue;
    const child = rel === '' ? entry.name : `${rel}/${entry.name}`;
    await matchDirectories(root, child, want);
    const stats = want(child);
    if (stats === null) continue;
    const path = posix.join(root, child);
    await chmod(path, stats.mode & 0o1777);
    await utimes(path, stats.atime, stats.mtime);
  }
}

function paths(layers: readonly Layer[]): string[] {
  return layers.map((layer) => layer.path);
}

/**
 * A files API path as an absolute, normalised path inside the sandbox. `..` may not climb above the
 * sandbox's root; symlinks are not resolved here (the operation runs inside the sandbox, where they can
 * only lead inside it).
 */
export function sandboxPath(path: unknown): string {
  if (typeof path !== 'string' || path === '') throw invalidArgument('path', 'a non-empty string', path);
  if (path.includes('\0')) throw invalidArgument('path', 'a path without NUL bytes', path);
  const absolute = path.startsWith('/') ? path : `/workspace/${path}`;
  const parts: string[] = [];
  for (const part of absolute.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (parts.length === 0) throw new ZerobootError('PATH_OUTSIDE_SANDBOX', `The path ${JSON.stringify(path)} climbs above the sandbox's root with '..': use a path inside the sandbox.`);
      parts.pop();
    } else parts.push(part);
  }
  const resolved = `/${parts.join('/')}`;
  if (!fitsKernelPath(resolved)) throw invalidArgument('path', 'a path of at most 4000 bytes whose every name is at most 255 bytes', path);
  return resolved;
}

/** How paths come back: relative to /workspace inside it, absolute elsewhere. */
function displayPath(absolute: string): string {
  if (absolute === '/workspace') return '.';
  return absolute.startsWith('/workspace/') ? absolute.slice('/workspace/'.length) : absolute;
}

function displayChange(change: Change): Change {
  return { path: displayPath(`/${change.path}`), kind: change.kind };
}

function abortedWhileQueued(signal: AbortSignal): ZerobootError {
  return new ZerobootError('ABORTED', 'The run was aborted through its AbortSignal while it waited for the calls queued before it on this sandbox: it did not run.', { cause: signal.reason });
}

const ERRNO = constants.errno;

function fileOpError(op: number, errno: number, timedOut: boolean, path: string): ZerobootError {
  const where = JSON.stringify(displayPath(path));
  if (isDiskFull(errno)) {
    return new ZerobootError('DISK_QUOTA_EXCEEDED', `The sandbox's disk (limits.diskMb) is full: ${where} was not written. Remove files or raise limits.diskMb.`, { errno });
  }
  switch (errno) {
    case ERRNO.ENOTDIR:
      // Only LIST tells a path that is not a directory (ENOTDIR) from one whose parent is not (ENOENT).
      if (op === FileOp.LIST) return new ZerobootError('INVALID_ARGUMENT', `${where} is not a directory: read it with files.read, or list its directory.`, { errno });
    // falls through
    case ERRNO.ENOENT:
      return new ZerobootError('FILE_NOT_FOUND', `No such file or directory in the sandbox: ${where}.`, { errno });
    case ERRNO.ELOOP:
      return new ZerobootError('PATH_OUTSIDE_SANDBOX', `${where} does not resolve inside the sandbox (a symlink loop).`, { errno });
    case ERRNO.EISDIR:
      return new ZerobootError('INVALID_ARGUMENT', `${where} is a directory: read a file, or list the directory.`, { errno });
    case ERRNO.EBUSY:
      return new ZerobootError('INVALID_ARGUMENT', `${where} is where the sandbox mounts a filesystem (/workspace, /tmp, /dev/shm): it cannot be removed. Remove the entries in it instead.`, { errno });
    case ERRNO.EROFS:
      return new ZerobootError('INVALID_ARGUMENT', `${where} is read-only in the sandbox: only /workspace and /tmp (and what the sandbox's code may change there) are writable.`, { errno });
    case ERRNO.EACCES:
    case ERRNO.EPERM: {
      const access = op === FileOp.READ || op === FileOp.LIST || op === FileOp.STAT ? 'read' : 'change';
      return new ZerobootError('INVALID_ARGUMENT', `Permission denied: the sandbox's user may not ${access} ${where} (its mode, or a directory's on the way, forbids it; a run can chmod what the sandbox owns).`, { errno });
    }
    case ERRNO.EINVAL:
      return new ZerobootError('INVALID_ARGUMENT', `${where} is not a regular file (a device, fifo or socket) or not a valid target for this operation.`, { errno });
    default:
      return new ZerobootError('SANDBOX_SETUP_FAILED', `The file operation on ${where} failed (errno ${errno}${timedOut ? ', timed out' : ''}).`, { errno, step: 'file-op' });
  }
}
