/* The sandbox's filesystem view.
 *
 * The fork-server builds the read-only part once: a small tmpfs root holding read-only recursive binds of
 * the host's system directories (/usr, /lib*, the runtime's own prefix), an /etc prepared by the SDK (no
 * shadow, no host users), device nodes bound from the host, a proc mount, and empty mountpoints. It then
 * pivot_root()s into that tree, so its own mount namespace is exactly the sandbox's view and each clone3()
 * copies only that handful of mounts, not the host's table.
 *
 * Every sandbox adds its writable part: one size-capped tmpfs (diskMb) at /run/zeroboot whose directories
 * are bound onto /workspace, /tmp and /dev/shm, and a proc mount of its own pid namespace over the server's. The server's
 * mounts arrive in the sandbox's mount namespace as MNT_LOCKED (they come from a more privileged user
 * namespace), so sandbox code can neither unmount them to reveal what lies below nor make them writable. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/mount.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"

#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif

static const char *const device_nodes[] = {"null", "zero", "full", "random", "urandom"};

static int join(char *out, size_t size, const char *a, const char *b) {
  int n = snprintf(out, size, "%s%s", a, b);
  return (n < 0 || (size_t)n >= size) ? -1 : 0;
}

/* Read-only, nosuid and nodev for the bind and everything below it. mount_setattr (5.12) does the whole
 * tree in one call; older kernels get the top mount only, through the classic remount. */
static int make_readonly(const char *path, bool allow_devices, zb_error *err) {
  struct mount_attr attr = {.attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | (allow_devices ? 0 : MOUNT_ATTR_NODEV)};
  if (syscall(SYS_mount_setattr, AT_FDCWD, path, AT_RECURSIVE, &attr, sizeof attr) == 0)
    return 0;
  unsigned long flags = MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | (allow_devices ? 0 : MS_NODEV);
  if (mount(NULL, path, NULL, flags, NULL) < 0)
    return zb_fail(err, ZB_STEP_ROOTFS, errno, "remount %s read-only", path);
  return 0;
}

static int bind_readonly(const char *host_path, const char *target, bool is_dir, zb_error *err) {
  if (is_dir) {
    if (zb_mkdir_p(target, 0755) < 0)
      return zb_fail(err, ZB_STEP_ROOTFS, errno, "mkdir %s", target);
  } else {
    int fd = open(target, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
      return zb_fail(err, ZB_STEP_ROOTFS, errno, "create mountpoint %s", target);
    close(fd);
  }
  if (mount(host_path, target, NULL, MS_BIND | MS_REC, NULL) < 0)
    return zb_fail(err, ZB_STEP_ROOTFS, errno, "bind %s", host_path);
  return make_readonly(target, false, err);
}

/* A host path becomes the same path in the sandbox: a symlink stays a symlink (merged-/usr systems link
 * /bin to usr/bin), a directory or file becomes a read-only bind. Missing paths are skipped. An entry
 * "HOST=>SANDBOX" puts the host path elsewhere (the Node binary, whose host path may be a home). */
static int add_host_path(const char *root, const char *entry, zb_error *err) {
  char host_path[PATH_MAX], target[PATH_MAX];
  const char *arrow = strstr(entry, "=>");
  size_t host_length = arrow != NULL ? (size_t)(arrow - entry) : strlen(entry);
  if (host_length >= sizeof host_path)
    return zb_fail(err, ZB_STEP_ROOTFS, ENAMETOOLONG, "%s", entry);
  memcpy(host_path, entry, host_length);
  host_path[host_length] = '\0';
  if (join(target, sizeof target, root, arrow != NULL ? arrow + 2 : host_path) < 0)
    return zb_fail(err, ZB_STEP_ROOTFS, ENAMETOOLONG, "%s", entry);
  struct stat st;
  if (lstat(host_path, &st) < 0)
    return errno == ENOENT ? 0 : zb_fail(err, ZB_STEP_ROOTFS, errno, "lstat %s", host_path);
  if (zb_mkdir_parents(target) < 0)
    return zb_fail(err, ZB_STEP_ROOTFS, errno, "mkdir parent of %s", target);
  if (S_ISLNK(st.st_mode)) {
    char link[PATH_MAX];
    ssize_t n = readlink(host_path, link, sizeof link - 1);
    if (n < 0)
      return zb_fail(err, ZB_STEP_ROOTFS, errno, "readlink %s", host_path);
    link[n] = '\0';
    if (symlink(link, target) < 0 && errno != EEXIST)
      return zb_fail(err, ZB_STEP_ROOTFS, errno, "symlink %s", target);
    return 0;
  }
  if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode))
    return zb_fail(err, ZB_STEP_ROOTFS, EINVAL, "%s is neither a directory, a file nor a symlink", host_path);
  return bind_readonly(host_path, target, S_ISDIR(st.st_mode), err);
}

