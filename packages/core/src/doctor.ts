// `zeroboot doctor`: checks, from the outside, each kernel feature a sandbox is built from, and says how
// to get a missing one. Static checks read /proc and /sys; where a reading can lie (a container's seccomp
// profile, a sysctl that only bites unprivileged users) the check also tries the real thing in a child
// process. The last check starts a fork-server and runs code, and what that fork-server reports it
// actually applied (HELLO's feature bits) overrides the static guesses.
import { execFileSync } from 'node:child_process';
import { accessSync, constants as fsConstants, existsSync, readFileSync } from 'node:fs';
import { constants as osConstants, release } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';

import { addonPath } from '@zeroboot/native';

import { ZerobootError } from './errors.js';
import { findPython, isRootless, type PythonInstall } from './host.js';
import { native } from './native.js';
import { diagnoseRootless, errnoName, readText, readUserNamespaceSettings, SANDBOX_NAMESPACES, tryUnshare, USER_NAMESPACE } from './user-namespaces.js';
import { Zeroboot, type Enforcement } from './zeroboot.js';

export interface DoctorCheck {
  /** Stable, e.g. `'user namespaces'`. */
  name: string;
  ok: boolean;
  /** `error`: sandboxes cannot run without it. `warning`: they run, with less isolation or weaker limits. */
  severity: 'error' | 'warning';
  /** One line: what was found. */
  detail: string;
  /** One line: how to get it, for a check that is not ok. */
  fix?: string;
}

export interface DoctorReport {
  /** No check of severity `error` failed (warnings allowed). */
  ok: boolean;
  checks: DoctorCheck[];
  /** The end-to-end run, when it got that far. */
  endToEnd?: {
    startMs: number;
    runMs: number;
    /** `ForkServer.featureList()`: what the fork-server applies to every sandbox, e.g. `['cgroup_v2', 'seccomp']`. */
    features: string[];
  };
}

export interface DoctorOptions {
  /** Start a fork-server and run `print(1+1)` as the last check. Default: true. */
  endToEnd?: boolean;
}

const PROBE_TIMEOUT_MS = 10_000;

/** Runs every check; never throws for a failed check (that is what the report is for). */
export async function runDoctor(options: DoctorOptions = {}): Promise<DoctorReport> {
  const checks: DoctorCheck[] = [];
  const linux = process.platform === 'linux';
  checks.push(
    linux
      ? pass('linux', `Linux ${release()} (${process.arch})`)
      : fail('linux', 'error', `this is ${process.platform}`, 'zeroboot sandboxes are built from Linux namespaces, seccomp and cgroups: run it in a Linux VM or container'),
  );
  if (!linux) return report(checks);

  checks.push(
    isRootless()
      ? pass('privileges', `running as uid ${process.getuid?.()}: rootless mode, every sandbox runs as this uid on the host (weaker than as root: docs/security.md, "Rootless mode")`)
      : pass('privileges', 'running as root: each instance\'s sandboxes run as a host uid of their own (1000000 and up)'),
  );
  const addon = checkAddon();
  checks.push(addon);
  let python: PythonInstall | undefined;
  try {
    python = findPython('python3');
    checks.push(pass('python3', `${python.executable} (Python ${python.version})`));
  } catch {
    checks.push(fail('python3', 'error', 'no `python3` on PATH', 'install Python 3 (apt-get install python3) or put it on PATH'));
  }
  const config = kernelConfig();
  const ownSeccompMode = statusField('Seccomp');
  checks.push(checkUserNamespaces(python, ownSeccompMode));
  checks.push(checkNamespaces(python, ownSeccompMode));
  checks.push(checkSeccomp(config, ownSeccompMode));
  checks.push(checkLandlock(python, config));
  checks.push(checkCgroups());
  checks.push(checkOverlay());

  if (options.endToEnd === false) return report(checks);
  const blocker = checks.find((c) => !c.ok && ['native addon', 'python3'].includes(c.name));
  if (blocker) {
    checks.push(fail('end-to-end', 'error', `skipped: the ${blocker.name} check failed`, blocker.fix ?? 'fix the checks above'));
    return report(checks);
  }
  const endToEnd = await runEndToEnd(checks);
  return report(checks, endToEnd);
}

