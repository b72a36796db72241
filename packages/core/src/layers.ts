// The host side of the overlay layer store: reading, squashing and diffing directories in overlayfs "upper layer"
// format, exactly as the kernel's overlayfs mounted with `userxattr` reads them (a whiteout is the character device
// 0:0, an opaque directory carries `user.overlay.opaque=y`). See Documentation/filesystems/overlayfs.rst.
//
// Everything in a layer was written by sandboxed code, and this runs as host root: no call here follows a symlink.
// Entries are examined with lstat and only then acted on (lchown, lutimes, readlink, unlink, rmdir); a file is opened
// or copied only when lstat says it is a regular file, and a directory is descended into only when lstat says it is
// one. Callers serialise all work on a layer, and a run's writes are read only once every process of the run is
// gone, so nothing should change between the lstat and the act; should it anyway, the directories a layer is
// listed, squashed and removed through are opened below its root through no symlink (openat2 RESOLVE_BENEATH |
// NO_SYMLINKS) and a file is copied from an fd checked to be the file lstat saw: a change fails the call, it never
// leads it out of the layer.
import {
  chmodSync,
  constants,
  fstatSync,
  lchownSync,
  linkSync,
  lstatSync,
  lutimesSync,
  mkdirSync,
  readdirSync,
  readlinkSync,
  rmdirSync,
  symlinkSync,
  unlinkSync,
  type Stats,
} from 'node:fs';
import { copyFile, open } from 'node:fs/promises';
import { join } from 'node:path';

import { invalidArgument } from './errors.js';
import { native } from './native.js';

const OPAQUE_XATTR = 'user.overlay.opaque';
const OPAQUE_VALUE = Buffer.from('y');
/** What a new directory takes on the host's disk, for a squash's budget (one block of ext4). */
const DIRECTORY_BYTES = 4096;
/** Permission bits and sticky: setuid and setgid are never carried into a layer. */
const CARRIED_MODE_BITS = 0o1777;

/** One difference between two views, as {@link diffViews} reports it. */
export interface Change {
  /** The path inside the view: relative, `/`-separated, e.g. `workspace/a/b.txt`. */
  path: string;
  kind: 'added' | 'modified' | 'deleted';
  /** A directory that no longer merges with the one before it (set on `modified` directories only). */
  replaced?: true;
}

/** The entry that wins at a path of a view, and for a directory the layers' directories that merge into it. */
interface Resolved {
  stats: Stats;
  /** The host path of the winning entry. */
  path: string;
  /** The layer (an element of the stack) the winning entry is in. */
  layer: string;
  /** For a directory: the directories that merge into it, top first (the winning one first). */
  dirs: Array<{ path: string; layer: string }>;
}

/** True for an overlayfs whiteout: a character device with device number 0:0. */
export function isWhiteout(stats: Stats): boolean {
  return stats.isCharacterDevice() && stats.rdev === 0;
}

/**
 * True when the directory at `path` is opaque (`user.overlay.opaque` is exactly `y`; the kernel gives other values
 * other meanings, e.g. `x` marks a directory holding xwhiteouts, or none). Synchronous: the native call is.
 */
export function isOpaque(path: string): boolean {
  return native().getXattr(path, OPAQUE_XATTR)?.equals(OPAQUE_VALUE) ?? false;
}

/**
 * The entry at `rel` in the view of `stack` (layer directories, top first), as overlayfs resolves it: the topmost
 * entry wins; a whiteout hides the layers below; a non-directory hides everything below it; directories merge until
 * one is opaque. A symlink is returned as a symlink and never followed, also in the middle of `rel` (then the result
 * is null, as for any non-directory there).
 *
 * @returns the lstat of the winning entry, or null when the view has nothing at `rel`.
 */
export async function lookup(stack: string[], rel: string): Promise<Stats | null> {
  return resolve(stack, rel)?.stats ?? null;
}

/**
 * The merged listing of directory `rel` in the view of `stack`: each visible name with the lstat of its winning entry
 * and the layer that entry is in. Whiteouts are not listed.
 *
 * @throws an error with code `ENOENT` when the view has nothing at `rel`, `ENOTDIR` when it is not a directory.
 */
