/* User namespace: inside, the sandbox's code runs as uid/gid 1000 ("sandbox"); outside, that is a host
 * uid (host_uid, one per SDK instance) that owns nothing on the host but the instance's layer store, so
 * even a process that escaped every other layer would be an unprivileged stranger. Every sandbox of an
 * instance has the same host uid, as every sandbox of one user has under bubblewrap or in rootless mode:
 * a Sandbox's files, kept on the host between runs, must belong to whichever pooled sandbox runs next, of
 * any template. Sandboxes are kept apart by their pid, mount and IPC namespaces, Landlock's signal and
 * abstract-socket scopes and seccomp (no ptrace, no process_vm_*), not by their uid.
 * Only that one id is mapped: host root is not, so files owned by it appear as nobody (65534). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"

static int write_map(pid_t pid, const char *file, unsigned host_id, zb_error *err) {
  char path[64], line[64];
  snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, file);
  int n = snprintf(line, sizeof line, "%u %u 1\n", ZB_SANDBOX_UID, host_id);
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0)
    return zb_fail(err, ZB_STEP_USERNS_MAP, errno, "open %s", path);
  ssize_t w = write(fd, line, (size_t)n);
  int saved = errno;
  close(fd);
  if (w != n)
    return zb_fail(err, ZB_STEP_USERNS_MAP, w < 0 ? saved : EIO, "write %s", path);
  return 0;
}

int zb_userns_write_maps(pid_t pid, unsigned host_id, zb_error *err) {
  if (write_map(pid, "uid_map", host_id, err) < 0)
    return -1;
  return write_map(pid, "gid_map", host_id, err);
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
   * sandbox would keep group access to host files through an unmapped gid. */
  if (syscall(SYS_setgroups, 0, NULL) < 0)
    return zb_fail(err, ZB_STEP_CREDENTIALS, errno, "setgroups");
  if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
    return zb_fail(err, ZB_STEP_CREDENTIALS, errno, "PR_SET_KEEPCAPS");
  if (syscall(SYS_setresgid, ZB_SANDBOX_UID, ZB_SANDBOX_UID, ZB_SANDBOX_UID) < 0)
    return zb_fail(err, ZB_STEP_CREDENTIALS, errno, "setresgid");
  if (syscall(SYS_setresuid, ZB_SANDBOX_UID, ZB_SANDBOX_UID, ZB_SANDBOX_UID) < 0)
    return zb_fail(err, ZB_STEP_CREDENTIALS, errno, "setresuid");
  return 0;
}
