/* Limits: memory and process count per sandbox, through cgroups where the fork-server can write them,
 * rlimits otherwise (and RLIMIT_NPROC always: since Linux 5.14 it is counted per user namespace, and each
 * sandbox has its own, so it is a per-sandbox count).
 *
 * Each slot (a sandbox's index, also its uid offset) has a cgroup created once and reused, so neither
 * mkdir nor rmdir sits on the path of a run. Attaching happens while the sandbox is being set up, before it
 * is parked in the pool: on cgroup v1 a write to cgroup.procs after an idle gap waits for an RCU grace
 * period (10-16 ms measured here), which must never be on a run's path. On v2 clone3(CLONE_INTO_CGROUP)
 * starts the sandbox in its cgroup with no migration at all. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "protocol.h"

enum mode { MODE_NONE, MODE_V1, MODE_V2 };

static enum mode mode = MODE_NONE;
static int own_fd[2] = {-1, -1};    /* the fork-server's own cgroup (v1: memory, pids; v2: [0]) */
static int parent_fd[2] = {-1, -1}; /* our zeroboot-* directory below it */
static char parent_name[96];
static unsigned char slot_ready[ZB_MAX_SLOTS];
static long long slot_oom_before[ZB_MAX_SLOTS]; /* oom_kill count at the slot's last exit */
static int slot_procs_fd[ZB_MAX_SLOTS][2];           /* v1: cgroup.procs, opened once; fd + 1 */

/* Finds the mount point of a cgroup hierarchy: v1 by controller name in the super options, v2 by type. */
static int find_mount(const char *fstype, const char *controller, char *out, size_t size) {
  FILE *f = fopen("/proc/self/mountinfo", "re");
  if (f == NULL)
    return -1;
  char line[1024];
  int found = -1;
  while (fgets(line, sizeof line, f) != NULL) {
    char *sep = strstr(line, " - ");
    if (sep == NULL)
      continue;
    char type[64], source[256], options[512];
    if (sscanf(sep + 3, "%63s %255s %511s", type, source, options) != 3 || strcmp(type, fstype) != 0)
      continue;
    if (controller != NULL) {
      bool has = false;
      for (char *tok = strtok(options, ","); tok != NULL; tok = strtok(NULL, ","))
        has = has || strcmp(tok, controller) == 0;
      if (!has)
        continue;
    }
    char mountpoint[512];
    if (sscanf(line, "%*s %*s %*s %*s %511s", mountpoint) != 1)
      continue;
    snprintf(out, size, "%s", mountpoint);
    found = 0;
    break;
  }
  fclose(f);
  return found;
}

/* Our own cgroup path in a hierarchy, from /proc/self/cgroup ("0::" for v2). */
static int own_path(const char *controller, char *out, size_t size) {
  FILE *f = fopen("/proc/self/cgroup", "re");
  if (f == NULL)
    return -1;
  char line[1024];
  int found = -1;
  while (fgets(line, sizeof line, f) != NULL) {
    char *first = strchr(line, ':');
    char *second = first ? strchr(first + 1, ':') : NULL;
    if (second == NULL)
      continue;
    *second = '\0';
    const char *controllers = first + 1;
    bool match = false;
    if (controller == NULL) {
      match = controllers[0] == '\0';
    } else {
      char copy[256];
      snprintf(copy, sizeof copy, "%s", controllers);
      for (char *tok = strtok(copy, ","); tok != NULL; tok = strtok(NULL, ","))
        match = match || strcmp(tok, controller) == 0;
    }
    if (!match)
      continue;
    char *path = second + 1;
    path[strcspn(path, "\n")] = '\0';
    snprintf(out, size, "%s", path);
    found = 0;
    break;
  }
  fclose(f);
  return found;
}

static int write_at(int dirfd, const char *file, const char *value) {
  int fd = openat(dirfd, file, O_WRONLY | O_CLOEXEC);
  if (fd < 0)
    return -1;
  ssize_t n = write(fd, value, strlen(value));
  int saved = errno;
  close(fd);
  errno = saved;
  return n == (ssize_t)strlen(value) ? 0 : -1;
}

static int open_own(const char *fstype, const char *controller, int *fd) {
  char mountpoint[512], path[1024], full[PATH_MAX];
  if (find_mount(fstype, controller, mountpoint, sizeof mountpoint) < 0)
    return -1;
  if (own_path(strcmp(fstype, "cgroup2") == 0 ? NULL : controller, path, sizeof path) < 0)
    return -1;
  snprintf(full, sizeof full, "%s%s", mountpoint, path);
  *fd = open(full, O_PATH | O_DIRECTORY | O_CLOEXEC);
  return *fd < 0 ? -1 : 0;
}

static int make_parent(int index) {
  if (mkdirat(own_fd[index], parent_name, 0755) < 0 && errno != EEXIST)
    return -1;
  parent_fd[index] = openat(own_fd[index], parent_name, O_PATH | O_DIRECTORY | O_CLOEXEC);
  return parent_fd[index] < 0 ? -1 : 0;
}

