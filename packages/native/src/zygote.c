/* The fork-server: one process per warm template, single-threaded, driven by the SDK over its control
 * socket (protocol.h). It forks fully isolated sandboxes ahead of time on request (FORK), hands each to the
 * SDK once it has finished setting itself up (READY, with the fds the SDK needs), and reports every exit
 * (EXIT). It never runs user code itself, and it dies with the SDK: PR_SET_PDEATHSIG plus EOF on the
 * control socket, and its sandboxes die with it through their own PR_SET_PDEATHSIG. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "channel.h"
#include "internal.h"
#include "protocol.h"
#include "zeroboot.h"

#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif

enum child_state { FREE = 0, SETTING_UP, READY, FAILED };

struct child {
  enum child_state state;
  uint32_t id;
  pid_t pid;
  int status_fd;
  int exit_fd; /* the server's own pidfd: readable when the sandbox exits */
  int handoff[ZB_READY_FDS]; /* request socket, stdout, stderr, pidfd: the SDK's until READY */
};

static struct child children[ZB_MAX_SLOTS];
static uint32_t next_id = 1;
static int signal_fd = -1;
static int epoll_fd = -1;

/* Status pipes are tagged (id << 16 | slot): an event left over from a sandbox already reaped in the same
 * epoll batch must not be taken for the slot's next sandbox. */
#define EPOLL_CONTROL (~0ull)
#define EPOLL_SIGNALS (~0ull - 1)
#define EPOLL_EXITS (~0ull - 2)
#define STATUS_TAG(id, slot) (((uint64_t)(id) << 16) | (slot))

static void close_fd(int *fd) {
  if (*fd >= 0)
    close(*fd);
  *fd = -1;
}

static int send_message(uint16_t type, uint32_t id, int32_t a, int32_t b, const char *text, const int *fds,
                        int fd_count) {
  zb_message msg = {.version = ZB_PROTOCOL_VERSION, .type = type, .id = id, .a = a, .b = b};
  if (text != NULL)
    snprintf(msg.text, sizeof msg.text, "%s", text);
  /* Blocking: a message to a busy SDK waits rather than being dropped. */
  return zb_channel_send(zb_cfg.control_fd, &msg, ZB_MESSAGE_HEADER_SIZE + strlen(msg.text) + 1, fds, fd_count, 0, NULL);
}

static void release(unsigned slot) {
  struct child *c = &children[slot];
  close_fd(&c->status_fd);
  close_fd(&c->exit_fd);
  for (int i = 0; i < ZB_READY_FDS; i++)
    close_fd(&c->handoff[i]);
  c->state = FREE;
  c->pid = 0;
}

/* The lowest free slot: slots are reused as soon as they are free, so a steady load keeps using the same
 * few cgroups (made once: mkdir and limits cost ~1 ms, and each memory cgroup ~50-120 KiB of kernel
 * memory) and uids. */
static int find_free_slot(void) {
  for (unsigned slot = 0; slot < ZB_MAX_SLOTS; slot++)
    if (children[slot].state == FREE)
      return (int)slot;
  return -1;
}

/* In the child: fds 3..9 become exactly the ones it needs (a -1 leaves its number closed), everything
 * else the server had is closed. */
static void arrange_child_fds(const int keep[ZB_CHILD_FDS]) {
  int moved[ZB_CHILD_FDS];
  for (int i = 0; i < ZB_CHILD_FDS; i++)
    moved[i] = keep[i] < 0 ? -1 : fcntl(keep[i], F_DUPFD, ZB_FD_FIRST_FREE);
  for (int i = 0; i < ZB_CHILD_FDS; i++) {
    if (moved[i] >= 0)
      dup2(moved[i], ZB_FD_REQUEST + i);
    else
      close(ZB_FD_REQUEST + i);
  }
  if (syscall(SYS_close_range, ZB_FD_FIRST_FREE, ~0U, 0) < 0) {
    for (int fd = ZB_FD_FIRST_FREE; fd < 65536; fd++)
      close(fd);
  }
}