export async function readMergedDir(stack: string[], rel: string): Promise<Map<string, { stats: Stats; layer: string }>> {
  return mergedDir(resolve(stack, rel), rel);
}

function mergedDir(dir: Resolved | null, rel: string): Map<string, { stats: Stats; layer: string }> {
  if (dir === null) throw viewError('ENOENT', 'no such file or directory', rel);
  if (!dir.stats.isDirectory()) throw viewError('ENOTDIR', 'not a directory', rel);
  const merged = new Map<string, { stats: Stats; layer: string }>();
  const whitedOut = new Set<string>();
  for (const { path, layer } of dir.dirs) {
    for (const name of readdirSync(path)) {
      if (merged.has(name) || whitedOut.has(name)) continue;
      const stats = lstatSync(join(path, name));
      if (isWhiteout(stats)) whitedOut.add(name);
      else merged.set(name, { stats, layer });
    }
  }
  return new Map([...merged].sort(([a], [b]) => compare(a, b)));
}

/** Options of {@link squash}. */
export interface SquashOptions {
  /**
   * True when `src` and `dst` are on the same filesystem: regular files are hard-linked into `dst` instead of copied
   * (no data is copied; `src` must then be deleted, not reused, as its files now belong to `dst`). False: copy
   * (`src` on another filesystem, e.g. a tmpfs).
   */
  move: boolean;
  /** The owner of everything squash creates in `dst`. */
  uid: number;
  gid: number;
  /** Called with each path of `src` (and its lstat) before it is applied; true leaves that path (and its subtree) out. Default: none. */
  skip?: (rel: string, stats: Stats) => boolean;
  /**
   * The most bytes `dst` may grow by: squash stops with an error of code `EDQUOT` before a file would take it past
   * (checked with the file's size before it is copied, so a sparse file or a hard link never gets written in full
   * first), leaving `dst` half-done; give it a fresh `dst` to throw away then. Default: no limit.
   */
  budget?: number;
}

/**
 * Applies layer `src` onto layer `dst`, which sits on the stack `below`, so that afterwards the view
 * `[dst, ...below]` shows what `[src, dst, ...below]` showed, except for what is never carried: setuid and setgid bits,
 * owners (everything created is owned by `options.uid`/`gid`), hardlinks (each name gets its own file), and fifos,
 * sockets and devices (their names end up absent, as if deleted). The layer roots' own metadata is left alone.
 *
 * Crash consistency: every step keeps the view `[src, dst, ...below]` unchanged (but for what is never carried), so
 * stopping half-way and keeping `src` above `dst` shows no half-applied state, and squashing again finishes the job:
 * `dst`'s old entry is removed only once `src`'s entry above it hides the removal, new entries appear in `dst` only
 * below `src`'s entries that hide them, and directory metadata is set last. `src` is not modified, except that a
 * directory of `src` that replaces a non-directory of `dst` is first marked opaque when `below` has a directory there
 * (without that, removing `dst`'s entry would let `below`'s directory merge in), and, with `move`, metadata fixes
 * reach `src`'s files through the shared inode.
 *
 * @returns the change in `dst`'s allocated bytes (st_blocks × 512 of everything added, minus everything removed).
 */