async function runEndToEnd(checks: DoctorCheck[]): Promise<DoctorReport['endToEnd']> {
  const name = 'end-to-end';
  let zb: Zeroboot | undefined;
  try {
    const startedAt = performance.now();
    zb = await Zeroboot.start({ templates: { python: { pool: 1 } } });
    const startMs = performance.now() - startedAt;
    const runAt = performance.now();
    const result = await zb.run('python', 'print(1+1)', { timeoutMs: 10_000 });
    const runMs = performance.now() - runAt;
    const features = zb.forkServer('python')!.featureList();
    if (result.exitCode !== 0 || result.stdout !== '2\n') {
      const got = result.exitCode === null ? `${result.outcome} (${result.signal})` : `exit ${result.exitCode}, stdout ${JSON.stringify(result.stdout)}`;
      checks.push(fail(name, 'error', `print(1+1) gave ${got}: ${result.stderr.trim().split('\n').at(-1) ?? ''}`, 'see the checks above; report a bug with this output if they all pass'));
      return undefined;
    }
    checks.push(pass(name, `fork-server up in ${startMs.toFixed(0)} ms; print(1+1) -> 2 in ${runMs.toFixed(1)} ms; features: ${features.join(', ') || 'none'}`));
    applyFeatures(checks, features);
    checks.push(limitsCheck(zb.enforcement));
    return { startMs, runMs, features };
  } catch (error) {
    const message = ZerobootError.isInstance(error) ? `${error.code}: ${error.message}` : String((error as Error)?.message ?? error);
    checks.push(fail(name, 'error', message, 'fix the missing checks above, then run `zeroboot doctor` again'));
    return undefined;
  } finally {
    await zb?.close();
  }
}

const MEMORY_HOW: Record<Enforcement['memory'], string> = {
  'cgroup-v2': 'per sandbox, by its cgroup v2 (killed past it: out-of-memory)',
  'cgroup-v1': 'per sandbox, by its cgroup v1 (killed past it: out-of-memory)',
  rlimit: 'per process, by RLIMIT_AS (allocations fail past it; a sandbox\'s processes together may use more)',
};

/** Which limit is enforced how, from what the fork-server applies: the words of `stats().enforcement`. */
function limitsCheck(enforcement: Enforcement): DoctorCheck {
  const processes = enforcement.processes === 'rlimit' ? 'RLIMIT_NPROC, per sandbox (its own user namespace)' : `pids.max of its ${enforcement.processes.replace('-', ' ')} and RLIMIT_NPROC`;
  return pass('limits', `${enforcement.mode}, sandboxes run as host uid ${enforcement.hostUid}; memoryMb: ${MEMORY_HOW[enforcement.memory]}; maxProcesses: ${processes}`, 'warning');
}

/** How to get per-sandbox cgroup limits: root needs a cgroup of its own; rootless, one delegated to the user. */
function cgroupFix(): string {
  return isRootless()
    ? 'rootless, cgroups are used only when a cgroup v2 subtree with memory and pids is delegated to this user: start the SDK in a leaf of one (systemd: systemd-run --user --scope -p Delegate=yes ...), or run it as root'
    : 'give zeroboot a cgroup of its own with memory and pids enabled (v2: systemd-run --scope -p Delegate=yes ..., so that its cgroup holds no other process)';
}

/** The fork-server knows what it managed to apply; where that differs from a static reading, it wins. */
function applyFeatures(checks: DoctorCheck[], features: string[]): void {
  const update = (name: string, ok: boolean, detail: string, fix: string) => {
    const check = checks.find((c) => c.name === name);
    if (!check || check.ok === ok) return;
    check.ok = ok;
    check.detail = detail;
    if (ok) delete check.fix;
    else check.fix = fix;
  };
  const cgroups = features.find((f) => f.startsWith('cgroup_'));
  update(
    'cgroups',
    cgroups !== undefined,
    cgroups ? `the fork-server uses ${cgroups.replace('cgroup_', 'cgroup ')}` : 'the fork-server could not set up cgroups and uses rlimits (RLIMIT_AS, RLIMIT_NPROC) instead',
    cgroupFix(),
  );
  update(
    'landlock',
    features.includes('landlock_scopes'),
    features.includes('landlock_scopes') ? 'the fork-server applies Landlock scopes' : 'the fork-server could not apply Landlock scopes',
    LANDLOCK_FIX,
  );
  update('seccomp', features.includes('seccomp'), features.includes('seccomp') ? 'the fork-server applies its seccomp filter' : 'the fork-server did not apply its seccomp filter', 'rebuild the kernel with CONFIG_SECCOMP_FILTER=y');
}