/* V8 marks its heap MADV_DONTFORK, and keeps marking the pages it adds, so a forked Node would find its
 * heap gone. One madvise over the whole address space clears the flag from every mapping (~7 us; holes
 * are skipped with ENOMEM). The walk goes upwards and stops at [vvar] (VM_IO refuses MADV_DOFORK), which
 * sits above the stack: everything a runtime maps lies below it. */
static void undo_dontfork(void) {
#if defined(__x86_64__)
  const uintptr_t top = (uintptr_t)1 << 47;
#else
  const uintptr_t top = (uintptr_t)1 << 48;
#endif
  long page = sysconf(_SC_PAGESIZE);
  madvise((void *)(uintptr_t)page, top - 2 * (uintptr_t)page, MADV_DOFORK);
}

/* Returns 0 in the new sandbox, 1 in the server. */
static int spawn(void) {
  zb_error e = {0};
  int slot = find_free_slot();
  if (slot < 0) {
    send_message(ZB_MSG_SPAWN_FAILED, 0, ZB_STEP_CLONE, EAGAIN, "every sandbox slot is in use", NULL, 0);
    return 1;
  }
  int sp[2] = {-1, -1}, out[2] = {-1, -1}, errp[2] = {-1, -1}, st[2] = {-1, -1}, go[2] = {-1, -1};
  int cgroup_fd = -1, pidfd = -1, attach[2] = {-1, -1};
  uint32_t id = next_id++;
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0 || pipe2(out, O_CLOEXEC) < 0 ||
      pipe2(errp, O_CLOEXEC) < 0 || pipe2(st, O_CLOEXEC) < 0 || pipe2(go, O_CLOEXEC) < 0) {
    zb_fail(&e, ZB_STEP_CLONE, errno, "create the sandbox's channels");
    goto fail;
  }
  /* The SDK's read ends never block; the sandbox's write ends do, as programs expect of stdout. */
  fcntl(out[0], F_SETFL, O_NONBLOCK);
  fcntl(errp[0], F_SETFL, O_NONBLOCK);
  /* The verdict is written in one piece (< PIPE_BUF); reading it never waits on a child still setting up. */
  fcntl(st[0], F_SETFL, O_NONBLOCK);
  cgroup_fd = zb_cgroups_slot_fd_v2((unsigned)slot, &e);
  if (cgroup_fd == -2 || zb_cgroups_attach_fds((unsigned)slot, attach, &e) < 0)
    goto fail;
  struct clone_args args = {
      .flags = CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_PIDFD |
               (cgroup_fd >= 0 ? CLONE_INTO_CGROUP : 0),
      .pidfd = (uint64_t)(uintptr_t)&pidfd,
      .exit_signal = SIGCHLD,
      .cgroup = cgroup_fd >= 0 ? (uint64_t)cgroup_fd : 0,
  };
  if (zb_cfg.madv_dofork)
    undo_dontfork();
  pid_t pid = (pid_t)syscall(SYS_clone3, &args, sizeof args);
  if (pid < 0) {
    zb_fail(&e, ZB_STEP_CLONE, errno, "clone3");
    goto fail;
  }
  if (pid == 0) {
    int keep[ZB_CHILD_FDS] = {sp[1], out[1], errp[1], st[1], go[0], attach[0], attach[1]};
    arrange_child_fds(keep);
    zb_error child_err = {0};
    int rc = zb_sandbox_setup(&child_err);
    zb_write_all(ZB_FD_STATUS, &child_err, sizeof child_err);
    if (rc < 0)
      _exit(126);
    close(ZB_FD_STATUS);
    return 0;
  }
  close_fd(&cgroup_fd);
  close_fd(&sp[1]);
  close_fd(&out[1]);
  close_fd(&errp[1]);
  close_fd(&st[1]);
  close_fd(&go[0]);
  struct child *c = &children[slot];
  *c = (struct child){.state = SETTING_UP, .id = id, .pid = pid, .status_fd = st[0],
                      .exit_fd = fcntl(pidfd, F_DUPFD_CLOEXEC, 0), .handoff = {sp[0], out[0], errp[0], pidfd}};
  /* Exits are noticed through the pidfd rather than SIGCHLD alone: in a server with threads (Node's), a
   * thread that does not block SIGCHLD can take the signal and drop it. */
  struct epoll_event exit_ev = {.events = EPOLLIN, .data.u64 = EPOLL_EXITS};
  if (c->exit_fd >= 0)
    epoll_ctl(epoll_fd, EPOLL_CTL_ADD, c->exit_fd, &exit_ev);
  if (zb_userns_write_maps(pid, zb_cfg.host_uid, &e) < 0) {
    kill(pid, SIGKILL);
    c->state = FAILED;
    close_fd(&go[1]);
    send_message(ZB_MSG_SPAWN_FAILED, id, e.step, e.errnum, e.message, NULL, 0);
    return 1;
  }
  char byte = 1;
  zb_write_all(go[1], &byte, 1);
  close_fd(&go[1]);
  struct epoll_event ev = {.events = EPOLLIN, .data.u64 = STATUS_TAG(id, (unsigned)slot)};
  epoll_ctl(epoll_fd, EPOLL_CTL_ADD, c->status_fd, &ev);
  return 1;

