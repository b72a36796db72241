/* seccomp-bpf, built with libseccomp (what crun uses) once per fork-server and exported to a plain BPF
 * program, so each sandbox only pays the kernel's install (libseccomp would recompile the filter on every
 * seccomp_load, ~100 µs). Default allow; refused with EPERM: everything that changes mounts, namespaces,
 * the kernel or another process's memory. Non-native syscall ABIs (i386, x32) kill the process.
 * Sockets other than AF_UNIX fail with EAFNOSUPPORT, which programs already handle as "no network".
 *
 * Two filters, because a parked sandbox still has one mount to make: the layered filesystem of the
 * Sandbox its run belongs to, known only when the request arrives. The main filter goes in before
 * parking and refuses the whole mount family but mount(2) itself; when the request has been handled,
 * zb_seccomp_apply_final() stacks a four-instruction filter that refuses mount(2) too (filters stack,
 * the strictest verdict wins, and none can be removed). By then the sandbox also has no capability left,
 * so mount(2) would fail anyway: the filter keeps that true should a kernel bug skip the check. */
#define _GNU_SOURCE
#include <errno.h>
#include <stddef.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"

static struct sock_fprog program;

static const char *const refused[] = {
    /* mounts and roots */
    "umount", "umount2", "pivot_root", "chroot", "move_mount", "open_tree", "fsopen", "fsconfig",
    "fsmount", "fspick", "mount_setattr", "open_tree_attr",
    /* namespaces */
    "unshare", "setns",
    /* other processes */
    "ptrace", "process_vm_readv", "process_vm_writev", "process_madvise", "pidfd_getfd", "kcmp",
    "migrate_pages", "move_pages", "mbind", "set_mempolicy", "get_mempolicy", "set_mempolicy_home_node",
    /* kernel attack surface */
    "bpf", "keyctl", "add_key", "request_key", "userfaultfd", "perf_event_open", "io_uring_setup",
    "io_uring_enter", "io_uring_register", "fanotify_init", "name_to_handle_at", "open_by_handle_at",
    "lookup_dcookie", "syslog", "vhangup", "uselib", "ustat", "sysfs", "_sysctl", "nfsservctl",
    /* the machine */
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "create_module",
    "reboot", "swapon", "swapoff", "acct", "quotactl", "quotactl_fd", "settimeofday", "clock_settime",
    "clock_adjtime", "adjtimex", "iopl", "ioperm", "sethostname", "setdomainname",
};

static const uint64_t namespace_flags[] = {
    CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET,
};

static int add(scmp_filter_ctx ctx, uint32_t action, int nr, unsigned count, const struct scmp_arg_cmp *cmp,
               const char *name, zb_error *err) {
  int rc = seccomp_rule_add_array(ctx, action, nr, count, cmp);
  if (rc < 0)
    return zb_fail(err, ZB_STEP_SECCOMP, -rc, "seccomp rule for %s", name);
  return 0;
}

