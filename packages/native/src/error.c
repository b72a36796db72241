#include "error.h"

#include <stdio.h>
#include <string.h>

int zb_fail(zb_error *err, int step, int errnum, const char *fmt, ...) {
  if (err == NULL)
    return -1;
  err->step = step;
  err->errnum = errnum;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(err->message, sizeof err->message, fmt, ap);
  va_end(ap);
  if (errnum != 0 && n >= 0 && (size_t)n < sizeof err->message)
    snprintf(err->message + n, sizeof err->message - (size_t)n, ": %s", strerror(errnum));
  return -1;
}

const char *zb_step_name(int step) {
  static const char *const names[] = {
      "none", "config", "clone", "userns-map", "cgroup-attach", "sync", "credentials", "cgroup-namespace",
      "hostname", "mount-writable", "mount-proc", "rlimits", "landlock", "capabilities", "no-new-privs",
      "seccomp", "stdio", "request", "stdin", "files", "rootfs", "namespaces", "cgroup-setup", "signals",
      "child-died", "layers", "file-op",
  };
  if (step < 0 || (size_t)step >= sizeof names / sizeof names[0])
    return "unknown";
  return names[step];
}