function checkAddon(): DoctorCheck {
  const name = 'native addon';
  const fix = 'run `pnpm build` in the zeroboot checkout (needs cmake, g++ and libseccomp-dev)';
  if (!existsSync(addonPath)) return fail(name, 'error', `${addonPath} does not exist`, fix);
  try {
    native();
    return pass(name, addonPath);
  } catch (error) {
    const cause = (error as { cause?: Error }).cause;
    return fail(name, 'error', `${addonPath} does not load: ${cause?.message ?? (error as Error).message}`.split('\n')[0]!, fix);
  }
}

function checkUserNamespaces(python: PythonInstall | undefined, ownSeccompMode: string | undefined): DoctorCheck {
  const name = 'user namespaces';
  const settings = readUserNamespaceSettings();
  const max = settings.maxUserNamespaces ?? '?';
  if (isRootless()) {
    // What Zeroboot.start checks before it starts anything, with the same words.
    const probe = tryUnshare(SANDBOX_NAMESPACES, python?.executable);
    const diagnosis = diagnoseRootless(settings, probe.ok === false ? probe.detail : probe.ok ? '' : undefined);
    if (diagnosis) return fail(name, 'error', diagnosis.detail, diagnosis.fix);
    return pass(name, probe.ok ? `unprivileged: created one with mount, pid and network namespaces in it (max_user_namespaces=${max})` : `unprivileged ones allowed by the settings (not tried: ${probe.detail})`);
  }
  if (!settings.supported) return fail(name, 'error', 'the kernel has no user namespaces', 'use a kernel built with CONFIG_USER_NS=y');
  if (settings.maxUserNamespaces === 0) return fail(name, 'error', 'user.max_user_namespaces is 0', 'sysctl -w user.max_user_namespaces=15000 (and persist it in /etc/sysctl.d/)');
  // Both sysctls only restrict unprivileged users: rootless mode, not this one.
  const notes: string[] = [];
  if (settings.unprivilegedClone === 0) notes.push('kernel.unprivileged_userns_clone=0');
  if (settings.apparmorRestricted === 1) notes.push('kernel.apparmor_restrict_unprivileged_userns=1');
  const restricted = notes.length > 0 ? `; unprivileged ones are restricted (${notes.join(', ')}), which only rootless mode minds` : '';
  const probe = tryUnshare(USER_NAMESPACE, python?.executable);
  if (probe.ok === undefined) return pass(name, `max_user_namespaces=${max} (not tried: ${probe.detail})${restricted}`);
  if (probe.ok) return pass(name, `created one (max_user_namespaces=${max})${restricted}`);
  const fix = ownSeccompMode === '2'
    ? "this process is under a seccomp filter (a container's profile?): run the container with --security-opt seccomp=unconfined --security-opt apparmor=unconfined, or --privileged"
    : 'allow unshare(CLONE_NEWUSER) for this process';
  return fail(name, 'error', `could not create one: ${probe.detail}`, fix);
}

function checkNamespaces(python: PythonInstall | undefined, ownSeccompMode: string | undefined): DoctorCheck {
  const name = 'namespaces';
  const kinds = { pid: 'CONFIG_PID_NS', net: 'CONFIG_NET_NS', mnt: 'mount namespaces', ipc: 'CONFIG_IPC_NS', uts: 'CONFIG_UTS_NS', cgroup: 'CONFIG_CGROUPS' } as const;
  const missing = Object.entries(kinds).filter(([kind]) => !existsSync(`/proc/self/ns/${kind}`));
  if (missing.length > 0) {
    return fail(name, 'error', `missing: ${missing.map(([kind]) => kind).join(', ')}`, `use a kernel built with ${missing.map(([, option]) => option).join(', ')}`);
  }
  const probe = tryUnshare(SANDBOX_NAMESPACES, python?.executable);
  const kindList = Object.keys(kinds).join(', ');
  if (probe.ok === false) {
    return fail(name, 'error', `${kindList} exist, but creating them failed: ${probe.detail}`, ownSeccompMode === '2' ? "this process is under a seccomp filter (a container's profile?): run the container with --security-opt seccomp=unconfined, or --privileged" : 'allow unshare(2) of these namespaces for this process');
  }
  return pass(name, probe.ok ? `${kindList}: created inside a user namespace` : `${kindList} (not tried: ${probe.detail})`);
}