export async function squash(src: string, dst: string, below: string[], options: SquashOptions): Promise<{ bytesDelta: number }> {
  let bytesDelta = 0;
  // Directories of dst whose metadata is set once everything inside them is in place (writing into a directory
  // changes its mtime), with their allocated blocks before.
  const dirs: Array<{ rel: string; stats: Stats; blocksBefore: number }> = [];
  const rootBlocksBefore = lstatSync(dst).blocks;

  // What `below` shows at rel through dst's directories above it, ignoring dst's own entry at rel. A directory's
  // place in the view [dst, ...below] is final once the walk has handled it, before its children: what it resolves
  // to is remembered then, so each lookup is one step, whatever the depth.
  const resolveDst = resolver([dst, ...below]);
  const shownBelow = (rel: string): Stats | null => {
    const parent = resolveDst(parentOf(rel));
    return parent && parent.stats.isDirectory() ? (step(parent.dirs.filter((dir) => dir.layer !== dst), baseName(rel))?.stats ?? null) : null;
  };

  const budget = options.budget ?? Infinity;
  // A directory's block is counted once it is full (bytesDelta, at the end): until then it is counted here.
  let newDirectories = 0;
  const spend = (bytes: number, rel: string): void => {
    if (bytesDelta + newDirectories * DIRECTORY_BYTES + bytes > budget) {
      throw Object.assign(new Error(`EDQUOT: squashing '${rel}' would take the layer past its budget of ${budget} bytes`), { code: 'EDQUOT', path: rel });
    }
  };

  // Each entry is reached through its parent directories' fds, opened below src's and dst's roots through no
  // symlink (openBeneath): were a layer changed meanwhile, a renamed directory or a planted symlink could only
  // make this fail, never lead it outside the layers.
  const apply = async (rel: string, stats: Stats, from: string, to: string): Promise<boolean> => {
    const existing = lstatOrNull(to);

    if (stats.isDirectory()) {
      const srcOpaque = isOpaque(from);
      if (existing?.isDirectory() && !srcOpaque) {
        dirs.push({ rel, stats, blocksBefore: existing.blocks });
        return true;
      }
      // dst gets a new directory: it replaces dst's entry (src's is opaque, or dst has a non-directory there, which
      // stopped the merge), or there was nothing.
      const replacing = srcOpaque || existing !== null;
      const under = shownBelow(rel);
      if (existing !== null) {
        if (!srcOpaque && under?.isDirectory()) native().setXattr(from, OPAQUE_XATTR, OPAQUE_VALUE);
        bytesDelta -= await removeEntry(dst, rel, existing);
      }
      // Owned by the sandbox user at once: half a squash must leave nothing a sandbox cannot read (a layer's
      // directories are read with the sandbox user's rights). The mode is set once the directory is full.
      spend(DIRECTORY_BYTES, rel);
      mkdirSync(to, { mode: 0o700 });
      lchownSync(to, options.uid, options.gid);
      newDirectories++;
      // A non-opaque directory above a non-directory already hides it (the kernel stops merging there); the marker
      // makes that explicit.
      if (under !== null && (replacing || !under.isDirectory())) native().setXattr(to, OPAQUE_XATTR, OPAQUE_VALUE);
      dirs.push({ rel, stats, blocksBefore: 0 });
      return true;
    }

    if (existing !== null) bytesDelta -= await removeEntry(dst, rel, existing);
    if (stats.isFile() && options.move && stats.nlink === 1) {
      linkSync(from, to);
      // link(2) takes whatever is at `from` now: it must still be the file lstat saw.
      const linked = lstatSync(to);
      if (!linked.isFile() || linked.ino !== stats.ino) {
        unlinkSync(to);
        throw viewError('ESTALE', 'changed while it was being moved', rel);
      }
    } else if (stats.isFile()) {
      spend(stats.size, rel);
      await copyRegularFile(src, rel, stats, to);
    } else if (stats.isSymbolicLink()) {
      symlinkSync(readlinkSync(from), to);
    } else {
      // A whiteout, or an entry that is never carried (fifo, socket, device): the name is absent afterwards.
      // Inside a new opaque directory nothing shows from below, so whiteouts there are dropped.
      if (shownBelow(rel) === null) return false;
      native().mknodWhiteout(to);
    }
    setMetadata(to, stats, options);
    const blocks = lstatSync(to).blocks * 512;
    spend(blocks, rel);
    bytesDelta += blocks;
    return false;
  };
  await walk(layerLister(src), '', async (rel, stats) => {
    if (options.skip?.(rel, stats)) return false;
    const name = baseName(rel);
    return withDir(src, parentOf(rel), (from) => withDir(dst, parentOf(rel), (to) => apply(rel, stats, `${from}/${name}`, `${to}/${name}`)));
  });

  // Children before parents: setting a directory's times does not touch its parent's.
  for (const { rel, stats, blocksBefore } of dirs.reverse()) {
    await withDir(dst, parentOf(rel), async (dir) => {
      const to = `${dir}/${baseName(rel)}`;
      setMetadata(to, stats, options);
      bytesDelta += (lstatSync(to).blocks - blocksBefore) * 512;
    });
  }
  bytesDelta += (lstatSync(dst).blocks - rootBlocksBefore) * 512;
  return { bytesDelta };
}

