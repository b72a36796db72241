/* zeroboot-userns: starts a fork-server in a user namespace of its own, for rootless mode (see userns.c).
 *
 *   zeroboot-userns PATH ARGV0 [ARG...]
 *
 * Enters a new user namespace as its uid 0 (the caller's uid and gid mapped to 0, setgroups denied), then
 * executes PATH with ARGV0 and the ARGs. The runtime it becomes is root there, so it keeps every
 * capability over that namespace across the exec. A runtime cannot always do this itself: the kernel
 * refuses unshare(CLONE_NEWUSER) to a process with threads (EINVAL), and Node starts its platform threads
 * before any script runs. Failures are reported as the fork-servers report theirs: a line on stderr and
 * exit status 70 + the step (error.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: zeroboot-userns PATH ARGV0 [ARG...]\n");
    return 64;
  }
  zb_error err = {0};
  if (zb_userns_enter_own(&err) < 0) {
    fprintf(stderr, "zeroboot fork-server: %s\n", err.message);
    return 70 + err.step;
  }
  execv(argv[1], argv + 2);
  fprintf(stderr, "zeroboot fork-server: exec %s: %s\n", argv[1], strerror(errno));
  return 127;
}