fail:
  send_message(ZB_MSG_SPAWN_FAILED, id, e.step, e.errnum, e.message, NULL, 0);
  int *fds[] = {&sp[0], &sp[1], &out[0], &out[1], &errp[0], &errp[1], &st[0], &st[1], &go[0], &go[1], &cgroup_fd, &pidfd}; /* attach[]: cgroups.c's */
  for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
    close_fd(fds[i]);
  return 1;
}

/* The child's setup verdict arrived (or its status pipe closed without one). */
static void on_status(unsigned slot) {
  struct child *c = &children[slot];
  if (c->state != SETTING_UP)
    return;
  zb_error verdict = {0};
  ssize_t n = zb_read_all(c->status_fd, &verdict, sizeof verdict);
  epoll_ctl(epoll_fd, EPOLL_CTL_DEL, c->status_fd, NULL);
  close_fd(&c->status_fd);
  if (n == (ssize_t)sizeof verdict && verdict.step == ZB_STEP_NONE) {
    int rc = send_message(ZB_MSG_READY, c->id, c->pid, (int32_t)slot, NULL, c->handoff, ZB_READY_FDS);
    for (int i = 0; i < ZB_READY_FDS; i++)
      close_fd(&c->handoff[i]);
    c->state = READY;
    if (rc < 0)
      kill(c->pid, SIGKILL); /* nobody will ever run it */
    return;
  }
  c->state = FAILED;
  if (n != (ssize_t)sizeof verdict)
    zb_fail(&verdict, ZB_STEP_CHILD_DIED, 0, "the sandbox died during setup");
  send_message(ZB_MSG_SPAWN_FAILED, c->id, verdict.step, verdict.errnum, verdict.message, NULL, 0);
  kill(c->pid, SIGKILL);
}

static void reap(void) {
  for (;;) {
    int status = 0;
    pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid <= 0)
      return;
    for (unsigned slot = 0; slot < ZB_MAX_SLOTS; slot++) {
      struct child *c = &children[slot];
      if (c->state == FREE || c->pid != pid)
        continue;
      if (c->state == SETTING_UP)
        on_status(slot);
      if (c->state == READY) {
        int flags = zb_cgroups_oom_killed(slot) ? ZB_EXIT_OOM_KILLED : 0;
        send_message(ZB_MSG_EXIT, c->id, status, flags, NULL, NULL, 0);
      }
      release(slot);
      break;
    }
  }
}