/**
 * Looks paths up in one view, each once (memoized from its parent: linear in depth): the winning entry's lstat, or
 * null. The view must not change while it is used.
 */
export function viewLookup(stack: string[]): (rel: string) => Stats | null {
  const get = resolver(stack);
  return (rel) => get(rel)?.stats ?? null;
}

/**
 * The allocated bytes of `dst` that squashing `src` onto it would remove: what `src`'s whiteouts, non-directories and
 * opaque or replacing directories hide of `dst` (whole subtrees for directories). What `dst` would then hold is its
 * bytes, minus these, plus what squash adds (give squash a budget to bound that).
 */
export async function hiddenBytes(src: string, dst: string): Promise<number> {
  let bytes = 0;
  await walk(layerLister(src), '', async (rel, stats) => {
    const existing = lstatOrNull(join(dst, rel));
    if (existing === null) return false;
    if (stats.isDirectory() && existing.isDirectory() && !isOpaque(join(src, rel))) return true;
    bytes += existing.isDirectory() ? await layerBytes(join(dst, rel)) : existing.blocks * 512;
    return false;
  });
  return bytes;
}

/** The allocated bytes (st_blocks × 512) of layer `dir`: the directory itself and everything in it, each inode once. */
export async function layerBytes(dir: string): Promise<number> {
  let bytes = lstatSync(dir).blocks * 512;
  const linked = new Set<number>();
  await walk(layerLister(dir), '', (_rel, stats) => {
    if (stats.nlink > 1 && !stats.isDirectory()) {
      if (linked.has(stats.ino)) return false;
      linked.add(stats.ino);
    }
    bytes += stats.blocks * 512;
    return true;
  });
  return bytes;
}

/**
 * The differences between the view `before` and the view `[...changed, ...before]`, found by walking only the
 * `changed` layers (and `before`'s view only below what they delete or replace). Every path a changed layer mentions
 * is looked up in both views: absent → present is `added`, present → absent `deleted`; present in both is `modified`
 * when its type changed, or when it is a non-directory whose winning entry is in a changed layer. A directory in both
 * views is modified when it was replaced (it no longer merges with the directory before it: `rm -r d; mkdir d`
 * makes an opaque directory; such changes say `replaced`) or its mode changed, never because it was copied up, which
 * parents are all the time (their times change with what is in them). A deleted directory
 * reports itself and everything that was under it, an added or replaced one itself and everything under it.
 *
 * @returns the changes, sorted by path.
 */
export async function diffViews(changed: string[], before: string[]): Promise<Change[]> {
  const after = [...changed, ...before];
  const resolveBefore = resolver(before);
  const resolveAfter = resolver(after);
  const paths = new Set<string>();
  const addOldSubtree = async (rel: string): Promise<void> => {
    if (!resolveBefore(rel)?.stats.isDirectory()) return;
    await walk(viewLister(resolveBefore), rel, (child) => {
      paths.add(child);
      return true;
    });
  };
  for (const layer of changed) {
    await walk(layerLister(layer), '', async (rel, stats) => {
      paths.add(rel);
      // Whatever `before` had under a whiteout, a non-directory or an opaque directory may be gone now.
      if (!stats.isDirectory() || isOpaque(join(layer, rel))) await addOldSubtree(rel);
      return true;
    });
  }

  const changes: Change[] = [];
  const beforeLayers = new Set(before);
  for (const path of [...paths].sort(compare)) {
    const old = resolveBefore(path);
    const now = resolveAfter(path);
    if (old === null && now !== null) changes.push({ path, kind: 'added' });
    else if (old !== null && now === null) changes.push({ path, kind: 'deleted' });
    else if (old !== null && now !== null) {
      const typeChanged = fileType(old.stats) !== fileType(now.stats);
      // A directory that no longer merges with the one before it (an opaque directory, or one above a deleted or
      // replaced entry) was replaced: what it holds now is all new.
      if (typeChanged) changes.push({ path, kind: 'modified' });
      else if (now.stats.isDirectory()) {
        if (!now.dirs.some((dir) => beforeLayers.has(dir.layer))) changes.push({ path, kind: 'modified', replaced: true });
        else if ((now.stats.mode & 0o7777) !== (old.stats.mode & 0o7777)) changes.push({ path, kind: 'modified' });
      } else if (changed.includes(now.layer)) changes.push({ path, kind: 'modified' });
    }
  }
  return changes;
}