static void close_all(void) {
  for (int i = 0; i < 2; i++) {
    if (parent_fd[i] >= 0)
      close(parent_fd[i]);
    if (own_fd[i] >= 0)
      close(own_fd[i]);
    parent_fd[i] = own_fd[i] = -1;
  }
}

static int try_v2(void) {
  if (open_own("cgroup2", NULL, &own_fd[0]) < 0)
    return -1;
  char controllers[256] = "";
  int fd = openat(own_fd[0], "cgroup.controllers", O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    ssize_t n = read(fd, controllers, sizeof controllers - 1);
    controllers[n > 0 ? n : 0] = '\0';
    close(fd);
  }
  if (strstr(controllers, "memory") == NULL || strstr(controllers, "pids") == NULL)
    return -1;
  /* Fails with EBUSY when our cgroup holds processes and is not the root ("no internal processes"):
   * then rlimits it is, and HELLO says so. */
  if (write_at(own_fd[0], "cgroup.subtree_control", "+memory +pids") < 0 || make_parent(0) < 0 ||
      write_at(parent_fd[0], "cgroup.subtree_control", "+memory +pids") < 0)
    return -1;
  return 0;
}

static int try_v1(void) {
  if (open_own("cgroup", "memory", &own_fd[0]) < 0 || open_own("cgroup", "pids", &own_fd[1]) < 0)
    return -1;
  if (make_parent(0) < 0 || make_parent(1) < 0)
    return -1;
  return 0;
}

int zb_cgroups_init(zb_error *err) {
  (void)err;
  snprintf(parent_name, sizeof parent_name, "zeroboot-%d-%s-%d", (int)zb_cfg.sdk_pid, zb_cfg.template_name,
           (int)getpid());
  if (try_v2() == 0) {
    mode = MODE_V2;
    return 0;
  }
  close_all();
  if (try_v1() == 0) {
    mode = MODE_V1;
    return 0;
  }
  close_all();
  mode = MODE_NONE;
  return 0;
}

unsigned zb_cgroups_features(void) {
  switch (mode) {
  case MODE_V1:
    return ZB_FEATURE_CGROUP_V1;
  case MODE_V2:
    return ZB_FEATURE_CGROUP_V2;
  default:
    return ZB_FEATURE_RLIMIT_MEMORY;
  }
}

static long long read_oom_kills(unsigned slot) {
  char path[64];
  snprintf(path, sizeof path, mode == MODE_V2 ? "s%u/memory.events" : "s%u/memory.oom_control", slot);
  int fd = openat(parent_fd[0], path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -1;
  char buf[512];
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0)
    return -1;
  buf[n] = '\0';
  char *p = strstr(buf, "oom_kill ");
  return p ? atoll(p + 9) : -1;
}

static int prepare_slot(unsigned slot, zb_error *err) {
  if (slot_ready[slot])
    return 0;
  char name[32], value[32];
  snprintf(name, sizeof name, "s%u", slot);
  int count = mode == MODE_V1 ? 2 : 1;
  for (int i = 0; i < count; i++)
    if (mkdirat(parent_fd[i], name, 0755) < 0 && errno != EEXIST)
      return zb_fail(err, ZB_STEP_CGROUP_SETUP, errno, "mkdir cgroup %s", name);
  unsigned long long bytes = (unsigned long long)zb_cfg.memory_mb << 20;
  char file[64];
  snprintf(value, sizeof value, "%llu", bytes);
  snprintf(file, sizeof file, mode == MODE_V2 ? "%s/memory.max" : "%s/memory.limit_in_bytes", name);
  if (write_at(parent_fd[0], file, value) < 0)
    return zb_fail(err, ZB_STEP_CGROUP_SETUP, errno, "write %s", file);
  if (mode == MODE_V2) {
    /* No swap either: a memory limit that pages out is not a limit. */
    snprintf(file, sizeof file, "%s/memory.swap.max", name);
    write_at(parent_fd[0], file, "0");
  }
  snprintf(value, sizeof value, "%u", zb_cfg.max_processes);
  snprintf(file, sizeof file, "%s/pids.max", name);
  if (write_at(parent_fd[mode == MODE_V1 ? 1 : 0], file, value) < 0)
    return zb_fail(err, ZB_STEP_CGROUP_SETUP, errno, "write %s", file);
  slot_ready[slot] = 1;
  return 0;
}

