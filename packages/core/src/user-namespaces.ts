// Whether this process may create the namespaces a sandbox is built from, and, where it may not, what
// forbids it and the exact fix. Rootless mode (the SDK's user is not root) needs unprivileged user
// namespaces, which distributions and container runtimes often switch off: Zeroboot.start fails fast with
// the same diagnosis that `zeroboot doctor` prints.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { constants as osConstants } from 'node:os';

import { ZerobootError } from './errors.js';

const PROBE_TIMEOUT_MS = 10_000;

/** The settings that decide whether an unprivileged user may create user namespaces. */
export interface UserNamespaceSettings {
  /** The kernel has user namespaces at all (CONFIG_USER_NS). */
  supported: boolean;
  /** `user.max_user_namespaces`; 0 disables them for everyone but root's existing ones. */
  maxUserNamespaces: number | undefined;
  /** Debian's `kernel.unprivileged_userns_clone`; 0: only root may create them. */
  unprivilegedClone: number | undefined;
  /** Ubuntu's `kernel.apparmor_restrict_unprivileged_userns`; 1: they get no capabilities. */
  apparmorRestricted: number | undefined;
  /** This process runs under a seccomp filter (`Seccomp: 2`): a container runtime's profile, most likely. */
  seccompFiltered: boolean;
}

export function readUserNamespaceSettings(): UserNamespaceSettings {
  return {
    supported: existsSync('/proc/self/ns/user'),
    maxUserNamespaces: readNumber('/proc/sys/user/max_user_namespaces'),
    unprivilegedClone: readNumber('/proc/sys/kernel/unprivileged_userns_clone'),
    apparmorRestricted: readNumber('/proc/sys/kernel/apparmor_restrict_unprivileged_userns'),
    seccompFiltered: /^Seccomp:\s*2/m.test(readText('/proc/self/status') ?? ''),
  };
}

/** What forbids them, and how to allow them. */
export interface Diagnosis {
  detail: string;
  fix: string;
}

const SYSCTL_PERSIST = 'and put the same setting in /etc/sysctl.d/99-zeroboot.conf to keep it after a reboot';
const OR_ROOT = 'or run zeroboot as root';

/**
 * Why this unprivileged process cannot build a sandbox: from the settings, and from the error of a real
 * attempt when there was one (`probeError`, e.g. unshare(1)'s stderr). Undefined when nothing forbids it.
 */
export function diagnoseRootless(settings: UserNamespaceSettings, probeError?: string): Diagnosis | undefined {
  if (!settings.supported) return { detail: 'the kernel has no user namespaces (CONFIG_USER_NS is off)', fix: `use a kernel built with CONFIG_USER_NS=y, ${OR_ROOT}` };
  if (settings.maxUserNamespaces === 0) {
    return { detail: 'user namespaces are disabled: user.max_user_namespaces is 0', fix: `sudo sysctl -w user.max_user_namespaces=15000, ${SYSCTL_PERSIST}; ${OR_ROOT}` };
  }
  if (settings.unprivilegedClone === 0) {
    return { detail: 'kernel.unprivileged_userns_clone is 0: only root may create user namespaces', fix: `sudo sysctl -w kernel.unprivileged_userns_clone=1, ${SYSCTL_PERSIST}; ${OR_ROOT}` };
  }
  // Ubuntu 23.10 and later: an unprivileged process may create a user namespace, but AppArmor takes every
  // capability in it away unless the program has a profile with the `userns` rule.
  if (settings.apparmorRestricted === 1 && probeError !== '') {
    return {
      detail: 'kernel.apparmor_restrict_unprivileged_userns is 1: AppArmor gives user namespaces of unprivileged programs no capabilities',
      fix: `sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0, ${SYSCTL_PERSIST}; or give the fork-server programs (python3, node, bash) an AppArmor profile with the \`userns,\` rule; ${OR_ROOT}`,
    };
  }
  if (probeError === undefined || probeError === '') return undefined;
  if (/mount \S*proc\S* failed/.test(probeError)) { // util-linux: "mount /proc failed: Operation not permitted"
    return {
      detail: `a proc filesystem cannot be mounted in a user namespace here (${probeError}): parts of the host's /proc are masked, as a container runtime does`,
      fix: 'run the container with --security-opt systempaths=unconfined (Docker, Podman)',
    };
  }
  if (settings.seccompFiltered && /not permitted|EPERM|denied/i.test(probeError)) {
    return {
      detail: `a seccomp filter on this process refuses user namespaces (${probeError}), as Docker's default profile does`,
      fix: 'run the container with --security-opt seccomp=unconfined --security-opt apparmor=unconfined --security-opt systempaths=unconfined, or with a seccomp profile that allows unshare, clone and clone3 with CLONE_NEWUSER',
    };
  }
  return { detail: `creating a user namespace with mount, pid and network namespaces in it failed: ${probeError}`, fix: `allow unprivileged user namespaces for this user (check \`zeroboot doctor\`), ${OR_ROOT}` };
}