/** One side of {@link findConflicts}: its changes from the common base (from {@link diffViews}) and its view. */
export interface Side {
  changes: Change[];
  view: string[];
}

/**
 * The paths where two sides changed from the same base disagree: a path both changed whose results differ (type;
 * regular files by mode and content; symlinks by target; directories and other non-directories by mode; two
 * deletions never conflict), or a directory one side deleted or replaced (by a non-directory, or by a new
 * directory) while the other side added or modified something under it (the directory is reported; deletions under
 * a deleted directory agree).
 *
 * @returns the conflicting paths, sorted, each once.
 */
export async function findConflicts(a: Side, b: Side): Promise<string[]> {
  const conflicts = new Set<string>();
  const changedIn = (side: Side): Map<string, Change> => new Map(side.changes.map((change) => [change.path, change]));
  const pathsA = changedIn(a);
  const pathsB = changedIn(b);
  const resolveA = resolver(a.view);
  const resolveB = resolver(b.view);
  for (const path of pathsA.keys()) {
    if (pathsB.has(path) && !(await sameEntry(resolveA(path), resolveB(path)))) conflicts.add(path);
  }
  for (const [side, otherPaths, resolveOther] of [[a, pathsB, resolveB], [b, pathsA, resolveA]] as const) {
    for (const { path, kind } of side.changes) {
      if (kind === 'deleted') continue;
      for (let end = path.indexOf('/'); end !== -1; end = path.indexOf('/', end + 1)) {
        const ancestor = path.slice(0, end);
        // The other side deleted the directory, made it a non-directory, or replaced it (a directory is only ever
        // `modified` when replaced): its version would drop this side's change.
        const other = otherPaths.get(ancestor);
        if (other !== undefined && (other.kind === 'deleted' || other.replaced || !resolveOther(ancestor)?.stats.isDirectory())) {
          conflicts.add(ancestor);
        }
      }
    }
  }
  return [...conflicts].sort(compare);
}

// ---- internals ----

/** Lists one directory: each name with its lstat, sorted by name. */
type Lister = (rel: string) => Promise<Map<string, Stats>>;

/** A layer's own entries (whiteouts included), each directory reached through no symlink. */
function layerLister(root: string): Lister {
  return (rel) =>
    withDir(root, rel, (dir) => {
      const names = readdirSync(dir).sort(compare);
      return new Map(names.map((name) => [name, lstatSync(`${dir}/${name}`)] as const));
    });
}

/**
 * Calls `use` with a path to directory `rel` of the layer `root` that nothing can redirect: /proc/self/fd/N, N an fd
 * opened below `root` through no symlink (openBeneath). The fd is closed once `use` has settled.
 */
async function withDir<T>(root: string, rel: string, use: (dir: string) => T | Promise<T>): Promise<T> {
  const fd = native().openBeneath(root, rel, 'dir');
  try {
    return await use(`/proc/self/fd/${fd}`);
  } finally {
    native().close(fd);
  }
}

/**
 * Copies the regular file `rel` of the layer `src` (lstat `stats`) to the new name `to` (EXCL: never through
 * whatever is there). The source is opened below `src` through no symlink and checked to be the file lstat saw;
 * the copy reads that open file. copyFile carries its mode for a moment, but the copy is hidden by src's entry
 * above it until setMetadata has stripped it.
 */
