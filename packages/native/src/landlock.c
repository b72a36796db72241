/* Landlock scopes (Linux 6.12, ABI 6): every sandbox gets its own Landlock domain that scopes
 *  - abstract unix sockets: it can connect only to abstract sockets created inside its own domain, so not
 *    to another sandbox's (sandboxes of one template share the fork-server's empty network namespace, and
 *    abstract socket names live in the network namespace), nor the host's (a different netns anyway);
 *  - signals: it can signal only processes of its own domain.
 * No filesystem rules: the mount layout already makes everything but the writable tmpfs read-only. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"

#ifndef SYS_landlock_create_ruleset
#define SYS_landlock_create_ruleset 444
#define SYS_landlock_restrict_self 446
#endif

/* The headers of older distributions lack the `scoped` member: declare the ABI 6 layout ourselves. */
struct zb_landlock_ruleset_attr {
  uint64_t handled_access_fs;
  uint64_t handled_access_net;
  uint64_t scoped;
};

#define ZB_LANDLOCK_CREATE_RULESET_VERSION (1u << 0)
#define ZB_LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET (1ull << 0)
#define ZB_LANDLOCK_SCOPE_SIGNAL (1ull << 1)

static int landlock_abi = -2; /* -2: not probed yet */

int zb_landlock_probe(void) {
  if (landlock_abi == -2) {
    long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, ZB_LANDLOCK_CREATE_RULESET_VERSION);
    landlock_abi = abi < 0 ? -1 : (int)abi;
  }
  return landlock_abi;
}

int zb_landlock_apply(zb_error *err) {
  if (zb_landlock_probe() < 6)
    return 0; /* reported once in HELLO; doctor tells how to get it */
  struct zb_landlock_ruleset_attr attr = {
      .scoped = ZB_LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET | ZB_LANDLOCK_SCOPE_SIGNAL,
  };
  int fd = (int)syscall(SYS_landlock_create_ruleset, &attr, sizeof attr, 0);
  if (fd < 0)
    return zb_fail(err, ZB_STEP_LANDLOCK, errno, "landlock_create_ruleset");
  long rc = syscall(SYS_landlock_restrict_self, fd, 0);
  int saved = errno;
  close(fd);
  if (rc < 0)
    return zb_fail(err, ZB_STEP_LANDLOCK, saved, "landlock_restrict_self");
  return 0;
}
