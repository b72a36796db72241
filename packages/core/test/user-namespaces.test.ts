// Where the kernel or a security module forbids unprivileged user namespaces, rootless Zeroboot.start fails
// with KERNEL_FEATURE_MISSING naming the exact fix, and `zeroboot doctor` prints the same diagnosis. The
// machines that run this suite allow them, so each forbidding setting is fed to the diagnosis as read
// from /proc: the same function both use.
import { describe, expect, test } from 'vitest';

import { diagnoseRootless, readUserNamespaceSettings, rootlessBlocker, rootlessMessage, SANDBOX_NAMESPACES, type UserNamespaceSettings } from '../src/user-namespaces.js';
import { ROOTLESS } from '../../../test/helpers.js';

/** What tryUnshare reports for a failed attempt: the command, then unshare(1)'s last line of stderr. */
const attempt = (stderr: string) => `unshare ${SANDBOX_NAMESPACES.args.join(' ')}: unshare: ${stderr}`;

const allowed: UserNamespaceSettings = { supported: true, maxUserNamespaces: 63_000, unprivilegedClone: undefined, apparmorRestricted: undefined, seccompFiltered: false };

describe('the diagnosis of forbidden user namespaces', () => {
  test.each([
    ['Ubuntu 23.10+ AppArmor restriction', { apparmorRestricted: 1 }, attempt('write failed /proc/self/uid_map: Operation not permitted'), /kernel\.apparmor_restrict_unprivileged_userns is 1/, 'sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0'],
    ['user.max_user_namespaces=0', { maxUserNamespaces: 0 }, attempt('unshare failed: No space left on device'), /user\.max_user_namespaces is 0/, 'sudo sysctl -w user.max_user_namespaces=15000'],
    ["Debian's unprivileged_userns_clone=0", { unprivilegedClone: 0 }, attempt('unshare failed: Operation not permitted'), /only root may create user namespaces/, 'sudo sysctl -w kernel.unprivileged_userns_clone=1'],
    ["Docker's default seccomp profile", { seccompFiltered: true }, attempt('unshare failed: Operation not permitted'), /a seccomp filter on this process refuses user namespaces/, '--security-opt seccomp=unconfined'],
    ["a container's masked /proc", { seccompFiltered: true }, attempt('mount /proc failed: Operation not permitted'), /a proc filesystem cannot be mounted/, '--security-opt systempaths=unconfined'],
    ['no CONFIG_USER_NS', { supported: false }, undefined, /the kernel has no user namespaces/, 'CONFIG_USER_NS=y'],
  ] as const)('%s: the detail says what forbids them, the fix how to allow them', (_, settings, probeError, detail, fix) => {
    const diagnosis = diagnoseRootless({ ...allowed, ...settings }, probeError);
    expect(diagnosis?.detail).toMatch(detail);
    expect(diagnosis?.fix).toContain(fix);
    expect(rootlessMessage(diagnosis!)).toContain(`Fix: ${diagnosis!.fix}.`);
  });

  test('nothing is forbidden when the attempt succeeded, even with the AppArmor sysctl on (a profile allows it)', () => {
    expect(diagnoseRootless(allowed, '')).toBeUndefined();
    expect(diagnoseRootless({ ...allowed, apparmorRestricted: 1 }, '')).toBeUndefined();
  });

  test('this machine allows them: no blocker, and the settings say so', () => {
    expect(readUserNamespaceSettings()).toMatchObject({ supported: true });
    expect(rootlessBlocker()).toBeUndefined();
    if (ROOTLESS) expect(readUserNamespaceSettings().maxUserNamespaces).toBeGreaterThan(0);
  });
});