async function copyRegularFile(src: string, rel: string, stats: Stats, to: string): Promise<void> {
  const fd = native().openBeneath(src, rel, 'file');
  try {
    const opened = fstatSync(fd);
    if (!opened.isFile() || opened.ino !== stats.ino || opened.dev !== stats.dev) throw viewError('ESTALE', 'changed while it was being copied', rel);
    await copyFile(`/proc/self/fd/${fd}`, to, constants.COPYFILE_EXCL);
  } finally {
    native().close(fd);
  }
}

/** A view's merged entries. */
function viewLister(resolveView: Resolver): Lister {
  return async (rel) => new Map([...mergedDir(resolveView(rel), rel)].map(([name, { stats }]) => [name, stats]));
}

/**
 * Visits everything under `rel` depth-first, each entry before its children; descends into an entry only when lstat
 * says it is a directory and `visit` returns true.
 */
async function walk(list: Lister, rel: string, visit: (rel: string, stats: Stats) => boolean | Promise<boolean>): Promise<void> {
  for (const [name, stats] of await list(rel)) {
    const child = rel === '' ? name : `${rel}/${name}`;
    // The metadata calls are synchronous: let the event loop (other sandboxes' runs, timers) in now and then.
    if (++walked % 256 === 0) await new Promise(setImmediate);
    if ((await visit(child, stats)) && stats.isDirectory()) await walk(list, child, visit);
  }
}
let walked = 0;

/** One path of a view, checked to be a relative path without `.`, `..` or empty names. */
function resolve(stack: string[], rel: string): Resolved | null {
  components(rel);
  return resolver(stack)(rel);
}

function resolveRoot(stack: string[]): Resolved {
  if (stack.length === 0) throw invalidArgument('stack', 'at least one layer directory', stack);
  // The roots always merge: the kernel ignores an opaque marker on a layer's root.
  return { stats: lstatSync(stack[0]!), path: stack[0]!, layer: stack[0]!, dirs: stack.map((layer) => ({ path: layer, layer })) };
}

/** Resolves paths (from a walk: no `.`, `..` or empty names) of one view, each path once. */
type Resolver = (rel: string) => Resolved | null;

/**
 * A {@link resolve} for many paths of one view that remembers what each path resolved to, so a path costs one
 * {@link step} from its parent's entry, not one per component: walks of deep trees stay linear in their depth. The
 * view must not change meanwhile, except below paths not yet resolved.
 */
function resolver(stack: string[]): Resolver {
  const known = new Map<string, Resolved | null>();
  const get = (rel: string): Resolved | null => {
    let found = known.get(rel);
    if (found === undefined) {
      const parent = rel === '' ? undefined : get(parentOf(rel));
      found = parent === undefined ? resolveRoot(stack) : parent?.stats.isDirectory() ? step(parent.dirs, baseName(rel)) : null;
      known.set(rel, found);
    }
    return found;
  };
  return get;
}

/** One component of a lookup: `name` in the directories `dirs` (top first) that merge into one directory. */
function step(dirs: Array<{ path: string; layer: string }>, name: string): Resolved | null {
  let found: Resolved | null = null;
  for (const { path: dir, layer } of dirs) {
    const path = join(dir, name);
    const stats = lstatOrNull(path);
    if (stats === null) continue;
    // A whiteout, or a non-directory below a directory, stops the merge (the kernel sets `stop` for both).
    if (isWhiteout(stats) || (found !== null && !stats.isDirectory())) break;
    found ??= { stats, path, layer, dirs: [] };
    if (!stats.isDirectory()) break;
    found.dirs.push({ path, layer });
    if (isOpaque(path)) break;
  }
  return found;
}

function components(rel: string): string[] {
  if (rel === '') return [];
  const names = rel.split('/');
  if (names.some((name) => name === '' || name === '.' || name === '..')) {
    throw invalidArgument('rel', 'a relative `/`-separated path without empty, `.` or `..` components', rel);
  }
  return names;
}

