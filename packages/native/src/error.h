/* The error convention of libzeroboot, after crun's: a function that can fail returns a negative int and,
 * when it does, fills a caller-owned zb_error with the step that failed, the errno and a message. The
 * library never exits or aborts on behalf of its caller. */
#ifndef ZB_ERROR_H
#define ZB_ERROR_H

#include <stdarg.h>

/* Where sandbox setup can fail. The values are part of the wire protocol (see protocol.h): keep them
 * stable and append new ones at the end. core/src/native-protocol.ts mirrors this list. */
enum zb_step {
  ZB_STEP_NONE = 0,
  ZB_STEP_CONFIG = 1,
  ZB_STEP_CLONE = 2,
  ZB_STEP_USERNS_MAP = 3,
  ZB_STEP_CGROUP_ATTACH = 4,
  ZB_STEP_SYNC = 5,
  ZB_STEP_CREDENTIALS = 6,
  ZB_STEP_CGROUP_NAMESPACE = 7,
  ZB_STEP_HOSTNAME = 8,
  ZB_STEP_MOUNT_WRITABLE = 9,
  ZB_STEP_MOUNT_PROC = 10,
  ZB_STEP_RLIMITS = 11,
  ZB_STEP_LANDLOCK = 12,
  ZB_STEP_CAPABILITIES = 13,
  ZB_STEP_NO_NEW_PRIVS = 14,
  ZB_STEP_SECCOMP = 15,
  ZB_STEP_STDIO = 16,
  ZB_STEP_REQUEST = 17,
  ZB_STEP_STDIN = 18,
  ZB_STEP_FILES = 19,
  ZB_STEP_ROOTFS = 20,
  ZB_STEP_NAMESPACES = 21,
  ZB_STEP_CGROUP_SETUP = 22,
  ZB_STEP_SIGNALS = 23,
  ZB_STEP_CHILD_DIED = 24,
  ZB_STEP_LAYERS = 25,
  ZB_STEP_FILE_OP = 26,
};

typedef struct zb_error {
  int step;      /* enum zb_step */
  int errnum;    /* errno at the failure, 0 when not a system error */
  char message[256];
} zb_error;

/* Fills err (when non-NULL) and returns -1, so callers can write `return zb_fail(err, ...)`. */
int zb_fail(zb_error *err, int step, int errnum, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

const char *zb_step_name(int step);

#endif
