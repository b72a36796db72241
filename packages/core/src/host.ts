// What the SDK prepares on the host before any fork-server starts: a private state directory with the
// sandbox's /etc, and the facts about each runtime (where its install lives, so it can be bound read-only).
import { execFileSync } from 'node:child_process';
import { accessSync, constants, cpSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, realpathSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { ZerobootError } from './errors.js';

/** Host directories every sandbox sees, read-only, at the same path. Missing ones are skipped. */
export const SYSTEM_PATHS = ['/usr', '/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32'];

/** The clean environment of every fork-server, and so the base of every sandbox's environment. */
export const BASE_ENV: Readonly<Record<string, string>> = Object.freeze({
  PATH: '/usr/local/bin:/usr/bin:/bin',
  HOME: '/workspace',
  LANG: 'C.UTF-8',
  USER: 'sandbox',
  LOGNAME: 'sandbox',
});

/**
 * Host /etc entries a sandbox may read: what the dynamic linker, locales, time zones, TLS roots and the
 * usual command-line tools look for. Copied, never bound, so that nothing else of the host's /etc
 * (shadow, users, keys, configuration with secrets) is reachable.
 */
const ETC_ALLOWED = [
  'ld.so.cache', 'ld.so.conf', 'ld.so.conf.d', 'localtime', 'timezone', 'mime.types', 'protocols', 'services',
  'os-release', 'debian_version', 'alternatives', 'ssl', 'ca-certificates', 'ca-certificates.conf', 'magic',
  'magic.mime', 'locale.alias', 'inputrc', 'shells',
  // Not environment, profile or bash.bashrc: where administrators put proxy credentials and tokens.
];

export interface StateDir {
  path: string;
  etcDir: string;
  remove(): void;
}

/** Whether the SDK runs rootless: as a user other than root, its sandboxes run as that user (userns.c). */
export function isRootless(): boolean {
  return process.getuid?.() !== 0;
}

export function createStateDir(): StateDir {
  const parent = stateParent();
  sweepStale(parent);
  const path = mkdtempSync(join(parent, `${process.pid}-${pidNamespace()}-`));
  const etcDir = join(path, 'etc');
  mkdirSync(etcDir, { mode: 0o755 });
  writeEtc(etcDir);
  return {
    path,
    etcDir,
    remove: () => rmSync(path, { recursive: true, force: true }),
  };
}

function stateParent(): string {
  const tmp = process.env.TMPDIR ?? '/tmp';
  if (!isRootless()) {
    const parent = existsSync('/run') ? '/run/zeroboot' : join(tmp, 'zeroboot');
    mkdirSync(parent, { recursive: true, mode: 0o755 });
    return parent;
  }
  // Rootless, a directory of the user's own: in a shared /tmp another user could have made it first, and
  // the state directory becomes every sandbox's /etc. XDG_RUNTIME_DIR (systemd's /run/user/<uid>) is ours.
  const runtimeDir = process.env.XDG_RUNTIME_DIR;
  const wanted = runtimeDir?.startsWith('/') ? join(runtimeDir, 'zeroboot') : join(tmp, `zeroboot-${process.getuid?.()}`);
  const parent = privateDirectory(wanted);
  if (!parent) {
    throw new ZerobootError('SANDBOX_SETUP_FAILED', `${wanted} must be a directory owned by uid ${process.getuid?.()} that no other user can write, for zeroboot's state: remove it, or point XDG_RUNTIME_DIR or TMPDIR at a directory of your own.`);
  }
  return parent;
}

function writeEtc(etcDir: string): void {
  const files: Record<string, string> = {
    passwd: 'root:x:0:0:root:/root:/usr/sbin/nologin\nsandbox:x:1000:1000:sandbox:/workspace:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n',
    group: 'root:x:0:\nsandbox:x:1000:\nnogroup:x:65534:\n',
    hosts: '127.0.0.1\tlocalhost\n::1\tlocalhost\n127.0.1.1\tsandbox\n',
    hostname: 'sandbox\n',
    'nsswitch.conf': 'passwd: files\ngroup: files\nshadow: files\nhosts: files\nnetworks: files\nprotocols: files\nservices: files\n',
    'resolv.conf': '# no network in a zeroboot sandbox\n',
  };
  for (const [name, content] of Object.entries(files)) writeFileSync(join(etcDir, name), content, { mode: 0o644 });
  for (const name of ETC_ALLOWED) {
    const source = join('/etc', name);
    try {
      cpSync(source, join(etcDir, name), {
        recursive: true,
        verbatimSymlinks: true,
        dereference: false,
        errorOnExist: false,
        filter: (path) => !path.startsWith('/etc/ssl/private'), // TLS private keys: never, not even unreadable
      });
    } catch {
      // absent or unreadable on this host: programs do without it
    }
  }
}

/**
 * `path`, made 0700 if missing, when it is a real directory (no symlink) owned by us that no one else may
 * write: checked after the mkdir, since another user could have made it first in a world-writable parent.
 * Undefined when it is not.
 */
export function privateDirectory(path: string): string | undefined {
  try {
    mkdirSync(path, { mode: 0o700 });
  } catch {
    // exists: checked below
  }
  try {
    const st = lstatSync(path);
    if (st.isDirectory() && st.uid === process.getuid?.() && (st.mode & 0o022) === 0) return path;
  } catch {
    // unusable
  }
  return undefined;
}

/** The inode of our pid namespace: a pid means something only within its namespace. */
function pidNamespace(): string {
  try {
    return /\[(\d+)\]/.exec(readlinkSync('/proc/self/ns/pid'))?.[1] ?? '0';
  } catch {
    return '0';
  }
}

/**
 * State directories of SDK processes that died without cleaning up (SIGKILL): remove them. Only those of
 * our own pid namespace: an SDK in another one (a container sharing /run) may be alive with a pid we
 * cannot see.
 */
export function sweepStale(parent: string): void {
  const ownNamespace = pidNamespace();
  for (const entry of safeReaddir(parent)) {
    const [pidText, namespace] = entry.split('-');
    const pid = Number.parseInt(pidText ?? '', 10);
    if (namespace === ownNamespace && Number.isInteger(pid) && pid !== process.pid && !processAlive(pid)) {
      rmSync(join(parent, entry), { recursive: true, force: true });
    }
  }
  sweepStaleCgroups();
}

/** Empty cgroup slots left by fork-servers of dead SDK processes (zeroboot-<sdkpid>-<template>-<pid>). */
function sweepStaleCgroups(): void {
  let own: string[];
  try {
    own = readFileSync('/proc/self/cgroup', 'utf8').split('\n');
  } catch {
    return;
  }
  for (const line of own) {
    const [, controllers, path] = line.split(':');
    if (path === undefined) continue;
    const roots = controllers === '' ? ['/sys/fs/cgroup', '/sys/fs/cgroup/unified'] : controllers!.split(',').filter((c) => c === 'memory' || c === 'pids').map((c) => `/sys/fs/cgroup/${c}`);
    for (const root of roots) {
      const dir = join(root, path);
      for (const entry of safeReaddir(dir)) {
        const match = /^zeroboot-(\d+)-/.exec(entry);
        if (!match || processAlive(Number(match[1]))) continue;
        const stale = join(dir, entry);
        for (const slot of safeReaddir(stale)) if (/^s\d+$/.test(slot)) rmdirQuiet(join(stale, slot));
        rmdirQuiet(stale);
      }
    }
  }
}

function rmdirQuiet(path: string): void {
  try {
    rmdirSync(path); // cgroup directories go with rmdir(2) alone, once empty of processes
  } catch {
    // still busy, or already gone
  }
}

function safeReaddir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export interface PythonInstall {
  executable: string;
  version: string;
  /** Install prefixes outside the system paths (e.g. a pyenv tree) that sandboxes need read-only. */
  extraPaths: string[];
}

const pythonCache = new Map<string, PythonInstall>();
/** Never bound into a sandbox, nor any directory above them. */
const UNSAFE_PREFIXES = ['/etc', '/root', '/home', '/run', '/var', '/tmp', '/proc', '/sys', '/dev', '/boot', '/srv', '/mnt', '/media', '/opt'];

/** Resolves `python3` (through shims such as pyenv's) to the real interpreter and its install prefixes. */
export function findPython(command = 'python3'): PythonInstall {
  const cached = pythonCache.get(command);
  if (cached) return cached;
  let output: string;
  try {
    output = execFileSync(command, ['-c', 'import sys, json; print(json.dumps([sys.executable, sys.prefix, sys.base_prefix, sys.exec_prefix, "%d.%d.%d" % sys.version_info[:3]]))'], {
      encoding: 'utf8',
      timeout: 15_000,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  } catch (cause) {
    throw new ZerobootError('UNKNOWN_RUNTIME', `No Python interpreter found as \`${command}\`: install python3 (apt-get install python3) or set \`templates.python.executable\`.`, { cause });
  }
  const [executable, ...prefixes] = JSON.parse(output.trim()) as string[];
  const version = prefixes.pop()!;
  const extraPaths = [...new Set(prefixes)].filter((p) => !SYSTEM_PATHS.some((s) => p === s || p.startsWith(`${s}/`)));
  for (const path of extraPaths) {
    // Bound read-only into every sandbox: an install prefix, never / or a tree that holds host secrets.
    if (!path.startsWith('/') || path.split('/').filter(Boolean).length < 2 || UNSAFE_PREFIXES.some((u) => path === u || u.startsWith(`${path}/`))) {
      throw new ZerobootError('INVALID_ARGUMENT', `The Python at \`${command}\` reports its install prefix as ${path}, which would expose host files to every sandbox: use an interpreter installed in its own directory (e.g. /usr or /opt/python).`);
    }
  }
  const install = { executable: executable!, version, extraPaths };
  pythonCache.set(command, install);
  return install;
}

export interface NodeInstall {
  executable: string;
  /** [major, minor] */
  version: [number, number];
}

const nodeCache = new Map<string, NodeInstall>();

/** Resolves a Node binary to its real path and version; the default is the SDK's own Node. */
export function findNode(command?: string): NodeInstall {
  const key = command ?? process.execPath;
  const cached = nodeCache.get(key);
  if (cached) return cached;
  let executable: string;
  let versionText: string;
  if (command === undefined || command === process.execPath) {
    executable = realpathSync(process.execPath);
    versionText = process.versions.node;
  } else {
    try {
      [executable, versionText] = JSON.parse(
        execFileSync(command, ['-p', 'JSON.stringify([require("fs").realpathSync(process.execPath), process.versions.node])'], {
          encoding: 'utf8',
          timeout: 15_000,
          stdio: ['ignore', 'pipe', 'pipe'],
          env: { PATH: process.env.PATH ?? BASE_ENV.PATH },
        }).trim(),
      ) as [string, string];
    } catch (cause) {
      throw new ZerobootError('UNKNOWN_RUNTIME', `No Node.js found as \`${command}\`: install Node.js 22 or later, or leave \`templates.node.executable\` unset to use the SDK's own Node.`, { cause });
    }
  }
  const [major = 0, minor = 0] = versionText.split('.').map(Number);
  if (major < 22) {
    throw new ZerobootError('UNKNOWN_RUNTIME', `The Node.js at \`${executable}\` is ${versionText}; the node template needs 22 or later (V8's --single-threaded, --disable-sigusr1). Leave \`templates.node.executable\` unset to use the SDK's own Node (${process.version}).`);
  }
  const install: NodeInstall = { executable, version: [major, minor] };
  nodeCache.set(key, install);
  return install;
}

/** The shell scripts run with: bash when present (as `sh -c` would be, with bash's features), else /bin/sh. */
export function findShell(command?: string): string {
  const candidates = command === undefined ? ['/bin/bash', '/usr/bin/bash', '/bin/sh'] : [command];
  for (const candidate of candidates) {
    if (!candidate.startsWith('/')) break;
    try {
      accessSync(candidate, constants.X_OK);
      return realpathSync(candidate);
    } catch {
      // try the next one
    }
  }
  throw new ZerobootError('UNKNOWN_RUNTIME', command === undefined ? 'No shell found at /bin/bash or /bin/sh: install bash (apt-get install bash).' : `\`templates.shell.executable\` must be the absolute path of an executable shell, got ${JSON.stringify(command)}.`);
}