function parentOf(rel: string): string {
  return rel.slice(0, Math.max(0, rel.lastIndexOf('/')));
}

function baseName(rel: string): string {
  return rel.slice(rel.lastIndexOf('/') + 1);
}

/** Code-unit order, the same everywhere (localeCompare is not). */
function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function fileType(stats: Stats): number {
  return stats.mode & constants.S_IFMT;
}

/**
 * Synchronous on purpose, as every metadata call here (lstat, mkdir, link, lchown, chmod, lutimes, unlink): each
 * takes a few µs, and a round trip through libuv's thread pool per call cost ~0.1-1 ms (~1 ms per path in a diff,
 * several ms per kept run). Copies of file data stay async; walks yield to the event loop every 256 entries.
 */
function lstatOrNull(path: string): Stats | null {
  return lstatSync(path, { throwIfNoEntry: false }) ?? null;
}

function viewError(code: string, message: string, rel: string): Error {
  return Object.assign(new Error(`${code}: ${message}, view path '${rel}'`), { code, path: rel });
}

/** Owner, carried mode bits and times of a new entry in dst (a symlink's mode cannot be set, and is always 0777). */
function setMetadata(path: string, stats: Stats, owner: { uid: number; gid: number }): void {
  lchownSync(path, owner.uid, owner.gid);
  // chmod(2) follows a symlink: `path` is an entry squash has just made itself (and checked, for a hard link).
  if (!stats.isSymbolicLink()) chmodSync(path, stats.mode & CARRIED_MODE_BITS);
  lutimesSync(path, stats.atimeMs / 1000, stats.mtimeMs / 1000);
}

/** Removes the entry `rel` of layer `root` (lstat `stats`) and everything under it; returns the allocated bytes removed. */
async function removeEntry(root: string, rel: string, stats: Stats): Promise<number> {
  const entries = [{ rel, stats }];
  if (stats.isDirectory()) {
    await walk(layerLister(root), rel, (child, childStats) => {
      entries.push({ rel: child, stats: childStats });
      return true;
    });
  }
  let bytes = 0;
  for (const entry of entries.reverse()) {
    bytes += entry.stats.blocks * 512;
    await withDir(root, parentOf(entry.rel), (dir) => (entry.stats.isDirectory() ? rmdirSync : unlinkSync)(`${dir}/${baseName(entry.rel)}`));
  }
  return bytes;
}

/** Whether two views' entries at one path are the same, in the sense of {@link findConflicts}. */
async function sameEntry(a: Resolved | null, b: Resolved | null): Promise<boolean> {
  if (a === null || b === null) return a === b;
  if (fileType(a.stats) !== fileType(b.stats)) return false;
  if (a.stats.isDirectory()) return (a.stats.mode & 0o7777) === (b.stats.mode & 0o7777);
  if (a.stats.isSymbolicLink()) return readlinkSync(a.path) === readlinkSync(b.path);
  if ((a.stats.mode & 0o7777) !== (b.stats.mode & 0o7777)) return false;
  return !a.stats.isFile() || (a.stats.size === b.stats.size && (await sameContent(a, b)));
}

async function sameContent(a: Resolved, b: Resolved): Promise<boolean> {
  if (a.stats.dev === b.stats.dev && a.stats.ino === b.stats.ino) return true;
  // O_NOFOLLOW: lstat said regular file; refuse anything else that might have appeared since.
  await using fileA = await open(a.path, constants.O_RDONLY | constants.O_NOFOLLOW);
  await using fileB = await open(b.path, constants.O_RDONLY | constants.O_NOFOLLOW);
  const bufferA = Buffer.alloc(1 << 16);
  const bufferB = Buffer.alloc(1 << 16);
  for (;;) {
    const { bytesRead } = await fileA.read(bufferA, 0, bufferA.length);
    const { bytesRead: bytesReadB } = await fileB.read(bufferB, 0, bufferB.length);
    if (bytesRead !== bytesReadB || !bufferA.subarray(0, bytesRead).equals(bufferB.subarray(0, bytesRead))) return false;
    if (bytesRead === 0) return true;
  }
}
