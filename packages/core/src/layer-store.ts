// Where Sandboxes keep their files between runs: one directory per layer, on the host's disk, owned by
// the instance's sandbox uid. A layer is in overlayfs's upper-layer format (whiteouts, opaque
// directories; layers.ts), so a stack of them mounts as one overlay inside a sandbox. Layers are shared
// between the stacks of a Sandbox and its branches and counted: the last release removes the directory.
import { execFile } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, rmSync } from 'node:fs';
import { chown, mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { ZerobootError } from './errors.js';
import { isRootless, privateDirectory, sweepStale } from './host.js';

const execFileAsync = promisify(execFile);

export class Layer {
  /** Its directory's name in the store: what a sandbox's request names it by. */
  readonly name: string;
  readonly path: string;
  refs = 0;
  /** Allocated bytes it holds, kept up to date by whoever writes it (a sandbox's quota counts its stack's above the base). */
  bytes = 0;

  constructor(name: string, path: string) {
    this.name = name;
    this.path = path;
  }
}

export class LayerStore {
  readonly root: string;
  readonly uid: number;
  readonly base: Layer;
  #next = 1;
  #removed = false;

  constructor(root: string, uid: number) {
    this.root = root;
    this.uid = uid;
    // The sandbox uid's own: a sandbox opens layers below it (in its own mount namespace, where the fork-
    // server binds it), and nothing else of the host's is below it.
    mkdirSync(root, { mode: 0o700 });
    chownSync(root, uid, uid);
    // The base: the empty directories every stack starts from, as the sandbox user owns them. They are
    // what persists in a Sandbox: the rest of its root is the read-only system; /dev/shm stays per run.
    const base = join(root, 'base');
    mkdirSync(base, { mode: 0o755 });
    mkdirSync(join(base, 'workspace'), { mode: 0o755 });
    mkdirSync(join(base, 'tmp'), { mode: 0o777 });
    for (const path of [base, join(base, 'workspace'), join(base, 'tmp')]) chownSync(path, uid, uid);
    chmodSync(join(base, 'tmp'), 0o1777); // mkdir honours the umask
    this.base = new Layer('base', base);
    this.base.refs = 1; // the store's own: never removed before the store
  }

  async create(): Promise<Layer> {
    if (this.#removed) throw new ZerobootError('SANDBOX_CLOSED', 'This Zeroboot instance is closed: start a new one with Zeroboot.start().');
    const name = `L${this.#next++}`;
    const path = join(this.root, name);
    await mkdir(path, { mode: 0o755 });
    await chown(path, this.uid, this.uid);
    return new Layer(name, path);
  }

  retain(layers: readonly Layer[]): void {
    for (const layer of layers) layer.refs++;
  }

  /** Drops one reference from each; removes the layers nobody holds any more. */
  async release(layers: readonly Layer[]): Promise<void> {
    const gone = layers.filter((layer) => --layer.refs === 0);
    await Promise.all(gone.map((layer) => removeTree(layer.path)));
  }

  /** Removes every layer: the instance is closing. */
  remove(): void {
    this.#removed = true;
    rmSync(this.root, { recursive: true, force: true });
  }
}

/**
 * Removes a layer directory whatever its depth: fs.rm, and where it fails (a layer a sandbox wrote can hold
 * paths longer than PATH_MAX, which fs.rm cannot remove) rm(1), which walks fd by fd. rm(1) only then: a
 * process costs milliseconds, and most layers are small.
 */
async function removeTree(path: string): Promise<void> {
  try {
    await rm(path, { recursive: true, force: true });
    return;
  } catch {
    // below
  }
  try {
    await execFileAsync('rm', ['-rf', '--one-file-system', '--', path]);
  } catch (cause) {
    throw new ZerobootError('SANDBOX_SETUP_FAILED', `A layer directory could not be removed (${(cause as Error).message.trim()}): check the host's disk under ${path}.`, { cause });
  }
}

/**
 * The parent of every instance's store: /var/tmp/zeroboot (on disk, by convention, where /run and /tmp
 * may be RAM; /var/tmp/zeroboot-<uid> rootless) when it is ours alone; undefined when not (the store then
 * goes in the state directory). Checked before use: in a world-writable /var/tmp, another user could have
 * made the directory first, or a symlink in its place.
 */
export function layerStoreParent(): string | undefined {
  const parent = privateDirectory(isRootless() ? `/var/tmp/zeroboot-${process.getuid?.()}` : '/var/tmp/zeroboot');
  if (parent) sweepStale(parent); // stores of SDK processes that died without closing
  return parent;
}
