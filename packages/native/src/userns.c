/* User namespace: inside, the sandbox's code runs as uid/gid 1000 ("sandbox"); outside, that is a host
 * uid (host_uid, one per SDK instance) that owns nothing on the host but the instance's layer store, so
 * even a process that escaped every other layer would be an unprivileged stranger. Every sandbox of an
 * instance has the same host uid, as every sandbox of one user has under bubblewrap or in rootless mode:
 * a Sandbox's files, kept on the host between runs, must belong to whichever pooled sandbox runs next, of
 * any template. Sandboxes are kept apart by their pid, mount and IPC namespaces, Landlock's signal and
 * abstract-socket scopes and seccomp (no ptrace, no process_vm_*), not by their uid.
 * Only that one id is mapped: host root is not, so files owned by it appear as nobody (65534).
 *
 * Rootless mode (the SDK's user is not root): an unprivileged process may map only its own uid, and only
 * into a namespace it created (user_namespaces(7), "Defining user and group ID mappings"). So the
 * fork-server first enters a user namespace of its own, mapping its uid and gid to 0 there
 * (zb_userns_enter_own, through zeroboot-userns), which gives it the capabilities its mounts and namespaces need, over resources
 * that namespace owns. Each sandbox's namespace, nested in it, maps 1000 to that 0: on the host, the
 * sandbox runs as the SDK's own user. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"

static int write_proc(const char *path, const char *line, zb_error *err) {
  size_t n = strlen(line);
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0)
    return zb_fail(err, ZB_STEP_USERNS_MAP, errno, "open %s", path);
  ssize_t w = write(fd, line, n);
  int saved = errno;
  close(fd);
  if (w != (ssize_t)n)
    return zb_fail(err, ZB_STEP_USERNS_MAP, w < 0 ? saved : EIO, "write %s", path);
  return 0;
}

static int write_map(pid_t pid, const char *file, unsigned host_id, zb_error *err) {
  char path[64], line[64];
  snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, file);
  snprintf(line, sizeof line, "%u %u 1\n", ZB_SANDBOX_UID, host_id);
  return write_proc(path, line, err);
}

int zb_userns_write_maps(pid_t pid, unsigned host_id, zb_error *err) {
  if (write_map(pid, "uid_map", host_id, err) < 0)
    return -1;
  return write_map(pid, "gid_map", host_id, err);
}

/* The kernel's rules for an unprivileged writer: one line, mapping the writer's own effective id, into a
 * namespace whose owner is that same euid; for gid_map, setgroups(2) denied first (else a process could
 * drop a group that was denying it access). The "deny" is inherited by every namespace nested in this
 * one, so no sandbox can call setgroups either: see zb_userns_become_sandbox_user. */
int zb_userns_enter_own(zb_error *err) {
  unsigned uid = (unsigned)geteuid(), gid = (unsigned)getegid();
  if (unshare(CLONE_NEWUSER) < 0)
    return zb_fail(err, ZB_STEP_NAMESPACES, errno, "rootless: unshare(CLONE_NEWUSER) as uid %u", uid);
  char line[64];
  snprintf(line, sizeof line, "0 %u 1\n", uid);
  if (write_proc("/proc/self/uid_map", line, err) < 0 || write_proc("/proc/self/setgroups", "deny", err) < 0)
    return -1;
  snprintf(line, sizeof line, "0 %u 1\n", gid);
  return write_proc("/proc/self/gid_map", line, err);
}

/* Called in the new user namespace while the process still holds every capability there. The host uid
 * it had (root) is unmapped in the namespace, so the kernel's setuid fixup does not see a root -> non-root
 * transition and leaves the capabilities in place (cap_emulate_setxuid); PR_SET_KEEPCAPS says so
 * explicitly. They are needed for the mounts that follow and dropped in caps.c before any user code. */
/* Raw system calls, not glibc's wrappers: in a child forked from a multithreaded server (Node's), glibc still
 * lists the server's threads and would try to signal each of them to change their credentials too. The
 * child is single-threaded: one thread's credentials are all there is. */
int zb_userns_become_sandbox_user(zb_error *err) {
  /* Supplementary groups are inherited from the fork-server (host root's, e.g. gid 0): drop them, or the
   * sandbox would keep group access to host files through an unmapped gid. Rootless, setgroups is denied
   * (zb_userns_enter_own): the sandbox keeps the SDK user's groups, as under bubblewrap without its
   * setuid helper. They reach only what the read-only root shows. */
  if (!zb_cfg.rootless && syscall(SYS_setgroups, 0, NULL) < 0)
    return zb_fail(err, ZB_STEP_CREDENTIALS, errno, "setgroups");
  if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
    return zb_fail(err, ZB_STEP_CREDENTIALS, errno, "PR_SET_KEEPCAPS");
  if (syscall(SYS_setresgid, ZB_SANDBOX_UID, ZB_SANDBOX_UID, ZB_SANDBOX_UID) < 0)
    return zb_fail(err, ZB_STEP_CREDENTIALS, errno, "setresgid");
  if (syscall(SYS_setresuid, ZB_SANDBOX_UID, ZB_SANDBOX_UID, ZB_SANDBOX_UID) < 0)
    return zb_fail(err, ZB_STEP_CREDENTIALS, errno, "setresuid");
  /* In root mode the euid just changed, which made the process non-dumpable (commit_creds()); rootless,
   * the euid already was the sandbox's and nothing changed. Either way the sandbox parks non-dumpable, so
   * its /proc/<pid> files belong to nobody, as a setuid program's would. */
  if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
    return zb_fail(err, ZB_STEP_CREDENTIALS, errno, "PR_SET_DUMPABLE");
  return 0;
}
