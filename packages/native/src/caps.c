/* Capabilities: the sandbox ends with none, in every set, and cannot regain any: the bounding set is
 * emptied (so not even a file capability could add one back; no_new_privs forbids that too), the ambient
 * set cleared, and permitted/effective/inheritable zeroed. Raw syscalls, no libcap. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <linux/capability.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"

/* Before parking: nothing any program the sandbox starts could ever gain (the shell's pre-started shell
 * is such a program). The sandbox's own effective set is untouched: it still has a mount to make. */
int zb_caps_drop_bounding(zb_error *err) {
  /* CAP_LAST_CAP of the headers may be older than the kernel: walk until the kernel says EINVAL. */
  for (int cap = 0; cap < 64; cap++) {
    if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0) {
      if (errno == EINVAL)
        break;
      return zb_fail(err, ZB_STEP_CAPABILITIES, errno, "drop capability %d from the bounding set", cap);
    }
  }
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
    return zb_fail(err, ZB_STEP_CAPABILITIES, errno, "clear ambient capabilities");
  return 0;
}

/* After the request: none left in any set. */
/* capset acts on the calling thread only: a second thread would keep what this one drops. A sandbox is
 * one thread when it parks (a fork copies the forking thread alone) and its runtime starts none before
 * user code; this makes that a checked fact (num_threads, field 20 of /proc/self/stat). */
static int single_threaded(zb_error *err) {
  char stat[512];
  int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
  ssize_t n = fd < 0 ? -1 : read(fd, stat, sizeof stat - 1);
  int saved = errno;
  if (fd >= 0)
    close(fd);
  if (n <= 0)
    return zb_fail(err, ZB_STEP_CAPABILITIES, n < 0 ? saved : EIO, "read /proc/self/stat");
  stat[n] = '\0';
  const char *field = strrchr(stat, ')'); /* the end of comm, which may hold spaces */
  for (int i = 2; field != NULL && i < 20; i++)
    field = strchr(field + 1, ' ');
  long threads = field == NULL ? -1 : strtol(field + 1, NULL, 10);
  if (threads != 1)
    return zb_fail(err, ZB_STEP_CAPABILITIES, EBUSY, "the sandbox has %ld threads before user code, not 1", threads);
  return 0;
}

int zb_caps_drop_all(zb_error *err) {
  if (single_threaded(err) < 0)
    return -1;
  struct __user_cap_header_struct header = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
  struct __user_cap_data_struct data[2] = {{0}};
  if (syscall(SYS_capset, &header, data) < 0)
    return zb_fail(err, ZB_STEP_CAPABILITIES, errno, "capset");
  if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0)
    return zb_fail(err, ZB_STEP_CAPABILITIES, errno, "PR_SET_KEEPCAPS");
  return 0;
}