static int add_devices(const char *root, zb_error *err) {
  char path[PATH_MAX], host[64];
  for (size_t i = 0; i < sizeof device_nodes / sizeof device_nodes[0]; i++) {
    snprintf(host, sizeof host, "/dev/%s", device_nodes[i]);
    if (snprintf(path, sizeof path, "%s/dev/%s", root, device_nodes[i]) >= (int)sizeof path)
      return zb_fail(err, ZB_STEP_ROOTFS, ENAMETOOLONG, "dev path");
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0)
      return zb_fail(err, ZB_STEP_ROOTFS, errno, "create %s", path);
    close(fd);
    if (mount(host, path, NULL, MS_BIND, NULL) < 0)
      return zb_fail(err, ZB_STEP_ROOTFS, errno, "bind %s", host);
    if (mount(NULL, path, NULL, MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NOEXEC, NULL) < 0)
      return zb_fail(err, ZB_STEP_ROOTFS, errno, "remount %s", path);
  }
  static const char *const links[][2] = {
      {"fd", "/proc/self/fd"}, {"stdin", "/proc/self/fd/0"}, {"stdout", "/proc/self/fd/1"}, {"stderr", "/proc/self/fd/2"}};
  for (size_t i = 0; i < sizeof links / sizeof links[0]; i++) {
    snprintf(path, sizeof path, "%s/dev/%s", root, links[i][0]);
    if (symlink(links[i][1], path) < 0 && errno != EEXIST)
      return zb_fail(err, ZB_STEP_ROOTFS, errno, "symlink %s", path);
  }
  return 0;
}