function checkSeccomp(config: Map<string, string> | undefined, ownSeccompMode: string | undefined): DoctorCheck {
  const name = 'seccomp';
  if (ownSeccompMode === undefined) return fail(name, 'error', 'no Seccomp field in /proc/self/status: the kernel has no seccomp', 'use a kernel built with CONFIG_SECCOMP=y and CONFIG_SECCOMP_FILTER=y');
  const actions = readText('/proc/sys/kernel/seccomp/actions_avail')?.trim();
  const filter = actions !== undefined || config?.get('CONFIG_SECCOMP_FILTER') === 'y';
  if (!filter) return fail(name, 'error', 'seccomp filter mode (BPF) is not available', 'use a kernel built with CONFIG_SECCOMP_FILTER=y');
  const own = ownSeccompMode === '2' ? "; note: this process already runs under a filter (a container's profile?)" : '';
  return pass(name, `filter mode${actions ? ` (actions: ${actions})` : ''}${own}`);
}

const LANDLOCK_FIX = 'use Linux >= 6.12 with CONFIG_SECURITY_LANDLOCK=y and landlock in the lsm= boot parameter (or CONFIG_LSM)';

function checkLandlock(python: PythonInstall | undefined, config: Map<string, string> | undefined): DoctorCheck {
  const name = 'landlock';
  const without = 'without ABI 6 scopes nothing isolates the abstract unix sockets of sandboxes of one template from each other (they share the fork-server\'s network namespace)';
  const lsm = readText('/sys/kernel/security/lsm')?.trim();
  let abi: number | undefined;
  let detail = '';
  if (python) {
    // landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION) returns the ABI; 444 on every architecture.
    const code = 'import ctypes; libc = ctypes.CDLL(None, use_errno=True); libc.syscall.restype = ctypes.c_long; r = libc.syscall(444, None, ctypes.c_size_t(0), ctypes.c_uint32(1)); print(r if r >= 0 else -ctypes.get_errno())';
    try {
      const answer = Number(execFileSync(python.executable, ['-I', '-c', code], { encoding: 'utf8', timeout: PROBE_TIMEOUT_MS, stdio: ['ignore', 'pipe', 'ignore'] }).trim());
      if (answer > 0) abi = answer;
      else if (answer === -osConstants.errno.EOPNOTSUPP) detail = 'built into the kernel but not enabled at boot';
      else if (answer === -osConstants.errno.ENOSYS) detail = 'the kernel has no Landlock';
      else detail = `landlock_create_ruleset failed: ${errnoName(-answer)}`;
    } catch {
      detail = 'could not probe it';
    }
  }
  if (abi === undefined && !detail) {
    if (lsm !== undefined) detail = lsm.split(',').includes('landlock') ? 'enabled (ABI unknown)' : `not among the active LSMs (${lsm})`;
    else if (config?.get('CONFIG_SECURITY_LANDLOCK') !== 'y') detail = 'not in the kernel config';
    else detail = 'unknown';
  }
  if (abi !== undefined && abi >= 6) return pass(name, `ABI ${abi}: abstract unix sockets and signals are scoped per sandbox`, 'warning');
  return fail(name, 'warning', `${abi !== undefined ? `ABI ${abi} (scopes need 6)` : detail}; ${without}`, LANDLOCK_FIX);
}

function checkCgroups(): DoctorCheck {
  const name = 'cgroups';
  const fallback = 'rlimits are used instead: RLIMIT_AS per process for memoryMb, RLIMIT_NPROC per sandbox for maxProcesses';
  const own = readText('/proc/self/cgroup')?.trim().split('\n').map((line) => {
    const [id, controllers = '', path = '/'] = line.split(':');
    return { id, controllers: controllers.split(','), path };
  }) ?? [];
  const mounts = readMounts();
  const unified = own.find((c) => c.id === '0');
  const v2Mount = mounts.find((m) => m.fsType === 'cgroup2');
  const reasons: string[] = [];
  if (unified && v2Mount) {
    const dir = join(v2Mount.mountPoint, unified.path);
    const available = readText(join(dir, 'cgroup.controllers'))?.trim().split(/\s+/) ?? [];
    const lacking = ['memory', 'pids'].filter((c) => !available.includes(c));
    if (lacking.length === 0 && writable(dir)) return pass(name, `cgroup v2 at ${dir}, memory and pids available`, 'warning');
    reasons.push(lacking.length > 0 ? `v2: ${lacking.join(' and ')} not delegated to ${dir}` : `v2: ${dir} is not writable`);
  }
  const v1Dirs: string[] = [];
  for (const controller of ['memory', 'pids']) {
    const entry = own.find((c) => c.id !== '0' && c.controllers.includes(controller));
    const mount = mounts.find((m) => m.fsType === 'cgroup' && m.superOptions.split(',').includes(controller));
    if (!entry || !mount) {
      reasons.push(`v1: no ${controller} hierarchy mounted`);
      continue;
    }
    const dir = join(mount.mountPoint, entry.path);
    if (writable(dir)) v1Dirs.push(dir);
    else reasons.push(`v1: ${dir} is not writable`);
  }
  if (v1Dirs.length === 2) return pass(name, `cgroup v1 memory and pids at ${v1Dirs.join(', ')}`, 'warning');
  const fix = isRootless() ? cgroupFix() : 'mount cgroup2 read-write with memory and pids delegated (docker: --cgroupns=private, not a read-only /sys/fs/cgroup), or v1 memory and pids hierarchies';
  return fail(name, 'warning', `${reasons.join('; ') || 'no cgroup hierarchy found'}: ${fallback}`, fix);
}