int zb_cgroups_slot_fd_v2(unsigned slot, zb_error *err) {
  if (mode != MODE_V2)
    return -1;
  if (prepare_slot(slot, err) < 0)
    return -2;
  char name[32];
  snprintf(name, sizeof name, "s%u", slot);
  int fd = openat(parent_fd[0], name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return zb_fail(err, ZB_STEP_CGROUP_SETUP, errno, "open cgroup %s", name), -2;
  return fd;
}

/* v1 has no CLONE_INTO_CGROUP. Rather than writing the child's pid to cgroup.procs itself, which can
 * block the server's loop for an RCU grace period, the server opens the files and the sandbox writes "0"
 * (itself) during its own setup, in parallel. The kernel checks the opener's credentials on that write
 * (of->file->f_cred since 5.16), so the sandbox needs no privilege for it. The files are opened once per
 * slot and kept: opening two cgroupfs files per fork cost ~0.1 ms of the server's loop. */
int zb_cgroups_attach_fds(unsigned slot, int fds[2], zb_error *err) {
  fds[0] = fds[1] = -1;
  if (mode != MODE_V1)
    return 0; /* v2: CLONE_INTO_CGROUP; none: rlimits */
  if (prepare_slot(slot, err) < 0)
    return -1;
  char file[64];
  snprintf(file, sizeof file, "s%u/cgroup.procs", slot);
  for (int i = 0; i < 2; i++) {
    if (slot_procs_fd[slot][i] == 0) {
      int fd = openat(parent_fd[i], file, O_WRONLY | O_CLOEXEC);
      if (fd < 0)
        return zb_fail(err, ZB_STEP_CGROUP_ATTACH, errno, "open %s", file);
      slot_procs_fd[slot][i] = fd + 1;
    }
    fds[i] = slot_procs_fd[slot][i] - 1;
  }
  return 0;
}

int zb_cgroups_join(zb_error *err) {
  for (int fd = ZB_FD_CGROUP_MEMORY; fd <= ZB_FD_CGROUP_PIDS; fd++) {
    if (fcntl(fd, F_GETFD) < 0)
      continue;
    ssize_t n = write(fd, "0", 1);
    int saved = errno;
    close(fd);
    if (n != 1)
      return zb_fail(err, ZB_STEP_CGROUP_ATTACH, saved, "join the sandbox's cgroup");
  }
  return 0;
}

bool zb_cgroups_oom_killed(unsigned slot) {
  if (mode == MODE_NONE || !slot_ready[slot])
    return false;
  /* The slot's counter only grows, and a slot has one sandbox at a time: compare with the last exit's. */
  long long now = read_oom_kills(slot);
  bool killed = now >= 0 && now > slot_oom_before[slot];
  if (now >= 0)
    slot_oom_before[slot] = now;
  return killed;
}

void zb_cgroups_cleanup(void) {
  if (mode == MODE_NONE)
    return;
  int count = mode == MODE_V1 ? 2 : 1;
  for (unsigned slot = 0; slot < ZB_MAX_SLOTS; slot++) {
    if (!slot_ready[slot])
      continue;
    char name[32];
    snprintf(name, sizeof name, "s%u", slot);
    for (int i = 0; i < count; i++) {
      if (slot_procs_fd[slot][i] > 0)
        close(slot_procs_fd[slot][i] - 1);
      slot_procs_fd[slot][i] = 0;
      unlinkat(parent_fd[i], name, AT_REMOVEDIR);
    }
    slot_ready[slot] = 0;
    slot_oom_before[slot] = 0;
  }
  for (int i = 0; i < count; i++)
    unlinkat(own_fd[i], parent_name, AT_REMOVEDIR);
  close_all();
  mode = MODE_NONE;
}

/* The address space the sandbox already has, in bytes: the runtime it was forked from, with whatever it
 * reserved. V8 reserves far more than it uses (its code range and heap cages: over 1 GiB of PROT_NONE), so
 * an RLIMIT_AS of memoryMb alone would leave a forked Node no room for its next page. 0 if unknown. */
static rlim_t mapped_bytes(void) {
  char text[128];
  int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
  ssize_t n = fd < 0 ? -1 : read(fd, text, sizeof text - 1);
  if (fd >= 0)
    close(fd);
  if (n <= 0)
    return 0;
  text[n] = '\0';
  return (rlim_t)strtoull(text, NULL, 10) * (rlim_t)sysconf(_SC_PAGESIZE);
}

/* In the sandbox, before the capabilities go. Without a memory cgroup, RLIMIT_AS holds each process to
 * memoryMb more than the sandbox had mapped when it was forked (its children inherit the same limit). */
int zb_limits_apply(zb_error *err) {
  struct {
    int resource;
    rlim_t value;
  } limits[] = {
      {RLIMIT_CORE, 0},
      {RLIMIT_NPROC, zb_cfg.max_processes},
      {RLIMIT_FSIZE, (rlim_t)zb_cfg.disk_mb << 20},
      {RLIMIT_AS, mode == MODE_NONE ? mapped_bytes() + ((rlim_t)zb_cfg.memory_mb << 20) : RLIM_INFINITY},
  };
  for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++) {
    if (limits[i].value == RLIM_INFINITY)
      continue;
    struct rlimit rl = {limits[i].value, limits[i].value};
    if (setrlimit(limits[i].resource, &rl) < 0)
      return zb_fail(err, ZB_STEP_RLIMITS, errno, "setrlimit %d", limits[i].resource);
  }
  return 0;
}