int zb_rootfs_build(zb_error *err) {
  char root[PATH_MAX];
  if (zb_cfg.state_dir[0] != '/' || join(root, sizeof root, zb_cfg.state_dir, "/root") < 0)
    return zb_fail(err, ZB_STEP_CONFIG, 0, "config state_dir must be an absolute path");
  if (mkdir(root, 0755) < 0 && errno != EEXIST)
    return zb_fail(err, ZB_STEP_ROOTFS, errno, "mkdir %s", root);
  /* Nothing mounted from here on may propagate back to the host's mount namespace. */
  if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
    return zb_fail(err, ZB_STEP_ROOTFS, errno, "make / private");
  if (mount("zeroboot-root", root, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=4m,nr_inodes=4096") < 0)
    return zb_fail(err, ZB_STEP_ROOTFS, errno, "mount the root tmpfs");

  static const char *const dirs[] = {"/proc", "/dev", "/dev/shm", "/workspace", "/tmp", "/etc", "/run",
                                     ZB_STAGING_DIR, "/home", "/var", "/var/tmp"};
  char path[PATH_MAX];
  for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
    join(path, sizeof path, root, dirs[i]);
    if (mkdir(path, 0755) < 0 && errno != EEXIST)
      return zb_fail(err, ZB_STEP_ROOTFS, errno, "mkdir %s", path);
  }
  for (int i = 0; i < zb_cfg.ro_path_count; i++)
    if (add_host_path(root, zb_cfg.ro_paths[i], err) < 0)
      return -1;
  if (zb_cfg.etc_dir[0] != '\0') {
    join(path, sizeof path, root, "/etc");
    if (mount(zb_cfg.etc_dir, path, NULL, MS_BIND | MS_REC, NULL) < 0)
      return zb_fail(err, ZB_STEP_ROOTFS, errno, "bind %s on /etc", zb_cfg.etc_dir);
    if (make_readonly(path, false, err) < 0)
      return -1;
  }
  if (add_devices(root, err) < 0)
    return -1;
  /* A proc mount must already be visible in a mount namespace before a user namespace may mount a new
   * one there (mnt_already_visible() in fs/namespace.c): this one, of the host's pid namespace, is that
   * proof. Every sandbox covers it with its own, and cannot uncover it since it arrives locked. */
  join(path, sizeof path, root, "/proc");
  if (mount("proc", path, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
    return zb_fail(err, ZB_STEP_ROOTFS, errno, "mount proc");
  if (mount(NULL, root, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) < 0)
    return zb_fail(err, ZB_STEP_ROOTFS, errno, "remount the root read-only");

  /* pivot_root(".", ".") stacks the old root on top of the new one; detaching it leaves only the new. */
  if (chdir(root) < 0)
    return zb_fail(err, ZB_STEP_ROOTFS, errno, "chdir %s", root);
  if (syscall(SYS_pivot_root, ".", ".") < 0)
    return zb_fail(err, ZB_STEP_ROOTFS, errno, "pivot_root");
  if (umount2(".", MNT_DETACH) < 0)
    return zb_fail(err, ZB_STEP_ROOTFS, errno, "detach the old root");
  if (chdir("/") < 0)
    return zb_fail(err, ZB_STEP_ROOTFS, errno, "chdir /");
  return 0;
}

int zb_rootfs_sandbox(zb_error *err) {
  char options[128];
  unsigned inodes = zb_cfg.disk_mb * 256u < 4096u ? 4096u : zb_cfg.disk_mb * 256u;
  snprintf(options, sizeof options, "size=%um,nr_inodes=%u,mode=0755", zb_cfg.disk_mb, inodes);
  if (mount("zeroboot", ZB_STAGING_DIR, "tmpfs", MS_NOSUID | MS_NODEV, options) < 0)
    return zb_fail(err, ZB_STEP_MOUNT_WRITABLE, errno, "mount the writable tmpfs");
  /* Directories of the tmpfs, bound onto /workspace, /tmp and /dev/shm. Overlays here (upper on the
   * tmpfs, the root's empty directory as lower: the layout a layered filesystem stacks into) measured
   * +0.25 ms per run and +0.6 ms of CPU per sandbox, for no behaviour a run can see: they come with the
   * layers that need them. */
  static const struct {
    const char *name;
    const char *target;
    mode_t mode;
  } writable[] = {
      {ZB_STAGING_DIR "/workspace", "/workspace", 0755},
      {ZB_STAGING_DIR "/tmp", "/tmp", 01777},
      {ZB_STAGING_DIR "/shm", "/dev/shm", 01777},
  };
  for (size_t i = 0; i < sizeof writable / sizeof writable[0]; i++) {
    /* mkdir honours the umask; chmod sets the sticky bit exactly. */
    if (mkdir(writable[i].name, 0700) < 0 || chmod(writable[i].name, writable[i].mode) < 0)
      return zb_fail(err, ZB_STEP_MOUNT_WRITABLE, errno, "mkdir %s", writable[i].name);
    if (mount(writable[i].name, writable[i].target, NULL, MS_BIND, NULL) < 0)
      return zb_fail(err, ZB_STEP_MOUNT_WRITABLE, errno, "bind %s", writable[i].target);
  }
  /* The tmpfs stays mounted where it was made: detaching it would cost an expedited RCU grace period
   * (namespace_unlock() in fs/namespace.c), ~0.5 ms here, for nothing but tidiness. */
  if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
    return zb_fail(err, ZB_STEP_MOUNT_PROC, errno, "mount proc");
  if (chdir("/workspace") < 0)
    return zb_fail(err, ZB_STEP_MOUNT_WRITABLE, errno, "chdir /workspace");
  return 0;
}
