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
#include "protocol.h"

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
  if (zb_cfg.layer_dir[0] != '\0') {
    join(path, sizeof path, root, ZB_LAYERS_DIR);
    if (mkdir(path, 0755) < 0 && errno != EEXIST)
      return zb_fail(err, ZB_STEP_ROOTFS, errno, "mkdir %s", path);
    if (mount(zb_cfg.layer_dir, path, NULL, MS_BIND | MS_REC, NULL) < 0)
      return zb_fail(err, ZB_STEP_ROOTFS, errno, "bind the layer store %s", zb_cfg.layer_dir);
    if (make_readonly(path, false, err) < 0)
      return -1;
  }
  if (add_devices(root, err) < 0)
    return -1;
  /* A proc mount must already be visible in a mount namespace before a user namespace may mount a new
   * one there (mnt_already_visible() in fs/namespace.c): this one, of the host's pid namespace, is that
   * proof. Every sandbox covers it with its own, and cannot uncover it since it arrives locked. */
  join(path, sizeof path, root, "/proc");
  /* Rootless, the server may not mount a proc of the host's pid namespace (that needs CAP_SYS_ADMIN in the
   * namespace owning it, the host's): a bind of the host's /proc is the same proof. Its submounts come
   * along, and each sandbox's proc mount succeeds only if they cover nothing but empty directories, which
   * a container's masked /proc paths do not (doctor: systempaths=unconfined). */
  if (zb_cfg.rootless ? mount("/proc", path, NULL, MS_BIND | MS_REC, NULL) < 0
                      : mount("proc", path, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
    return zb_fail(err, ZB_STEP_ROOTFS, errno, "mount proc");
  /* Not read-only: a proof mount locked read-only would oblige every sandbox's proc to be read-only too. */
  struct mount_attr proc_attr = {.attr_set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC};
  if (zb_cfg.rootless && syscall(SYS_mount_setattr, AT_FDCWD, path, AT_RECURSIVE, &proc_attr, sizeof proc_attr) < 0)
    return zb_fail(err, ZB_STEP_ROOTFS, errno, "make the bound /proc nosuid");
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

static int layer_store_fd = -1;

int zb_rootfs_open_layer(const char *name, zb_error *err) {
  if (layer_store_fd < 0)
    return zb_fail(err, ZB_STEP_LAYERS, ENOENT, "this fork-server has no layer store");
  int fd = openat(layer_store_fd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return zb_fail(err, ZB_STEP_LAYERS, errno, "open layer %s", name);
  return fd;
}

void zb_rootfs_close_layer_store(void) {
  if (layer_store_fd >= 0)
    close(layer_store_fd);
  layer_store_fd = -1;
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
  if (zb_cfg.layer_dir[0] != '\0') {
    /* Overlayfs takes a layer only from a mount of the mounter's own namespace: this copy of the
     * server's bind. Opened now, then covered, so that no code in the sandbox ever sees the store. */
    layer_store_fd = open(ZB_LAYERS_DIR, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (layer_store_fd < 0)
      return zb_fail(err, ZB_STEP_MOUNT_WRITABLE, errno, "open %s", ZB_LAYERS_DIR);
    if (mount("zeroboot-layers", ZB_LAYERS_DIR, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k,mode=0555") < 0)
      return zb_fail(err, ZB_STEP_MOUNT_WRITABLE, errno, "cover %s", ZB_LAYERS_DIR);
  }
  /* The tmpfs stays mounted where it was made: detaching it would cost an expedited RCU grace period
   * (namespace_unlock() in fs/namespace.c), ~0.5 ms here, for nothing but tidiness. */
  if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
    return zb_fail(err, ZB_STEP_MOUNT_PROC, errno, "mount proc");
  if (chdir("/workspace") < 0)
    return zb_fail(err, ZB_STEP_MOUNT_WRITABLE, errno, "chdir /workspace");
  return 0;
}

/* A Sandbox's run: its layers, read-only, under a copy-on-write overlay whose upper directory is on this
 * sandbox's own tmpfs, bound over /workspace and /tmp. The tmpfs, sized to what the Sandbox may still
 * write, is where the run's writes land; the SDK copies them into a new layer once every process of the
 * run is gone (core/src/layers.ts). Its pages are charged to this sandbox's cgroup slot until the SDK
 * closes its fd on the upper directory after that copy; the layers on the host belong to no cgroup.
 *
 * The layers are O_PATH fds below the store's bind, named by /proc/self/fd paths in the options. */
int zb_rootfs_layers(const int *layer_fds, unsigned count, uint64_t disk_bytes, zb_error *err) {
  if (count == 0 || count > ZB_MAX_LAYERS)
    return zb_fail(err, ZB_STEP_LAYERS, EINVAL, "%u layers (1 to %d)", count, ZB_MAX_LAYERS);
  /* tmpfs rounds the size to pages and takes 0 for "unlimited": never less than a page. */
  unsigned long long size = disk_bytes < 4096 ? 4096 : (unsigned long long)disk_bytes;
  char options[128];
  snprintf(options, sizeof options, "size=%llu", size);
  if (mount(NULL, ZB_STAGING_DIR, NULL, MS_REMOUNT | MS_NOSUID | MS_NODEV, options) < 0)
    return zb_fail(err, ZB_STEP_LAYERS, errno, "resize the writable tmpfs");
  static const char *const dirs[] = {ZB_STAGING_DIR "/upper", ZB_STAGING_DIR "/work", ZB_STAGING_DIR "/root"};
  for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++)
    if (mkdir(dirs[i], 0755) < 0)
      return zb_fail(err, ZB_STEP_LAYERS, errno, "mkdir %s", dirs[i]);
  char data[4096];
  size_t used = (size_t)snprintf(data, sizeof data, "userxattr,upperdir=%s/upper,workdir=%s/work,lowerdir=", ZB_STAGING_DIR, ZB_STAGING_DIR);
  for (unsigned i = 0; i < count; i++) {
    int n = snprintf(data + used, sizeof data - used, "%s/proc/self/fd/%d", i == 0 ? "" : ":", layer_fds[i]);
    if (n < 0 || (size_t)n >= sizeof data - used)
      return zb_fail(err, ZB_STEP_LAYERS, E2BIG, "%u layers do not fit in the overlay's options", count);
    used += (size_t)n;
  }
  if (mount("overlay", ZB_STAGING_DIR "/root", "overlay", MS_NOSUID | MS_NODEV, data) < 0)
    return zb_fail(err, ZB_STEP_LAYERS, errno, "mount the overlay of %u layers", count);
  if (mount(ZB_STAGING_DIR "/root/workspace", "/workspace", NULL, MS_BIND, NULL) < 0 ||
      mount(ZB_STAGING_DIR "/root/tmp", "/tmp", NULL, MS_BIND, NULL) < 0)
    return zb_fail(err, ZB_STEP_LAYERS, errno, "bind the overlay on /workspace and /tmp");
  int upper = open(ZB_STAGING_DIR "/upper", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (upper < 0)
    return zb_fail(err, ZB_STEP_LAYERS, errno, "open the upper directory");
  /* Hide the staging tmpfs: writing to the upper directory behind the overlay's back is undefined
   * behaviour for the overlay. The binds on /workspace, /tmp and /dev/shm keep working. */
  if (mount("zeroboot-staging", ZB_STAGING_DIR, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k,mode=0555") < 0) {
    close(upper);
    return zb_fail(err, ZB_STEP_LAYERS, errno, "cover the staging tmpfs");
  }
  if (chdir("/workspace") < 0) {
    close(upper);
    return zb_fail(err, ZB_STEP_LAYERS, errno, "chdir /workspace");
  }
  return upper;
}
