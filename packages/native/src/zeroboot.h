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

/* Keys: state_dir, etc_dir, layer_dir, ro_path (repeatable; PATH, or HOST=>SANDBOX to bind it elsewhere), template, host_uid, memory_mb, max_processes, disk_mb,
 * control_fd, sdk_pid, hostname, madv_dofork (0/1),
 * rootless (0/1: the SDK is not root; see userns.c). Unknown keys and malformed numbers fail with ZB_STEP_CONFIG. */
int zb_config_set(const char *key, const char *value, zb_error *err);

int zb_zygote_init(zb_error *err);

int zb_zygote_serve(zb_error *err);

/* Before zb_sandbox_wait(): fds the runtime made in the sandbox and needs past it (the shell's pipes to
 * its pre-started shell). zb_sandbox_wait() closes every other fd above the request socket. At most 8. */
int zb_sandbox_keep_fd(int fd, zb_error *err);

/* On success *request points at a buffer the library owns until the process exits. On a closed request
 * channel (the SDK dropped this parked sandbox) the process exits 0. */
int zb_sandbox_wait(const uint8_t **request, uint32_t *size, zb_error *err);

/* Reports a failure to start the run to the SDK and exits the sandbox with status 127. */
void zb_sandbox_fail(const zb_error *err) __attribute__((noreturn));

/* Ends the run: closes stdout and stderr (the runtime has flushed them), tells the SDK the exit status
 * and exits. Status is 0-255. */
void zb_sandbox_finish(int status) __attribute__((noreturn));

/* The same for a runtime whose user code ran in a child process (the shell): takes that child's wait(2)
 * status, so that a script killed by a signal is reported as killed by it. */
void zb_sandbox_finish_wait_status(int wait_status) __attribute__((noreturn));

/* Walks a request's fields (protocol.h) for runtimes written in C or C++: start with *offset = 0. Returns
 * 1 with the next field, 0 at the end, -1 on a malformed request. */
int zb_request_next_field(const uint8_t *request, uint32_t size, uint32_t *offset, uint32_t *type,
                          const uint8_t **data, uint32_t *length);

#endif