function checkOverlay(): DoctorCheck {
  const found = (readText('/proc/filesystems') ?? '').split('\n').some((line) => line.trim().split(/\s+/).at(-1) === 'overlay');
  return found
    ? pass('overlayfs', 'available', 'warning')
    : fail('overlayfs', 'warning', 'not in /proc/filesystems; sandboxes do not need it today (their writable directories are tmpfs)', 'modprobe overlay (CONFIG_OVERLAY_FS)');
}

// --- readings ---

function pass(name: string, detail: string, severity: DoctorCheck['severity'] = 'error'): DoctorCheck {
  return { name, ok: true, severity, detail };
}

function fail(name: string, severity: DoctorCheck['severity'], detail: string, fix: string): DoctorCheck {
  return { name, ok: false, severity, detail, fix };
}

function report(checks: DoctorCheck[], endToEnd?: DoctorReport['endToEnd']): DoctorReport {
  const ok = checks.every((c) => c.ok || c.severity === 'warning');
  return endToEnd ? { ok, checks, endToEnd } : { ok, checks };
}

function statusField(field: string): string | undefined {
  return new RegExp(`^${field}:\\s*(\\S+)`, 'm').exec(readText('/proc/self/status') ?? '')?.[1];
}

function writable(dir: string): boolean {
  try {
    accessSync(dir, fsConstants.W_OK); // EROFS for a read-only mount, as containers often give /sys/fs/cgroup
    return true;
  } catch {
    return false;
  }
}

interface Mount {
  mountPoint: string;
  fsType: string;
  superOptions: string;
}

function readMounts(): Mount[] {
  // mountinfo: id parent major:minor root mount-point options [optional fields...] - fstype source super-options
  return (readText('/proc/self/mountinfo') ?? '').split('\n').flatMap((line) => {
    const [before, after] = line.split(' - ');
    if (!before || !after) return [];
    const [fsType = '', , superOptions = ''] = after.split(' ');
    const mountPoint = (before.split(' ')[4] ?? '').replace(/\\(\d{3})/g, (_, octal: string) => String.fromCharCode(Number.parseInt(octal, 8)));
    return [{ mountPoint, fsType, superOptions }];
  });
}

/** The running kernel's build configuration, when the kernel exposes it (/proc/config.gz or /boot). */
function kernelConfig(): Map<string, string> | undefined {
  let text: string | undefined;
  try {
    text = gunzipSync(readFileSync('/proc/config.gz')).toString('utf8');
  } catch {
    text = readText(`/boot/config-${release()}`);
  }
  if (text === undefined) return undefined;
  const config = new Map<string, string>();
  for (const match of text.matchAll(/^(CONFIG_\w+)=(.*)$/gm)) config.set(match[1]!, match[2]!);
  return config;
}

/** The report as `zeroboot doctor` prints it: one line per check, a fix under each one that is not ok. */
export function formatDoctorReport(report: DoctorReport): string {
  const width = Math.max(...report.checks.map((c) => c.name.length));
  const lines: string[] = [];
  for (const check of report.checks) {
    const status = check.ok ? 'ok' : check.severity === 'error' ? 'missing' : 'warning';
    lines.push(`${status.padEnd(8)} ${check.name.padEnd(width)}  ${check.detail}`);
    if (!check.ok && check.fix) lines.push(`${' '.repeat(8)} ${' '.repeat(width)}  fix: ${check.fix}`);
  }
  const missing = report.checks.filter((c) => !c.ok && c.severity === 'error').length;
  const warnings = report.checks.filter((c) => !c.ok && c.severity === 'warning').length;
  const warned = warnings > 0 ? ` (${warnings} warning${warnings > 1 ? 's' : ''})` : '';
  lines.push('', report.ok ? `zeroboot can run sandboxes here${warned}.` : `${missing} required check${missing > 1 ? 's' : ''} failed${warned}: zeroboot cannot run sandboxes here yet.`);
  return `${lines.join('\n')}\n`;
}