static void shutdown_all(void) {
  for (unsigned slot = 0; slot < ZB_MAX_SLOTS; slot++)
    if (children[slot].state != FREE)
      kill(children[slot].pid, SIGKILL);
  for (unsigned slot = 0; slot < ZB_MAX_SLOTS; slot++) {
    if (children[slot].state == FREE)
      continue;
    while (waitpid(children[slot].pid, NULL, 0) < 0 && errno == EINTR)
      ;
    release(slot);
  }
  zb_cgroups_cleanup();
}

/* Returns 1 to stop serving, 0 to go on, 2 in a new sandbox. */
static int on_control(void) {
  zb_message msg;
  ssize_t n = recv(zb_cfg.control_fd, &msg, sizeof msg, MSG_DONTWAIT);
  if (n < 0)
    return (errno == EAGAIN || errno == EINTR) ? 0 : 1;
  if (n == 0)
    return 1; /* the SDK is gone */
  if ((size_t)n < ZB_MESSAGE_HEADER_SIZE || msg.version != ZB_PROTOCOL_VERSION)
    return 0; /* not ours: ignore rather than trust */
  switch (msg.type) {
  case ZB_MSG_FORK:
    for (int32_t i = 0; i < msg.a && i < 1024; i++)
      if (spawn() == 0)
        return 2;
    return 0;
  case ZB_MSG_SHUTDOWN:
    return 1;
  default:
    return 0;
  }
}

static int on_signals(void) {
  struct signalfd_siginfo info;
  bool stop = false;
  while (read(signal_fd, &info, sizeof info) == (ssize_t)sizeof info)
    if (info.ssi_signo != SIGCHLD)
      stop = true;
  reap();
  return stop ? 1 : 0;
}

int zb_zygote_init(zb_error *err) {
  /* Rootless, the server runs as uid 0 of a user namespace of its own, entered by zeroboot-userns before
   * the runtime started (a runtime with threads cannot enter one itself), or here (userns.c). */
  if (zb_cfg.rootless) {
    if (geteuid() != 0 && zb_userns_enter_own(err) < 0)
      return -1;
    zb_cfg.host_uid = 0; /* the SDK's uid, as that namespace names it */
  } else if (geteuid() != 0) {
    return zb_fail(err, ZB_STEP_CONFIG, EPERM, "not root: an unprivileged SDK starts fork-servers with config rootless=1");
  }
  if (zb_cfg.state_dir[0] == '\0')
    return zb_fail(err, ZB_STEP_CONFIG, 0, "config state_dir is required");
  /* SIGTERM rather than SIGKILL so that the cgroup slots are removed on the way out. */
  if (prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0) < 0)
    return zb_fail(err, ZB_STEP_SIGNALS, errno, "PR_SET_PDEATHSIG");
  if (zb_cfg.sdk_pid != 0 && getppid() != zb_cfg.sdk_pid)
    return zb_fail(err, ZB_STEP_SIGNALS, ESRCH, "the SDK process exited before the fork-server started");
  sigset_t set;
  sigemptyset(&set);
  int blocked[] = {SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGQUIT};
  for (size_t i = 0; i < sizeof blocked / sizeof blocked[0]; i++)
    sigaddset(&set, blocked[i]);
  if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
    return zb_fail(err, ZB_STEP_SIGNALS, errno, "sigprocmask");
  signal(SIGPIPE, SIG_IGN);
  signal_fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
  if (signal_fd < 0)
    return zb_fail(err, ZB_STEP_SIGNALS, errno, "signalfd");
  int flags = fcntl(zb_cfg.control_fd, F_GETFL);
  /* The SDK's end is non-blocking and the flag may have come along with the socketpair: this end blocks,
   * so that a message to a busy SDK waits rather than being dropped. */
  if (flags < 0 || fcntl(zb_cfg.control_fd, F_SETFL, flags & ~O_NONBLOCK) < 0 ||
      fcntl(zb_cfg.control_fd, F_SETFD, FD_CLOEXEC) < 0)
    return zb_fail(err, ZB_STEP_CONFIG, errno, "control_fd %d is not open", zb_cfg.control_fd);
  if (zb_seccomp_prepare(err) < 0)
    return -1;
  zb_landlock_probe();
  if (zb_cgroups_init(err) < 0)
    return -1;
  /* One empty network namespace for the server and all its sandboxes: no interface but a loopback that
   * stays down, so no route anywhere. A namespace per sandbox would cost ~0.5 ms to create and ~0.7 ms of
   * CPU to destroy (MEASUREMENTS.md); what sharing one would leak (abstract unix sockets) Landlock scopes. */
  if (unshare(CLONE_NEWNS | CLONE_NEWNET) < 0)
    return zb_fail(err, ZB_STEP_NAMESPACES, errno, "unshare(CLONE_NEWNS | CLONE_NEWNET)");
  if (zb_rootfs_build(err) < 0)
    return -1;
  epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd < 0)
    return zb_fail(err, ZB_STEP_CONFIG, errno, "epoll_create1");
  struct epoll_event ev = {.events = EPOLLIN, .data.u64 = EPOLL_CONTROL};
  if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, zb_cfg.control_fd, &ev) < 0)
    return zb_fail(err, ZB_STEP_CONFIG, errno, "watch the control socket");
  ev.data.u64 = EPOLL_SIGNALS;
  if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, signal_fd, &ev) < 0)
    return zb_fail(err, ZB_STEP_CONFIG, errno, "watch signals");
  return 0;
}