const CLONE = { NEWNS: 0x00020000, NEWCGROUP: 0x02000000, NEWUTS: 0x04000000, NEWIPC: 0x08000000, NEWUSER: 0x10000000, NEWPID: 0x20000000, NEWNET: 0x40000000 } as const;

/** What a fork-server and its sandboxes create, as unshare(1) arguments and unshare(2) flags. */
export const SANDBOX_NAMESPACES = {
  args: ['--user', '--map-root-user', '--mount', '--net', '--pid', '--fork', '--mount-proc', '--ipc', '--uts', '--cgroup'],
  flags: CLONE.NEWUSER | CLONE.NEWPID | CLONE.NEWNET | CLONE.NEWNS | CLONE.NEWIPC | CLONE.NEWUTS | CLONE.NEWCGROUP,
};
export const USER_NAMESPACE = { args: ['--user', '--map-root-user'], flags: CLONE.NEWUSER };

/**
 * Creates the namespaces in a child: with util-linux's unshare(1), else with a Python's ctypes (unshare(2)
 * alone, without the mounts). `ok` undefined: neither is there.
 */
export function tryUnshare(what: { args: string[]; flags: number }, python?: string): { ok: boolean | undefined; detail: string } {
  try {
    execFileSync('unshare', [...what.args, 'true'], { timeout: PROBE_TIMEOUT_MS, stdio: ['ignore', 'ignore', 'pipe'] });
    return { ok: true, detail: '' };
  } catch (error) {
    const e = error as NodeJS.ErrnoException & { stderr?: Buffer };
    if (e.code !== 'ENOENT') return { ok: false, detail: `unshare ${what.args.join(' ')}: ${e.stderr?.toString().trim().split('\n').at(-1) || e.message}` };
  }
  if (!python) return { ok: undefined, detail: 'neither unshare(1) nor python3 found' };
  // unshare(2) of all the flags at once, as the fork-server's clone does; the exit status is the errno.
  const code = 'import ctypes, sys; libc = ctypes.CDLL(None, use_errno=True); sys.exit(0 if libc.unshare(int(sys.argv[1])) == 0 else ctypes.get_errno() or 1)';
  try {
    execFileSync(python, ['-I', '-c', code, String(what.flags)], { timeout: PROBE_TIMEOUT_MS, stdio: 'ignore' });
    return { ok: true, detail: '' };
  } catch (error) {
    const status = (error as { status?: number | null }).status;
    return { ok: false, detail: `unshare(2): ${status ? errnoName(status) : String((error as Error).message)}` };
  }
}

/**
 * For Zeroboot.start, rootless: the KERNEL_FEATURE_MISSING error to fail with, or undefined when this user
 * may build sandboxes here. One unshare(1) run (~2 ms); without unshare(1) the settings alone decide, and
 * whatever else refuses is found when the fork-server starts.
 */
export function rootlessBlocker(): ZerobootError | undefined {
  const settings = readUserNamespaceSettings();
  const probe = tryUnshare(SANDBOX_NAMESPACES);
  const diagnosis = diagnoseRootless(settings, probe.ok === false ? probe.detail : probe.ok ? '' : undefined);
  if (!diagnosis) return undefined;
  return new ZerobootError('KERNEL_FEATURE_MISSING', rootlessMessage(diagnosis));
}

export function rootlessMessage(diagnosis: Diagnosis): string {
  return `zeroboot runs rootless here (uid ${process.getuid?.()}), which needs unprivileged user namespaces, and this machine refuses them: ${diagnosis.detail}. Fix: ${diagnosis.fix}. \`zeroboot doctor\` checks this and the rest.`;
}

export function errnoName(errno: number): string {
  return Object.entries(osConstants.errno).find(([, value]) => value === errno)?.[0] ?? `errno ${errno}`;
}

/** A file's text, undefined when it cannot be read (a sysctl this kernel lacks). */
export function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

function readNumber(path: string): number | undefined {
  const text = readText(path);
  return text === undefined ? undefined : Number.parseInt(text, 10);
}
