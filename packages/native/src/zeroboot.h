/* libzeroboot: the fork-server ("zygote") side of zeroboot.
 *
 * A runtime (a warm CPython, later Node or a shell server) loads this library, imports what it wants to
 * keep warm, then hands control to it:
 *
 *   zb_config_set(...)   for each setting, before init; strings are copied, the caller keeps ownership
 *   zb_zygote_init()     enters a private mount and network namespace, builds the read-only sandbox root
 *                        and pivots into it, prepares the seccomp program and the cgroup parent (each
 *                        slot's cgroup is made on its first use and reused)
 *   zb_zygote_serve()    the fork-server loop. Returns 1 in the server after an orderly shutdown, and 0 in a
 *                        freshly forked, fully isolated sandbox (pid 1 of its own namespaces, seccomp on,
 *                        no capabilities), which then warms itself up and calls:
 *   zb_sandbox_wait()    blocks until the SDK sends the run request; sets up stdin, files and stdio,
 *                        closes every other fd, sends RUN_STARTED and returns the request for the runtime
 *                        to run; the request socket stays open (close-on-exec) for zb_sandbox_finish().
 *
 * Every function returns a negative int on failure and fills the caller's zb_error (see error.h).
 * Not thread-safe: a fork-server is single-threaded by design (fork() copies one thread). */
#ifndef ZEROBOOT_H
#define ZEROBOOT_H

#include <stdint.h>

#include "error.h"

/* Keys: state_dir, etc_dir, ro_path (repeatable), template, uid_base, memory_mb, max_processes, disk_mb,
 * control_fd, sdk_pid, hostname. Unknown keys and malformed numbers fail with ZB_STEP_CONFIG. */
int zb_config_set(const char *key, const char *value, zb_error *err);

int zb_zygote_init(zb_error *err);

int zb_zygote_serve(zb_error *err);

/* On success *request points at a buffer the library owns until the process exits. On a closed request
 * channel (the SDK dropped this parked sandbox) the process exits 0. */
int zb_sandbox_wait(const uint8_t **request, uint32_t *size, zb_error *err);

/* Reports a failure to start the run to the SDK and exits the sandbox with status 127. */
void zb_sandbox_fail(const zb_error *err) __attribute__((noreturn));

/* Ends the run: closes stdout and stderr (the runtime has flushed them), tells the SDK the exit status
 * and exits. Status is 0-255. */
void zb_sandbox_finish(int status) __attribute__((noreturn));

#endif
