// The layer engine against the kernel: whatever view the engine computes or produces is compared with what the
// kernel's own overlayfs (userxattr, read-only, mounted in a private mount namespace that dies with its process)
// shows over the same directories. Layers are written in the kernel's format with the native helpers.
import { execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  lstatSync,
  lutimesSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  linkSync,
  utimesSync,
  writeFileSync,
  chmodSync,
  type Stats,
} from 'node:fs';
import { lstat, readdir, readFile, readlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';

import { afterEach, beforeEach, describe, expect, test } from 'vitest';

import { diffViews, findConflicts, hiddenBytes, isOpaque, isWhiteout, layerBytes, lookup, readMergedDir, squash, type Change } from '../src/layers.js';
import { native } from '../src/native.js';
import { ROOTLESS } from '../../../test/helpers.js';

// The owner squash gives what it writes: any as root; rootless, chown(2) can give only our own.
const UID = ROOTLESS ? process.getuid!() : 1234;
const GID = ROOTLESS ? process.getgid!() : 5678;

let tmp: string;
beforeEach(() => {
  tmp = mkdtempSync('/var/tmp/zb-layers-');
});
afterEach(() => {
  rmSync(tmp, { recursive: true, force: true });
});

// ---- writing layers ----

type Entry =
  | string
  | { file: string | Buffer; mode: number }
  | { dir: true; mode: number; opaque?: boolean }
  | { symlink: string }
  | { whiteout: true }
  | { fifo: true }
  | { device: true }
  | { hardlink: string };
/** One layer: its entries by path; a string is a regular file's content. Missing parents become plain directories. */
type LayerSpec = Record<string, Entry>;

const file = (content: string | Buffer, mode = 0o644): Entry => ({ file: content, mode });
const dir = (mode = 0o755): Entry => ({ dir: true, mode });
const opaque = (mode = 0o755): Entry => ({ dir: true, mode, opaque: true });
const sym = (target: string): Entry => ({ symlink: target });
const hardlink = (target: string): Entry => ({ hardlink: target });
const whiteout: Entry = { whiteout: true };
const fifo: Entry = { fifo: true };
const device: Entry = { device: true };

/** Every non-directory gets its own mtime, so an entry that wins from another layer always looks different. */
let clock = 1_600_000_000;

function build(spec: LayerSpec): string {
  const root = mkdtempSync(join(tmp, 'layer-'));
  for (const rel of Object.keys(spec).sort(compare)) {
    const entry = spec[rel]!;
    const path = join(root, rel);
    mkdirSync(dirname(path), { recursive: true });
    if (typeof entry === 'string' || 'file' in entry) {
      writeFileSync(path, typeof entry === 'string' ? entry : entry.file);
      chmodSync(path, typeof entry === 'string' ? 0o644 : entry.mode);
    } else if ('dir' in entry) {
      mkdirSync(path);
      chmodSync(path, entry.mode);
      if (entry.opaque) native().setXattr(path, 'user.overlay.opaque', Buffer.from('y'));
      continue;
    } else if ('symlink' in entry) symlinkSync(entry.symlink, path);
    else if ('whiteout' in entry) native().mknodWhiteout(path);
    else if ('fifo' in entry) execFileSync('mkfifo', [path]);
    // Rootless, no device node can be made (CAP_MKNOD), by this test or by a sandbox, so none can reach a
    // layer either: the entry is left out, and the views compared without it.
    else if ('device' in entry) {
      if (ROOTLESS) continue;
      execFileSync('mknod', [path, 'c', '1', '3']);
    } else {
      linkSync(join(root, entry.hardlink), path);
      continue;
    }
    const time = clock++;
    lutimesSync(path, time, time);
  }
  return root;
}

const buildAll = (layers: LayerSpec[]): string[] => layers.map(build);

// ---- reading views ----

/** What a view shows at one path; directories by type and mode only (their size and times vary). */
interface Snap {
  type: string;
  mode: number;
  size?: number;
  sha256?: string;
  target?: string;
  mtime?: number;
}
type View = Record<string, Snap>;
type Listing = (rel: string) => Promise<Array<{ name: string; stats: Stats; path: string }>>;

function typeOf(stats: Stats): string {
  if (stats.isDirectory()) return 'dir';
  if (stats.isFile()) return 'file';
  if (stats.isSymbolicLink()) return 'symlink';
  if (stats.isFIFO()) return 'fifo';
  if (stats.isSocket()) return 'socket';
  return stats.isCharacterDevice() ? `char ${stats.rdev}` : `block ${stats.rdev}`;
}

async function snap(stats: Stats, path: string): Promise<Snap> {
  const entry: Snap = { type: typeOf(stats), mode: stats.mode & 0o7777 };
  if (stats.isDirectory()) return entry;
  entry.mtime = stats.mtimeMs;
  if (stats.isSymbolicLink()) entry.target = await readlink(path);
  if (stats.isFile()) {
    entry.size = stats.size;
    entry.sha256 = createHash('sha256').update(await readFile(path)).digest('hex');
  }
  return entry;
}

async function snapshot(list: Listing): Promise<View> {
  const view: View = {};
  const visit = async (rel: string): Promise<void> => {
    for (const { name, stats, path } of await list(rel)) {
      const child = rel === '' ? name : `${rel}/${name}`;
      view[child] = await snap(stats, path);
      if (stats.isDirectory()) await visit(child);
    }
  };
  await visit('');
  return sorted(view);
}

/** The view as the engine computes it (readMergedDir all the way down). */
function engineView(stack: string[]): Promise<View> {
  return snapshot(async (rel) =>
    [...(await readMergedDir(stack, rel))].map(([name, { stats, layer }]) => ({ name, stats, path: join(layer, rel, name) })),
  );
}

/**
 * Runs `use` on the kernel's overlay of `stack`, mounted by a process in its own mount namespace and reached through
 * /proc/<pid>/root. A read-only overlay needs two lower layers at least, hence the empty one at the bottom.
 * Rootless, in a user namespace of its own too (as a sandbox mounts its layers), where the layers are root's.
 */
async function withKernelMount<T>(stack: string[], use: (root: string) => Promise<T>): Promise<T> {
  const point = mkdtempSync(join(tmp, 'mnt-'));
  const empty = mkdtempSync(join(tmp, 'empty-'));
  const script = 'mount -t overlay -o "userxattr,lowerdir=$1" overlay "$2" && echo mounted && exec sleep 600';
  const child = spawn('unshare', [...(ROOTLESS ? ['--map-root-user'] : []), '-m', 'sh', '-c', script, 'sh', [...stack, empty].join(':'), point], { stdio: ['ignore', 'pipe', 'pipe'] });
  try {
    await new Promise<void>((resolve, reject) => {
      let stderr = '';
      child.stderr.on('data', (data: Buffer) => (stderr += data.toString()));
      child.stdout.once('data', () => resolve());
      child.once('exit', (code) => reject(new Error(`mounting the overlay failed (${code}): ${stderr}`)));
    });
    return await use(`/proc/${child.pid}/root${point}`);
  } finally {
    child.kill('SIGKILL');
  }
}

/**
 * The view as the kernel shows it. The kernel reads a directory that only one layer contributes to straight from
 * that layer, so its readdir lists a whiteout there that its lookup then hides: such ghosts (lstat ENOENT) are left out.
 */
function kernelView(stack: string[]): Promise<View> {
  return withKernelMount(stack, (root) =>
    snapshot(async (rel) => {
      const entries = await Promise.all(
        (await readdir(join(root, rel))).map(async (name) => {
          const path = join(root, rel, name);
          const stats = await lstat(path).catch((error: NodeJS.ErrnoException) => {
            if (error.code === 'ENOENT') return null;
            throw error;
          });
          return { name, stats, path };
        }),
      );
      return entries.filter((entry): entry is { name: string; stats: Stats; path: string } => entry.stats !== null);
    }),
  );
}

/** A view with what squash never carries taken out: fifos, sockets and devices, and setuid/setgid bits. */
function carried(view: View): View {
  return Object.fromEntries(
    Object.entries(view)
      .filter(([, entry]) => ['dir', 'file', 'symlink'].includes(entry.type))
      .map(([path, entry]) => [path, { ...entry, mode: entry.mode & 0o1777 }]),
  );
}

/** A view without setuid/setgid bits (squash with move strips them on the inode src shares with dst). */
function withoutSetid(view: View): View {
  return Object.fromEntries(Object.entries(view).map(([path, entry]) => [path, { ...entry, mode: entry.mode & 0o1777 }]));
}

function sorted<T>(record: Record<string, T>): Record<string, T> {
  return Object.fromEntries(Object.entries(record).sort(([a], [b]) => compare(a, b)));
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Every path of one layer directory, whiteouts included. */
function layerPaths(root: string, rel = ''): string[] {
  return readdirSync(join(root, rel)).flatMap((name) => {
    const child = rel === '' ? name : `${rel}/${name}`;
    return lstatSync(join(root, child)).isDirectory() ? [child, ...layerPaths(root, child)] : [child];
  });
}

function lstatOrNull(path: string): Stats | null {
  try {
    return lstatSync(path);
  } catch {
    return null;
  }
}

/**
 * The changes between two kernel views, by the rules diffViews follows (every non-directory's mtime is unique).
 * `replaced`: the directories of both views that no longer merge with the one before (see {@link replacedDirs}).
 */
function expectedChanges(before: View, after: View, replaced: Set<string>): Change[] {
  const paths = [...new Set([...Object.keys(before), ...Object.keys(after)])].sort(compare);
  return paths.flatMap((path): Change[] => {
    const old = before[path];
    const now = after[path];
    if (!old) return [{ path, kind: 'added' }];
    if (!now) return [{ path, kind: 'deleted' }];
    if (old.type !== now.type || (now.type !== 'dir' && !isDeepStrictEqual(old, now))) return [{ path, kind: 'modified' }];
    if (replaced.has(path)) return [{ path, kind: 'modified', replaced: true }];
    if (old.mode !== now.mode) return [{ path, kind: 'modified' }];
    return [];
  });
}

/**
 * Which directories of the view `[...changed, ...before]` that `before` also has no longer merge with `before`'s, as
 * the kernel decides it: a layer slipped in just above `before` puts a marker file into each of `before`'s
 * directories (a plain directory there merges with `before`'s and changes nothing else); a directory of the whole
 * view that does not show its marker has stopped merging above it.
 */
async function replacedDirs(changed: string[], before: string[], beforeView: View): Promise<Set<string>> {
  const MARKER = 'zb-test-marker';
  const dirs = Object.keys(beforeView).filter((path) => beforeView[path]!.type === 'dir');
  const markers = build(Object.fromEntries([MARKER, ...dirs.map((path) => `${path}/${MARKER}`)].map((path) => [path, 'm'])));
  const view = await kernelView([...changed, markers, ...before]);
  return new Set(dirs.filter((path) => view[path]?.type === 'dir' && !view[`${path}/${MARKER}`]));
}

// ---- the checks every scenario goes through ----

/** lookup and readMergedDir agree with the kernel, on every path any layer mentions. */
async function checkLookup(layers: LayerSpec[]): Promise<void> {
  const stack = buildAll(layers);
  const kernel = await kernelView(stack);
  expect(await engineView(stack)).toEqual(kernel);
  const paths = new Set([...Object.keys(kernel), ...stack.flatMap((layer) => layerPaths(layer))]);
  for (const path of paths) {
    const stats = await lookup(stack, path);
    const entry = kernel[path];
    expect(stats && { type: typeOf(stats), mode: stats.mode & 0o7777 }, path).toEqual(entry ? { type: entry.type, mode: entry.mode } : null);
  }
}

/** squash turns [src, dst, ...below] into [dst, ...below] with the same view, minus what is never carried. */
async function checkSquash(layers: LayerSpec[], move: boolean): Promise<{ src: string; dst: string; bytesDelta: number }> {
  const [src, dst, ...below] = buildAll(layers) as [string, string, ...string[]];
  const expected = carried(await kernelView([src, dst, ...below]));
  const bytesBefore = await layerBytes(dst);
  const hidden = await hiddenBytes(src, dst);
  const entriesBefore = layerPaths(dst).map((rel) => ({ rel, stats: lstatSync(join(dst, rel), { bigint: true }) }));
  const { bytesDelta } = await squash(src, dst, below, { move, uid: UID, gid: GID });
  // hiddenBytes foretold what squash removed from dst: the entries no longer there as the same inode.
  const removed = entriesBefore.filter(({ rel, stats }) => {
    let now;
    try {
      now = lstatSync(join(dst, rel), { bigint: true });
    } catch {
      return true; // gone, or a parent is no longer a directory
    }
    return now.ino !== stats.ino || now.birthtimeNs !== stats.birthtimeNs; // inode numbers get reused
  });
  expect(hidden, removed.map(({ rel }) => rel).join()).toBe(removed.reduce((sum, { stats }) => sum + Number(stats.blocks) * 512, 0));
  const after = await kernelView([dst, ...below]);
  expect(after).toEqual(expected);
  expect(await engineView([dst, ...below])).toEqual(after);
  expect(bytesDelta).toBe((await layerBytes(dst)) - bytesBefore);
  for (const rel of layerPaths(src)) {
    const stats = lstatOrNull(join(dst, rel));
    if (stats === null) continue;
    expect({ rel, uid: stats.uid, gid: stats.gid, setid: stats.mode & 0o6000 }).toEqual({ rel, uid: UID, gid: GID, setid: 0 });
  }
  return { src, dst, bytesDelta };
}

/** diffViews between the view of the bottom layers and the whole stack, for every split. */
async function checkDiff(layers: LayerSpec[]): Promise<void> {
  const stack = buildAll(layers);
  const after = await kernelView(stack);
  for (let split = 1; split < stack.length; split++) {
    const before = await kernelView(stack.slice(split));
    const replaced = await replacedDirs(stack.slice(0, split), stack.slice(split), before);
    expect(await diffViews(stack.slice(0, split), stack.slice(split)), `changed: the top ${split}`).toEqual(expectedChanges(before, after, replaced));
  }
}

// ---- scenarios ----

const SCENARIOS: Record<string, LayerSpec[]> = {
  'deleting, re-creating and replacing': [
    { recreated: 'v3', 'dir-to-file': 'now a file', 'file-to-dir': dir(0o700), 'file-to-dir/inside': 'in', 'back-to-dir': opaque(), 'back-to-dir/again': 'again' },
    { recreated: whiteout, 'dir-to-file': whiteout, 'back-to-dir': 'was a file', 'merged/mid': 'mid' },
    { recreated: 'v1', 'dir-to-file/a': 'a', 'file-to-dir': 'a file', 'back-to-dir/old': 'old', 'merged/low': 'low', merged: dir(0o750) },
  ],
  'opaque directories and whiteouts of directories': [
    { o: opaque(), 'o/top': 'top', 'o/w': whiteout, gone: whiteout, 'merge/new': 'new', 'merge/deep': whiteout, 'over-wh': dir(), 'over-wh/top': 't' },
    { 'o/mid': 'mid', 'o/w': 'w', 'merge/mid': 'mid', 'over-wh': whiteout, 'over-file': 'file', 'mid-opaque': opaque(), 'mid-opaque/m': 'm' },
    { 'o/low': 'low', 'gone/deep/er/file': 'x', 'gone/f': 'f', 'merge/deep/x/y': 'y', 'over-wh/low': 'l', 'over-file/low': 'l', 'mid-opaque/low': 'l' },
  ],
  'a directory above a non-directory above a directory': [
    { d: dir(), 'd/top': 't', e: dir(), 'e/top': 't', s: dir(), 's/top': 't' },
    { d: 'a file', e: sym('/'), s: fifo },
    { 'd/low': 'l', 'e/low': 'l', 's/low': 'l' },
  ],
  'symlinks, odd entries and odd names': [
    {
      passwd: sym('/etc/passwd'),
      up: sym('..'),
      loop: sym('loop'),
      root: sym('/'),
      'a b': 'spaces',
      'new\nline': 'newline',
      'tab\tand\\backslash': 'x',
      '-dash': 'dash',
      ünï: 'unicode',
      'dir with space/f\nx': 'y',
      pipe: fifo,
      null: device,
      suid: file('#!/bin/sh\n', 0o4755),
      sgid: dir(0o2775),
      'sgid/f': file('f', 0o2711),
      sticky: dir(0o1777),
      one: 'linked',
      two: hardlink('one'),
    },
    { 'new\nline': 'old', pipe: 'old pipe', etc: sym('/etc'), 'up/x': 'hidden' },
    { 'etc/passwd': 'not the host one', null: 'old null', 'sticky/x': 'x' },
  ],
};

/** A random stack (its shape fixed by the seed): entries of every kind on the same few paths, so they collide. */
function randomLayers(seed: number, count: number): LayerSpec[] {
  let state = seed;
  const random = (): number => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const names = ['a', 'b', 'c'];
  const paths = names.flatMap((x) => [x, ...names.flatMap((y) => [`${x}/${y}`, ...names.map((z) => `${x}/${y}/${z}`)])]).sort(compare);
  return Array.from({ length: count }, (_, index) => {
    const spec: LayerSpec = {};
    for (const path of paths) {
      const parts = path.split('/');
      const parents = parts.slice(0, -1).map((_, i) => parts.slice(0, i + 1).join('/'));
      if (parents.some((parent) => parent in spec && !isDirEntry(spec[parent]!))) continue;
      const roll = random();
      if (roll < 0.4) continue;
      if (roll < 0.6) spec[path] = file(randomBytes(1 + Math.floor(random() * 40)), index === 0 && random() < 0.2 ? 0o4755 : random() < 0.5 ? 0o644 : 0o600);
      else if (roll < 0.72) spec[path] = dir(random() < 0.5 ? 0o755 : 0o700);
      else if (roll < 0.8) spec[path] = opaque();
      else if (roll < 0.92) spec[path] = whiteout;
      else if (roll < 0.97) spec[path] = sym(random() < 0.5 ? '/' : '../a');
      // Only the top layer has fifos and setuid files, which squash never carries: the same below would stay.
      else if (index === 0) spec[path] = fifo;
    }
    return spec;
  });
}

function isDirEntry(entry: Entry): boolean {
  return typeof entry === 'object' && 'dir' in entry;
}

/** Several scenarios side by side in one stack, each under its own top directory. */
function combine(scenarios: LayerSpec[][]): LayerSpec[] {
  const depth = Math.max(...scenarios.map((layers) => layers.length));
  return Array.from({ length: depth }, (_, i) =>
    Object.fromEntries(
      scenarios.flatMap((layers, k) =>
        Object.entries(layers[i] ?? {}).map(([rel, entry]) => [`s${k}/${rel}`, typeof entry === 'object' && 'hardlink' in entry ? hardlink(`s${k}/${entry.hardlink}`) : entry]),
      ),
    ),
  );
}

const RANDOM_SEEDS = Array.from({ length: 12 }, (_, i) => i + 1);

describe('lookup and readMergedDir see what the kernel sees', () => {
  test.each(Object.keys(SCENARIOS))('%s', async (name) => {
    await checkLookup(SCENARIOS[name]!);
  });

  test.each(RANDOM_SEEDS)('random stack %i', async (seed) => {
    await checkLookup(randomLayers(seed, 4));
  });

  test('whiteouts and opaque markers are read as the kernel writes them', async () => {
    const [layer] = buildAll([{ w: whiteout, o: opaque(), d: dir(), f: 'f' }]) as [string];
    expect(isWhiteout(lstatSync(join(layer, 'w')))).toBe(true);
    expect(isWhiteout(lstatSync(join(layer, 'f')))).toBe(false);
    expect(isOpaque(join(layer, 'o'))).toBe(true);
    expect(isOpaque(join(layer, 'd'))).toBe(false);
  });

  test('a whiteout in a directory only one layer has: the kernel lists it but cannot look it up; the engine hides it', async () => {
    const stack = buildAll([{ 'only-top/w': whiteout, 'only-top/f': 'f', o: opaque(), 'o/w': whiteout }, { 'o/w': 'w' }]);
    const listed = await withKernelMount(stack, async (root) =>
      Promise.all(['only-top', 'o'].map(async (rel) => [rel, (await readdir(join(root, rel))).sort(), await lstat(join(root, rel, 'w')).catch((error) => error.code)])),
    );
    expect(listed).toEqual([
      ['only-top', ['f', 'w'], 'ENOENT'],
      ['o', ['w'], 'ENOENT'],
    ]);
    expect([...(await readMergedDir(stack, 'only-top')).keys()]).toEqual(['f']);
    expect([...(await readMergedDir(stack, 'o')).keys()]).toEqual([]);
    expect(await lookup(stack, 'o/w')).toBeNull();
  });

  test('readMergedDir says ENOENT and ENOTDIR; paths never leave the view', async () => {
    const stack = buildAll([{ f: 'f', s: sym('/etc'), w: whiteout }, { w: dir(), 'w/x': 'x' }]);
    await expect(readMergedDir(stack, 'missing')).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(readMergedDir(stack, 'w')).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(readMergedDir(stack, 'f')).rejects.toMatchObject({ code: 'ENOTDIR' });
    await expect(readMergedDir(stack, 's')).rejects.toMatchObject({ code: 'ENOTDIR' });
    expect(await lookup(stack, 's/passwd')).toBeNull();
    expect(await lookup(stack, 'w/x')).toBeNull();
    for (const rel of ['/etc', '../x', 'a/../b', 'a//b', './a']) {
      await expect(lookup(stack, rel)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    }
  });
});

describe('squash leaves the view as it was, one layer fewer', () => {
  for (const move of [false, true]) {
    const mode = move ? 'move' : 'copy';
    test.each(Object.keys(SCENARIOS))(`${mode}: %s`, async (name) => {
      await checkSquash(SCENARIOS[name]!, move);
    });

    test.each(RANDOM_SEEDS)(`${mode}: random stack %i`, async (seed) => {
      await checkSquash(randomLayers(seed, 4), move);
    });
  }

  test('setuid and setgid are stripped, owners set, fifos and devices end up absent', async () => {
    for (const move of [false, true]) {
      const [src, dst, base] = buildAll([
        { suid: file('x', 0o4755), sgid: dir(0o2775), 'sgid/f': file('f', 0o6711), sticky: dir(0o1777), pipe: fifo, null: device, o: opaque(), 'o/pipe': fifo },
        { pipe: 'old' },
        { null: 'base', 'o/pipe': 'base' },
      ]) as [string, string, string];
      await squash(src, dst, [base], { move, uid: UID, gid: GID });
      const modes = Object.fromEntries(['suid', 'sgid', 'sgid/f', 'sticky'].map((rel) => [rel, lstatSync(join(dst, rel)).mode & 0o7777]));
      expect(modes).toEqual({ suid: 0o755, sgid: 0o775, 'sgid/f': 0o711, sticky: 0o1777 });
      expect(lstatSync(join(dst, 'suid'))).toMatchObject({ uid: UID, gid: GID });
      expect(lstatOrNull(join(dst, 'pipe'))).toBeNull();
      // A device drops out, leaving a whiteout over the base's file; rootless there is no device (see build).
      if (!ROOTLESS) expect(isWhiteout(lstatSync(join(dst, 'null')))).toBe(true);
      expect(readdirSync(join(dst, 'o'))).toEqual([]);
      expect(isOpaque(join(dst, 'o'))).toBe(true);
    }
  });

  test('hardlinks become separate files; move links a single-link file instead of copying it', async () => {
    for (const move of [false, true]) {
      const [src, dst, base] = buildAll([{ one: 'shared', two: hardlink('one'), single: 'single' }, {}, {}]) as [string, string, string];
      await squash(src, dst, [base], { move, uid: UID, gid: GID });
      const ino = (rel: string, layer = dst): number => lstatSync(join(layer, rel)).ino;
      expect(ino('one')).not.toBe(ino('two'));
      expect(ino('one')).not.toBe(ino('one', src));
      expect(readFileSync(join(dst, 'two'), 'utf8')).toBe('shared');
      expect(ino('single') === ino('single', src)).toBe(move);
    }
  });

  test('a 20 MB file arrives byte for byte, and bytesDelta counts it', async () => {
    const big = randomBytes(20 * 1024 * 1024);
    const digest = createHash('sha256').update(big).digest('hex');
    for (const move of [false, true]) {
      const layers: LayerSpec[] = [{ 'data/big': file(big) }, { 'data/big': 'small', 'data/other': 'x' }, { 'data/base': 'b' }];
      const { dst, bytesDelta } = await checkSquash(layers, move);
      expect(createHash('sha256').update(readFileSync(join(dst, 'data/big'))).digest('hex')).toBe(digest);
      expect(bytesDelta).toBeGreaterThanOrEqual(big.length - 4096);
    }
  });

  test('skip leaves a path and its subtree out', async () => {
    const [src, dst, base] = buildAll([{ keep: 'new', skipped: 'new', 'skipped-dir/x': 'new', 'd/skipped': whiteout }, { skipped: 'old', 'd/skipped': 'old' }, {}]) as [string, string, string];
    await squash(src, dst, [base], { move: false, uid: UID, gid: GID, skip: (rel) => rel.startsWith('skipped') || rel === 'd/skipped' });
    expect(await engineView([dst, base])).toMatchObject({ keep: { type: 'file' }, skipped: { size: 3 }, 'd/skipped': { size: 3 } });
    expect(lstatOrNull(join(dst, 'skipped-dir'))).toBeNull();
  });

  // Stops squash at every entry in turn (skip throws, as a crash would stop it) and checks each time that the view
  // with src still on top has not changed, then that squashing again finishes the job.
  const CRASH_LAYERS = combine(Object.values(SCENARIOS));
  for (const move of [false, true]) {
    test(`${move ? 'move' : 'copy'}: stopped after any number of entries, the view is unchanged; squashing again finishes`, { timeout: 240_000 }, async () => {
      let entries = 0;
      const [src0, dst0, ...below0] = buildAll(CRASH_LAYERS) as [string, string, ...string[]];
      const counting = (): boolean => {
        entries++;
        return false;
      };
      await squash(src0, dst0, below0, { move, uid: UID, gid: GID, skip: counting });
      expect(entries).toBeGreaterThan(20);
      for (let stopAt = 0; stopAt < entries; stopAt++) {
        const [src, dst, ...below] = buildAll(CRASH_LAYERS) as [string, string, ...string[]];
        const original = await kernelView([src, dst, ...below]);
        let calls = 0;
        const crashing = (): boolean => {
          if (calls++ === stopAt) throw new Error('crash');
          return false;
        };
        await expect(squash(src, dst, below, { move, uid: UID, gid: GID, skip: crashing })).rejects.toThrow('crash');
        expect(withoutSetid(await kernelView([src, dst, ...below])), `stopped before entry ${stopAt}`).toEqual(withoutSetid(original));
        await squash(src, dst, below, { move, uid: UID, gid: GID });
        expect(await kernelView([dst, ...below]), `finished after stopping before entry ${stopAt}`).toEqual(carried(original));
      }
    });
  }
});

test('layerBytes counts what du counts', async () => {
  const [layer] = buildAll([{ big: file(randomBytes(300_000)), small: 'x', 'd/e/f': file(randomBytes(5000)), link: hardlink('big'), s: sym('x'.repeat(300)), w: whiteout }]) as [string];
  const du = Number(execFileSync('du', ['-s', '-B1', layer], { encoding: 'utf8' }).split('\t')[0]);
  expect(await layerBytes(layer)).toBe(du);
});

describe('diffViews reports what differs between the kernel views', () => {
  test.each(Object.keys(SCENARIOS))('%s', async (name) => {
    await checkDiff(SCENARIOS[name]!);
  });

  test.each(RANDOM_SEEDS)('random stack %i', async (seed) => {
    await checkDiff(randomLayers(seed, 4));
  });

  test('a deleted directory reports everything under it, an added one everything under it, copy-ups of parents nothing, a new mode of a directory a change', async () => {
    const [top, base] = buildAll([
      { old: whiteout, new: dir(), 'new/a/b': 'b', 'parent/changed': 'changed', same: dir(0o700) },
      { 'old/x/y': 'y', 'old/z': 'z', 'parent/changed': 'before', 'parent/untouched': 'u', same: dir() },
    ]) as [string, string];
    expect(await diffViews([top], [base])).toEqual([
      { path: 'new', kind: 'added' },
      { path: 'new/a', kind: 'added' },
      { path: 'new/a/b', kind: 'added' },
      { path: 'old', kind: 'deleted' },
      { path: 'old/x', kind: 'deleted' },
      { path: 'old/x/y', kind: 'deleted' },
      { path: 'old/z', kind: 'deleted' },
      { path: 'parent/changed', kind: 'modified' },
      { path: 'same', kind: 'modified' }, // its mode changed (0755 to 0700)
    ]);
  });
});

test('findConflicts: both changed differently, or one removed a directory the other changed inside', async () => {
  const [base, sideA, sideB] = buildAll([
    {
      same: 'x', 'dir/a': 'a', gone: 'g', 'tree/x/y': 'y', f: 'f', link: sym('t1'), mode: file('m', 0o644),
      'dir3/a': 'a', 'kept/k': 'k', 'both-deleted-dir/x': 'x', 'file-to-dir': 'f',
    },
    {
      same: 'new', 'both-added': 'one', 'both-equal': 'eq', gone: whiteout, tree: whiteout, link: sym('t2'), mode: file('m', 0o755),
      f: 'a-version', 'dir/c': 'c', 'only-a': 'a', dir3: 'now a file', 'both-deleted-dir': whiteout, 'file-to-dir': 'changed',
    },
    {
      same: 'new', 'both-added': 'two', 'both-equal': 'eq', gone: whiteout, 'tree/x/z': 'added inside', 'tree/x/y': whiteout, link: sym('t2'),
      mode: file('m', 0o644), f: 'b-version', 'dir/d': 'd', 'only-b': 'b', 'dir3/a': 'changed', 'both-deleted-dir': whiteout,
      'file-to-dir': dir(), 'file-to-dir/x': 'x',
    },
  ]) as [string, string, string];
  const a = { changes: await diffViews([sideA], [base]), view: [sideA, base] };
  const b = { changes: await diffViews([sideB], [base]), view: [sideB, base] };
  expect(await findConflicts(a, b)).toEqual(['both-added', 'dir3', 'dir3/a', 'f', 'file-to-dir', 'mode', 'tree', 'tree/x']);
  expect(await findConflicts(b, a)).toEqual(await findConflicts(a, b));
});

test('a replaced directory (rm -r, then mkdir: opaque) conflicts with changes under it on the other side', async () => {
  const [base, replacer, adder, otherReplacer] = buildAll([
    { 'src/a': 'a', 'src/b': 'b', 'keep/k': 'k' },
    { src: opaque(), 'src/new': 'new' },
    { 'src/c': 'added by the other side', 'keep/d': 'd' },
    { src: opaque() },
  ]) as [string, string, string, string];
  const replaced = { changes: await diffViews([replacer], [base]), view: [replacer, base] };
  expect(replaced.changes).toEqual([
    { path: 'src', kind: 'modified', replaced: true },
    { path: 'src/a', kind: 'deleted' },
    { path: 'src/b', kind: 'deleted' },
    { path: 'src/new', kind: 'added' },
  ]);
  const added = { changes: await diffViews([adder], [base]), view: [adder, base] };
  expect(await findConflicts(replaced, added)).toEqual(['src']);
  expect(await findConflicts(added, replaced)).toEqual(['src']);
  // Both replaced it, and only one put something in: the other's version would drop it.
  const emptied = { changes: await diffViews([otherReplacer], [base]), view: [otherReplacer, base] };
  expect(await findConflicts(replaced, emptied)).toEqual(['src']);
  // Deletions under a replaced directory agree with it.
  const [deleter] = buildAll([{ 'src/a': whiteout }]) as [string];
  expect(await findConflicts(replaced, { changes: await diffViews([deleter], [base]), view: [deleter, base] })).toEqual([]);
});

test('attack: a layer changed while it is squashed (a directory or the file itself swapped for a symlink to the host) fails the squash, never copies a host file', async () => {
  const outside = join(tmp, 'outside');
  mkdirSync(outside);
  const canary = `canary-${randomBytes(8).toString('hex')}`;
  writeFileSync(join(outside, 'f'), canary);
  const swaps: Record<string, (src: string) => void> = {
    'a parent directory': (src) => {
      renameSync(join(src, 'd'), join(src, 'd-moved'));
      symlinkSync(outside, join(src, 'd'));
    },
    'the file itself': (src) => {
      rmSync(join(src, 'd/f'));
      symlinkSync(join(outside, 'f'), join(src, 'd/f'));
    },
  };
  for (const [what, swap] of Object.entries(swaps)) {
    for (const move of [false, true]) {
      const [src, dst, base] = buildAll([{ 'd/f': 'sandbox data' }, {}, {}]) as [string, string, string];
      // skip() is called for each entry after it was listed and lstat'ed, before it is applied: the race's window.
      const skip = (rel: string) => {
        if (rel === 'd/f') swap(src);
        return false;
      };
      await expect(squash(src, dst, [base], { move, uid: UID, gid: GID, skip }), `${what}, move ${move}`).rejects.toThrow();
      const copied = layerPaths(dst).filter((rel) => lstatSync(join(dst, rel)).isFile()).map((rel) => readFileSync(join(dst, rel), 'utf8'));
      expect(copied.join(), `${what}, move ${move}`).not.toContain(canary);
      expect(layerPaths(dst).some((rel) => lstatSync(join(dst, rel)).isSymbolicLink() && readlinkSync(join(dst, rel)).startsWith(outside))).toBe(false);
    }
  }
});

test('symlinks to host paths and loops are carried as symlinks: nothing outside the layers is read or changed', async () => {
  const outside = join(tmp, 'outside');
  mkdirSync(outside);
  const secret = join(outside, 'secret');
  const canary = `canary-${randomBytes(8).toString('hex')}`;
  writeFileSync(secret, canary);
  // relatime updates atime on a read when atime is older than mtime: set it so, and any read of the canary shows.
  utimesSync(secret, 1000, Date.now() / 1000);
  const host = (): unknown => [outside, secret, '/etc/passwd', '/etc'].map((path) => {
    const { atimeMs, mtimeMs, ctimeMs, uid, gid, mode } = lstatSync(path);
    return { path, atimeMs: path === secret ? atimeMs : 0, mtimeMs, ctimeMs, uid, gid, mode, names: lstatSync(path).isDirectory() ? readdirSync(path).sort() : [] };
  });
  const hostBefore = host();
  const passwd = readFileSync('/etc/passwd', 'utf8');

  for (const move of [false, true]) {
    const layers: LayerSpec[] = [
      {
        passwd: sym('/etc/passwd'), secret: sym(secret), out: dir(), 'out/planted': 'planted', up: sym('..'), loop: sym('loop'), root: sym('/'),
        'over-link': 'data', b: dir(), 'b/secret': whiteout, etc: sym('/etc'), 'deep/er': sym('../../../../../../etc'),
      },
      { out: sym(outside), 'over-link': sym(secret), passwd: 'old', 'deep/er/passwd': 'x' },
      { b: sym(outside), 'etc/passwd': 'base passwd', 'up/x': 'x', 'secret/x': 'x' },
    ];
    await checkLookup(layers);
    await checkDiff(layers);
    await checkSquash(layers, move);
    const [src, dst, base] = buildAll(layers) as [string, string, string];
    expect(await readMergedDir([src, dst, base], 'out')).toHaveProperty('size', 1);
    await expect(readMergedDir([src, dst, base], 'root')).rejects.toMatchObject({ code: 'ENOTDIR' });
    await squash(src, dst, [base], { move, uid: UID, gid: GID });
    for (const [rel, target] of [['passwd', '/etc/passwd'], ['secret', secret], ['up', '..'], ['loop', 'loop'], ['root', '/'], ['etc', '/etc']]) {
      expect(readlinkSync(join(dst, rel!)), rel).toBe(target);
    }
    expect(lstatSync(join(dst, 'out')).isDirectory()).toBe(true);
    for (const rel of layerPaths(dst)) {
      const stats = lstatSync(join(dst, rel));
      if (!stats.isFile()) continue;
      const content = readFileSync(join(dst, rel), 'utf8');
      expect(content.includes(canary) || content === passwd, rel).toBe(false);
    }
  }
  expect(host()).toEqual(hostBefore);
  // The check means something: reading the canary does move its atime.
  readFileSync(secret);
  expect(statSync(secret).atimeMs).not.toBe(1_000_000);
});