static int build(scmp_filter_ctx ctx, zb_error *err) {
  int rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
  if (rc < 0)
    return zb_fail(err, ZB_STEP_SECCOMP, -rc, "seccomp bad-arch action");
  /* no_new_privs is set by the sandbox itself, before the filter goes in. */
  seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);
  for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
    int nr = seccomp_syscall_resolve_name(refused[i]);
    if (nr == __NR_SCMP_ERROR)
      continue; /* unknown to this libseccomp and this arch: nothing to refuse */
    if (add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0, NULL, refused[i], err) < 0)
      return -1;
  }
  /* clone's flags are a register: refuse any namespace flag. clone3's are in memory, out of BPF's reach:
   * ENOSYS makes glibc fall back to clone (as Docker and systemd do). */
  for (size_t i = 0; i < sizeof namespace_flags / sizeof namespace_flags[0]; i++) {
    struct scmp_arg_cmp cmp = SCMP_A0(SCMP_CMP_MASKED_EQ, namespace_flags[i], namespace_flags[i]);
    if (add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1, &cmp, "clone", err) < 0)
      return -1;
  }
  if (add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0, NULL, "clone3", err) < 0)
    return -1;
  struct scmp_arg_cmp not_unix = SCMP_A0(SCMP_CMP_NE, AF_UNIX);
  if (add(ctx, SCMP_ACT_ERRNO(EAFNOSUPPORT), SCMP_SYS(socket), 1, &not_unix, "socket", err) < 0)
    return -1;
  /* socketpair() reaches a family's create() too (and module autoload): TIPC implements it. */
  if (add(ctx, SCMP_ACT_ERRNO(EAFNOSUPPORT), SCMP_SYS(socketpair), 1, &not_unix, "socketpair", err) < 0)
    return -1;
  /* The parent-death signal is how a sandbox dies with its fork-server: user code may not clear it. */
  struct scmp_arg_cmp pdeathsig = SCMP_A0(SCMP_CMP_EQ, PR_SET_PDEATHSIG);
  if (add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(prctl), 1, &pdeathsig, "prctl", err) < 0)
    return -1;
  /* Faking terminal input to another process sharing a tty. */
  static const unsigned long tty_requests[] = {TIOCSTI, TIOCLINUX};
  for (size_t i = 0; i < 2; i++) {
    struct scmp_arg_cmp cmp = SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffu, tty_requests[i]);
    if (add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(ioctl), 1, &cmp, "ioctl", err) < 0)
      return -1;
  }
  return 0;
}

int zb_seccomp_prepare(zb_error *err) {
  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
  if (ctx == NULL)
    return zb_fail(err, ZB_STEP_SECCOMP, ENOMEM, "seccomp_init");
  int memfd = -1, ret = -1;
  if (build(ctx, err) < 0)
    goto out;
  memfd = memfd_create("zeroboot-seccomp", MFD_CLOEXEC);
  if (memfd < 0) {
    zb_fail(err, ZB_STEP_SECCOMP, errno, "memfd_create");
    goto out;
  }
  int rc = seccomp_export_bpf(ctx, memfd);
  if (rc < 0) {
    zb_fail(err, ZB_STEP_SECCOMP, -rc, "seccomp_export_bpf");
    goto out;
  }
  struct stat st;
  if (fstat(memfd, &st) < 0 || st.st_size <= 0 || st.st_size % (off_t)sizeof(struct sock_filter) != 0) {
    zb_fail(err, ZB_STEP_SECCOMP, errno, "exported seccomp program has a bad size");
    goto out;
  }
  struct sock_filter *filter = malloc((size_t)st.st_size);
  if (filter == NULL || pread(memfd, filter, (size_t)st.st_size, 0) != st.st_size) {
    free(filter);
    zb_fail(err, ZB_STEP_SECCOMP, errno ? errno : EIO, "read the seccomp program");
    goto out;
  }
  program.filter = filter;
  program.len = (unsigned short)(st.st_size / (off_t)sizeof(struct sock_filter));
  ret = 0;
out:
  if (memfd >= 0)
    close(memfd);
  seccomp_release(ctx);
  return ret;
}

int zb_seccomp_apply_final(zb_error *err) {
  static struct sock_filter refuse_mount[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_mount, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  static const struct sock_fprog final_program = {.len = sizeof refuse_mount / sizeof refuse_mount[0], .filter = refuse_mount};
  /* TSYNC: every thread of the sandbox gets it, or none does and the run fails (a positive return names
   * a thread that could not take it). A parked sandbox has one thread; this keeps it true if not. */
  long rc = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &final_program);
  if (rc != 0)
    return zb_fail(err, ZB_STEP_SECCOMP, rc < 0 ? errno : EBUSY, "install the final seccomp filter on every thread");
  return 0;
}

int zb_seccomp_apply(zb_error *err) {
  if (program.filter == NULL)
    return zb_fail(err, ZB_STEP_SECCOMP, 0, "seccomp program not prepared");
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
    return zb_fail(err, ZB_STEP_NO_NEW_PRIVS, errno, "PR_SET_NO_NEW_PRIVS");
  if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &program) < 0)
    return zb_fail(err, ZB_STEP_SECCOMP, errno, "install the seccomp filter");
  return 0;
}