int zb_zygote_serve(zb_error *err) {
  if (epoll_fd < 0)
    return zb_fail(err, ZB_STEP_CONFIG, 0, "zb_zygote_init has not succeeded");
#ifdef __GLIBC__
  /* Merge malloc's free chunks now, once. Otherwise the first large allocation in every sandbox runs
   * malloc_consolidate() over the runtime's whole heap (CPython frees many small blocks at start-up),
   * writing chunk headers on page after shared page: ~0.4 MiB of copy-on-write per sandbox. */
  malloc_trim(0);
#endif
  unsigned features = zb_cgroups_features() | ZB_FEATURE_SECCOMP | (zb_landlock_probe() >= 6 ? ZB_FEATURE_LANDLOCK_SCOPES : 0) |
                      (zb_cfg.rootless ? ZB_FEATURE_ROOTLESS : 0);
  char text[128];
  snprintf(text, sizeof text, "landlock abi %d", zb_landlock_probe());
  send_message(ZB_MSG_HELLO, 0, ZB_PROTOCOL_VERSION, (int32_t)features, text, NULL, 0);
  for (;;) {
    struct epoll_event events[64];
    int n = epoll_wait(epoll_fd, events, 64, -1);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      zb_fail(err, ZB_STEP_CONFIG, errno, "epoll_wait");
      shutdown_all();
      return -1;
    }
    for (int i = 0; i < n; i++) {
      uint64_t tag = events[i].data.u64;
      int rc = 0;
      if (tag == EPOLL_CONTROL)
        rc = on_control();
      else if (tag == EPOLL_SIGNALS)
        rc = on_signals();
      else if (tag == EPOLL_EXITS)
        reap();
      else
        if (children[tag & 0xffff].id == (uint32_t)(tag >> 16))
          on_status((unsigned)(tag & 0xffff));
      if (rc == 2) {
        /* In the new sandbox. arrange_child_fds closed the server's epoll and signal fds: their numbers
         * may already name the sandbox's own fds, so forget them rather than close them. */
        epoll_fd = signal_fd = -1;
        return 0;
      }
      if (rc == 1) {
        shutdown_all();
        return 1;
      }
    }
  }
}
