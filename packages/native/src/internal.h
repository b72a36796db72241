/* Shared between the library's files; not part of the API. Each kernel mechanism has one file and one
 * entry shape: int zb_<mechanism>_<verb>(..., zb_error *err), negative on failure. */
#ifndef ZB_INTERNAL_H
#define ZB_INTERNAL_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"

#define ZB_MAX_RO_PATHS 64
#define ZB_MAX_SLOTS 4096
#define ZB_SANDBOX_UID 1000u /* uid and gid of the code inside every sandbox */

/* Fixed fds inside a sandbox between fork and the run (see sandbox.c). */
enum {
  ZB_FD_REQUEST = 3,
  ZB_FD_STDOUT = 4,
  ZB_FD_STDERR = 5,
  ZB_FD_STATUS = 6,
  ZB_FD_GO = 7,
  ZB_FD_CGROUP_MEMORY = 8, /* v1: the slot's cgroup.procs, opened by the server; -1 otherwise */
  ZB_FD_CGROUP_PIDS = 9,
  ZB_FD_FIRST_FREE = 10,
};
#define ZB_CHILD_FDS 7

/* Each sandbox's writable tmpfs (see rootfs.c); /workspace, /tmp and /dev/shm are its directories. */
#define ZB_STAGING_DIR "/run/zeroboot"

struct zb_config {
  char state_dir[PATH_MAX];
  char etc_dir[PATH_MAX];
  char layer_dir[PATH_MAX]; /* the SDK's layer store; empty: no Sandbox runs */
  char *ro_paths[ZB_MAX_RO_PATHS];
  int ro_path_count;
  char template_name[64];
  char hostname[64];
  unsigned host_uid; /* the host uid every sandbox's uid 1000 maps to (see userns.c) */
  unsigned memory_mb;
  unsigned max_processes;
  unsigned disk_mb;
  int control_fd;
  pid_t sdk_pid;
  bool madv_dofork; /* runtimes whose heap is MADV_DONTFORK (V8): undo it before every fork */
  bool rootless;    /* the fork-server is not root on the host: it runs in a user namespace of its own (userns.c) */
};

extern struct zb_config zb_cfg;

/* rootfs.c */
int zb_rootfs_build(zb_error *err);
int zb_rootfs_sandbox(zb_error *err);
/* The layer store (config layer_dir) is bound at ZB_LAYERS_DIR in the server's root; each sandbox opens it
 * before parking, then covers it, so its code never sees it. */
#define ZB_LAYERS_DIR "/run/layers"
int zb_rootfs_open_layer(const char *name, zb_error *err);
void zb_rootfs_close_layer_store(void);
/* At the request of a Sandbox's run: its layers (O_PATH fds, top first) as a copy-on-write overlay on
 * /workspace and /tmp, writes going to this sandbox's tmpfs, capped at disk_bytes. Returns an O_PATH fd
 * on the overlay's upper directory, for the SDK to collect the writes once the run is over. */
int zb_rootfs_layers(const int *layer_fds, unsigned count, uint64_t disk_bytes, zb_error *err);

/* userns.c */
int zb_userns_enter_own(zb_error *err); /* rootless: the fork-server's own user namespace */
int zb_userns_write_maps(pid_t pid, unsigned host_id, zb_error *err);
int zb_userns_become_sandbox_user(zb_error *err);

/* cgroups.c: per-slot memory and pids limits, v1 or v2; rlimits where neither is writable */
int zb_cgroups_init(zb_error *err);
unsigned zb_cgroups_features(void);
int zb_cgroups_slot_fd_v2(unsigned slot, zb_error *err); /* for CLONE_INTO_CGROUP; -1 without v2 */
/* v1: the slot's cgroup.procs files, for the sandbox to join itself (fds[i] = -1 when unused). The fds
 * stay cgroups.c's: the caller must not close them. */
int zb_cgroups_attach_fds(unsigned slot, int fds[2], zb_error *err);
int zb_cgroups_join(zb_error *err); /* in the sandbox */
bool zb_cgroups_oom_killed(unsigned slot);
void zb_cgroups_cleanup(void);
int zb_limits_apply(zb_error *err);

/* seccomp.c */
int zb_seccomp_prepare(zb_error *err);
int zb_seccomp_apply(zb_error *err);       /* before parking: the main filter (mount(2) still allowed) */
int zb_seccomp_apply_final(zb_error *err); /* after the request: refuses mount(2) too */

/* landlock.c */
int zb_landlock_probe(void); /* ABI version, <= 0 when unavailable */
int zb_landlock_apply(zb_error *err);

/* caps.c */
int zb_caps_drop_bounding(zb_error *err); /* before parking: bounding and ambient sets */
int zb_caps_drop_all(zb_error *err);      /* after the request: every set */

/* sandbox.c: runs in the child, right after clone3 */
int zb_sandbox_setup(zb_error *err);

/* util.c */
int zb_mkdir_p(const char *path, mode_t mode);
int zb_mkdir_parents(const char *path);
ssize_t zb_write_all(int fd, const void *buf, size_t len);
ssize_t zb_read_all(int fd, void *buf, size_t len);

#endif
