/* A sandbox's life inside the fork-server's child, from clone3() to the start of user code.
 *
 * zb_sandbox_setup() is the checklist before parking, in privilege order: it starts with every capability
 * of its new user namespace and ends with seccomp on, no_new_privs set and nothing but the capabilities
 * of that namespace, which a parked sandbox keeps for one last mount: a Sandbox's layers, known when the
 * request arrives. zb_sandbox_wait() finishes the job before any user code: the layers mounted (if any),
 * every capability dropped, mount(2) refused by a second filter. A failure at any setup step is written to
 * the status pipe as {step, errno} and the child exits; the server turns that into SPAWN_FAILED. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <linux/magic.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"
#include "protocol.h"
#include "request.h"
#include "zeroboot.h"

#ifndef CLOSE_RANGE_UNSHARE
#define CLOSE_RANGE_UNSHARE (1U << 1)
#endif

static int wait_for_go(zb_error *err) {
  /* The server writes one byte once our uid/gid maps are written (we join our cgroup right after). EOF
   * means it died before that. */
  char go = 0;
  ssize_t n;
  do
    n = read(ZB_FD_GO, &go, 1);
  while (n < 0 && errno == EINTR);
  close(ZB_FD_GO);
  if (n != 1)
    return zb_fail(err, ZB_STEP_SYNC, n < 0 ? errno : EPIPE, "the fork-server went away during setup");
  return 0;
}

static int reset_signals(zb_error *err) {
  sigset_t none;
  sigemptyset(&none);
  if (sigprocmask(SIG_SETMASK, &none, NULL) < 0)
    return zb_fail(err, ZB_STEP_SIGNALS, errno, "sigprocmask");
  /* The runtime may have set its own handlers (CPython's SIGINT); the sandbox starts from defaults for the
   * ones the server changed. SIGPIPE is ignored by the server. */
  signal(SIGPIPE, SIG_DFL);
  return 0;
}

static int stdio_to_null(zb_error *err) {
  int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (fd < 0)
    return zb_fail(err, ZB_STEP_STDIO, errno, "open /dev/null");
  for (int i = 0; i < 3; i++)
    if (dup2(fd, i) < 0)
      return zb_fail(err, ZB_STEP_STDIO, errno, "dup2 /dev/null");
  if (fd > 2)
    close(fd);
  return 0;
}

int zb_sandbox_setup(zb_error *err) {
  if (wait_for_go(err) < 0)
    return -1;
  if (reset_signals(err) < 0)
    return -1;
  if (zb_cgroups_join(err) < 0)
    return -1;
  if (zb_userns_become_sandbox_user(err) < 0)
    return -1;
  /* After joining the cgroup, so that the namespace's root is the sandbox's own cgroup. */
  if (unshare(CLONE_NEWCGROUP) < 0)
    return zb_fail(err, ZB_STEP_CGROUP_NAMESPACE, errno, "unshare(CLONE_NEWCGROUP)");
  if (sethostname(zb_cfg.hostname, strlen(zb_cfg.hostname)) < 0)
    return zb_fail(err, ZB_STEP_HOSTNAME, errno, "sethostname");
  if (zb_rootfs_sandbox(err) < 0)
    return -1;
  if (zb_limits_apply(err) < 0)
    return -1;
  if (zb_landlock_apply(err) < 0 || zb_caps_drop_bounding(err) < 0)
    return -1;
  /* Armed after the last credential change: the kernel clears the parent-death signal on every change of
   * uid or gid (commit_creds()), so armed earlier it would be gone by now (dropping capabilities, later,
   * keeps it). Before seccomp, which refuses PR_SET_PDEATHSIG so user code cannot clear it. Had the server died
   * in between, the request socket's other end, which it holds until READY, is closed, and
   * zb_sandbox_wait() exits. */
  if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
    return zb_fail(err, ZB_STEP_SIGNALS, errno, "PR_SET_PDEATHSIG");
  if (zb_seccomp_apply(err) < 0)
    return -1;
  return stdio_to_null(err);
}

/* ---- the run request ---- */

static uint8_t *request_buffer;
static uint32_t request_size;

static int receive(zb_error *err) {
  static uint8_t inline_buffer[ZB_REQUEST_INLINE_MAX];
  char control[CMSG_SPACE(sizeof(int))];
  struct iovec iov = {.iov_base = inline_buffer, .iov_len = sizeof inline_buffer};
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof control};
  ssize_t n;
  do
    n = recvmsg(ZB_FD_REQUEST, &msg, MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  if (n == 0)
    _exit(0); /* the SDK let this parked sandbox go */
  if (n < 0)
    return zb_fail(err, ZB_STEP_REQUEST, errno, "receive the request");
  zb_request_header header;
  int in_memfd = zb_request_check_header(inline_buffer, (size_t)n, &header, err);
  if (in_memfd < 0)
    return -1;
  if (!in_memfd) {
    request_buffer = inline_buffer;
    request_size = (uint32_t)n;
    return 0;
  }
  struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
  if (cmsg == NULL || cmsg->cmsg_type != SCM_RIGHTS || cmsg->cmsg_len != CMSG_LEN(sizeof(int)))
    return zb_fail(err, ZB_STEP_REQUEST, EPROTO, "large request without its memfd");
  int memfd;
  memcpy(&memfd, CMSG_DATA(cmsg), sizeof memfd);
  struct stat st;
  if (fstat(memfd, &st) < 0 || st.st_size != (off_t)header.total_size || st.st_size < (off_t)sizeof header)
    return zb_fail(err, ZB_STEP_REQUEST, EPROTO, "request memfd size mismatch");
  void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, memfd, 0);
  close(memfd);
  if (map == MAP_FAILED)
    return zb_fail(err, ZB_STEP_REQUEST, errno, "map the request");
  request_buffer = map;
  request_size = (uint32_t)st.st_size;
  return 0;
}

/* Walks the fields; calls visit for STDIN and FILE, the fields this layer handles. */
static int each_field(int (*visit)(uint32_t type, const uint8_t *data, uint32_t size, zb_error *err),
                      zb_error *err) {
  uint32_t offset = 0, type, size;
  const uint8_t *data;
  int rc;
  while ((rc = zb_request_next_field(request_buffer, request_size, &offset, &type, &data, &size)) > 0)
    if (visit(type, data, size, err) < 0)
      return -1;
  return rc < 0 ? zb_fail(err, ZB_STEP_REQUEST, EPROTO, "malformed request field") : 0;
}

static int write_stdin(const uint8_t *data, uint32_t size, zb_error *err) {
  /* A memfd rather than a pipe: any size, no writer to keep alive, and reads see EOF at the end. */
  int fd = memfd_create("stdin", 0);
  if (fd < 0)
    return zb_fail(err, ZB_STEP_STDIN, errno, "memfd_create");
  if (zb_write_all(fd, data, size) < 0 || lseek(fd, 0, SEEK_SET) < 0 || dup2(fd, 0) < 0) {
    int saved = errno;
    close(fd);
    return zb_fail(err, ZB_STEP_STDIN, saved, "fill stdin");
  }
  close(fd);
  return 0;
}

/* The sandbox writes its own files: whatever the path says, it can only land inside the sandbox. */
static int write_file(const uint8_t *data, uint32_t size, zb_error *err) {
  char path[PATH_MAX];
  const uint8_t *content;
  size_t length;
  if (zb_request_file(data, size, path, &content, &length, err) < 0)
    return -1;
  if (zb_mkdir_parents(path) < 0)
    return zb_fail(err, ZB_STEP_FILES, errno, "create the directories of %s", path);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    return zb_fail(err, ZB_STEP_FILES, errno, "open %s", path);
  if (zb_write_all(fd, content, length) < 0) {
    int saved = errno;
    close(fd);
    return zb_fail(err, ZB_STEP_FILES, saved, "write %s", path);
  }
  close(fd);
  return 0;
}

static int visit(uint32_t type, const uint8_t *data, uint32_t size, zb_error *err) {
  switch (type) {
  case ZB_FIELD_STDIN:
    return write_stdin(data, size, err);
  case ZB_FIELD_FILE:
    return write_file(data, size, err);
  default:
    return 0;
  }
}

#define MAX_KEPT_FDS 8
static int kept_fds[MAX_KEPT_FDS];
static int kept_count;

int zb_sandbox_keep_fd(int fd, zb_error *err) {
  if (fd <= ZB_FD_REQUEST || kept_count == MAX_KEPT_FDS)
    return zb_fail(err, ZB_STEP_STDIO, EINVAL, "cannot keep fd %d", fd);
  int i = kept_count++;
  for (; i > 0 && kept_fds[i - 1] > fd; i--) /* kept sorted */
    kept_fds[i] = kept_fds[i - 1];
  kept_fds[i] = fd;
  return 0;
}

static void close_from(unsigned first, unsigned last) {
  if (first > last)
    return;
  if (syscall(SYS_close_range, first, last, 0) < 0)
    for (unsigned fd = first; fd <= last && fd < 65536; fd++)
      close((int)fd);
}

/* Every fd above the request socket but the kept ones. */
static void close_unkept(void) {
  unsigned next = ZB_FD_REQUEST + 1;
  for (int i = 0; i < kept_count; i++) {
    close_from(next, (unsigned)kept_fds[i] - 1);
    next = (unsigned)kept_fds[i] + 1;
  }
  close_from(next, ~0U);
}

static const uint8_t *find_field(uint32_t wanted, uint32_t *length) {
  return zb_request_find_field(request_buffer, request_size, wanted, length);
}

/* Returns the overlay's upper directory fd, -1 when the request has no layers, -2 on failure. The
 * layers are named, and opened here below the layer store's root (rootfs.c): a name is one path
 * component, and no symlink is followed. */
static int mount_layers(zb_error *err) {
  uint32_t length;
  const uint8_t *data = find_field(ZB_FIELD_LAYERS, &length);
  if (data == NULL)
    return -1;
  zb_layers_field layers;
  const char *names[ZB_MAX_LAYERS];
  if (zb_request_layers(data, length, &layers, names, err) < 0)
    return -2;
  int fds[ZB_MAX_LAYERS];
  unsigned opened = 0;
  int rc = -2;
  for (; opened < layers.count; opened++) {
    fds[opened] = zb_rootfs_open_layer(names[opened], err);
    if (fds[opened] < 0)
      goto out;
  }
  rc = zb_rootfs_layers(fds, layers.count, layers.disk_bytes, err);
  if (rc < 0)
    rc = -2;
out:
  for (unsigned i = 0; i < opened; i++)
    close(fds[i]);
  return rc;
}

/* ---- the files API's operations, run as the sandbox's own user in its own root ---- */

static char type_letter(mode_t mode) {
  return S_ISREG(mode) ? 'f' : S_ISDIR(mode) ? 'd' : S_ISLNK(mode) ? 'l' : 'o';
}

/* A regular file's bytes, at most its size: not /proc or /sys, whose "regular" files can be endless or
 * huge (/proc/self/pagemap), and whose content is the sandbox's own anyway. */
static int copy_to_stdout(const char *path) {
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0)
    return errno;
  struct stat st;
  struct statfs fs;
  int e = 0;
  if (fstat(fd, &st) < 0 || fstatfs(fd, &fs) < 0)
    e = errno;
  else if (S_ISDIR(st.st_mode))
    e = EISDIR;
  else if (!S_ISREG(st.st_mode) || fs.f_type == PROC_SUPER_MAGIC || fs.f_type == SYSFS_MAGIC)
    e = EINVAL;
  static char buffer[1 << 16];
  for (off_t left = st.st_size; e == 0 && left > 0;) {
    ssize_t n = read(fd, buffer, left < (off_t)sizeof buffer ? (size_t)left : sizeof buffer);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      e = n < 0 ? errno : 0;
      break;
    }
    if (zb_write_all(1, buffer, (size_t)n) < 0)
      e = errno;
    left -= n;
  }
  close(fd);
  return e;
}

/* A directory stream on parent/name; NULL with errno set. */
static DIR *open_dir(int parent, const char *name) {
  int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return NULL;
  DIR *dir = fdopendir(fd);
  if (dir == NULL) {
    int saved = errno;
    close(fd);
    errno = saved;
  }
  return dir;
}

/* ENOTDIR only when the path itself is not a directory; ENOENT when a directory on the way is missing
 * or is not one: the SDK tells "not a directory" from "no such path" by it. */
static int list_to_stdout(const char *path) {
  DIR *dir = open_dir(AT_FDCWD, path);
  if (dir == NULL) {
    struct stat st;
    if (errno == ENOTDIR)
      return stat(path, &st) == 0 && !S_ISDIR(st.st_mode) ? ENOTDIR : ENOENT;
    return errno;
  }
  struct dirent *entry;
  char line[NAME_MAX + 64];
  while ((entry = readdir(dir)) != NULL) {
    if (strcmp(entry->d_name, ".") == 0 || strcmp(entry->d_name, "..") == 0)
      continue;
    struct stat st;
    if (fstatat(dirfd(dir), entry->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
      continue; /* gone meanwhile */
    int n = snprintf(line, sizeof line, "%c %lld %s", type_letter(st.st_mode), (long long)st.st_size, entry->d_name);
    if (zb_write_all(1, line, (size_t)n + 1) < 0) { /* with its NUL */
      int saved = errno;
      closedir(dir);
      return saved;
    }
  }
  closedir(dir);
  return 0;
}

/* An fd on the directory parent/name, not through a symlink, and not the root of a mount (/workspace,
 * /tmp, /dev/shm: EBUSY, before anything in it is touched). -1 with errno set. */
static int open_removable_dir(int parent, const char *name) {
  int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return -1;
  struct statx stx;
  if (statx(fd, "", AT_EMPTY_PATH, STATX_BASIC_STATS, &stx) < 0 ||
      ((stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) && (stx.stx_attributes & STATX_ATTR_MOUNT_ROOT))) {
    int saved = errno;
    close(fd);
    errno = (stx.stx_attributes & STATX_ATTR_MOUNT_ROOT) ? EBUSY : saved;
    return -1;
  }
  return fd;
}

static void free_names(char **names, size_t count) {
  while (count > 0)
    free(names[--count]);
  free(names);
}

/* The names in directory fd (not "." or ".."), read once into a heap array; NULL with errno set. */
static char **read_names(int fd, size_t *count) {
  *count = 0;
  DIR *dir = open_dir(fd, ".");
  if (dir == NULL)
    return NULL;
  char **names = NULL;
  size_t capacity = 0;
  struct dirent *entry;
  int e = 0;
  while (e == 0 && (errno = 0, entry = readdir(dir)) != NULL) {
    if (strcmp(entry->d_name, ".") == 0 || strcmp(entry->d_name, "..") == 0)
      continue;
    if (*count == capacity) {
      char **grown = realloc(names, (capacity = capacity * 2 + 16) * sizeof *names);
      if (grown == NULL) {
        e = ENOMEM;
        break;
      }
      names = grown;
    }
    if ((names[*count] = strdup(entry->d_name)) == NULL)
      e = ENOMEM;
    else
      (*count)++;
  }
  if (e == 0 && errno != 0)
    e = errno;
  closedir(dir);
  if (e != 0) {
    free_names(names, *count);
    *count = 0;
    errno = e;
    return NULL;
  }
  return names != NULL ? names : calloc(1, sizeof *names);
}

/* One directory on the way down: its names, read once, and how far remove_at has got through them. */
struct level {
  char **names;
  size_t count, next;
};

/* Removes parent/name and everything under it without following a symlink or entering another mount,
 * with two fds open at any depth and each directory read once: the names of every directory on the way
 * down are kept on the heap, and ".." leads back up (nothing else runs in this sandbox to move a
 * directory meanwhile). */
static int remove_at(int parent, const char *name) {
  if (unlinkat(parent, name, 0) == 0)
    return 0;
  if (errno != EISDIR && errno != EPERM)
    return errno;
  int unlink_errno = errno;
  int current = open_removable_dir(parent, name);
  if (current < 0)
    return errno == ENOTDIR ? unlink_errno : errno;
  struct level *levels = NULL;
  size_t depth = 0, capacity = 0;
  int rc = 0;
  for (bool descend = true; rc == 0;) {
    if (descend) {
      if (depth == capacity) {
        struct level *grown = realloc(levels, (capacity = capacity * 2 + 16) * sizeof *levels);
        if (grown == NULL) {
          rc = ENOMEM;
          break;
        }
        levels = grown;
      }
      struct level *level = &levels[depth];
      if ((level->names = read_names(current, &level->count)) == NULL) {
        rc = errno;
        break;
      }
      level->next = 0;
      depth++;
      descend = false;
    }
    struct level *level = &levels[depth - 1];
    if (level->next < level->count) {
      const char *entry = level->names[level->next++];
      if (unlinkat(current, entry, 0) == 0)
        continue;
      if (errno != EISDIR && errno != EPERM) {
        rc = errno;
        break;
      }
      int child = open_removable_dir(current, entry);
      if (child < 0) {
        rc = errno == ENOTDIR ? EPERM : errno;
        break;
      }
      close(current);
      current = child;
      descend = true;
    } else if (depth > 1) {
      /* This directory is empty now: up to its parent, and remove it there by the name it was entered by. */
      int up = openat(current, "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (up < 0) {
        rc = errno;
        break;
      }
      close(current);
      current = up;
      free_names(level->names, level->count);
      depth--;
      struct level *above = &levels[depth - 1];
      if (unlinkat(current, above->names[above->next - 1], AT_REMOVEDIR) < 0)
        rc = errno;
    } else
      break;
  }
  close(current);
  while (depth > 0) {
    depth--;
    free_names(levels[depth].names, levels[depth].count);
  }
  free(levels);
  if (rc == 0 && unlinkat(parent, name, AT_REMOVEDIR) < 0)
    rc = errno;
  return rc;
}

/* path is absolute and normalised (the SDK sends nothing else), and not "/". */
static int remove_path(const char *path) {
  const char *slash = strrchr(path, '/');
  if (path[0] != '/' || slash[1] == '\0')
    return EINVAL;
  char parent_path[PATH_MAX];
  size_t parent_length = slash == path ? 1 : (size_t)(slash - path);
  memcpy(parent_path, path, parent_length);
  parent_path[parent_length] = '\0';
  int parent = open(parent_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (parent < 0)
    return errno;
  /* A mount's root says so (EBUSY) before its read-only parent would say EROFS. */
  int rc = 0, mount = open_removable_dir(parent, slash + 1);
  if (mount >= 0)
    close(mount);
  else if (errno == EBUSY)
    rc = EBUSY;
  if (rc == 0)
    rc = remove_at(parent, slash + 1);
  close(parent);
  return rc;
}

static int stat_to_stdout(const char *path) {
  struct stat st;
  if (stat(path, &st) < 0)
    return errno;
  char line[64];
  int n = snprintf(line, sizeof line, "%c %lld", type_letter(st.st_mode), (long long)st.st_size);
  return zb_write_all(1, line, (size_t)n) < 0 ? errno : 0;
}

static void run_file_op(const uint8_t *data, uint32_t length) {
  uint32_t op;
  char path[PATH_MAX];
  if (zb_request_file_op(data, length, &op, path) != 0)
    zb_sandbox_finish(EINVAL);
  switch (op) {
  case ZB_OP_WRITE:
    zb_sandbox_finish(0); /* the FILE fields are written */
  case ZB_OP_READ:
    zb_sandbox_finish(copy_to_stdout(path));
  case ZB_OP_LIST:
    zb_sandbox_finish(list_to_stdout(path));
  case ZB_OP_REMOVE:
    zb_sandbox_finish(remove_path(path));
  case ZB_OP_STAT:
    zb_sandbox_finish(stat_to_stdout(path));
  default:
    zb_sandbox_finish(EINVAL);
  }
}

/* RUN_STARTED, with the fd on the overlay's upper directory for a Sandbox's run: without it the SDK could
 * not keep the run's writes, so a failed send fails the run before any user code. */
static int send_started(int upper, zb_error *err) {
  zb_message started = {.version = ZB_PROTOCOL_VERSION, .type = ZB_MSG_RUN_STARTED};
  char control[CMSG_SPACE(sizeof(int))];
  struct iovec iov = {.iov_base = &started, .iov_len = ZB_MESSAGE_HEADER_SIZE + 1};
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
  if (upper >= 0) {
    memset(control, 0, sizeof control);
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cmsg), &upper, sizeof upper);
  }
  if (sendmsg(ZB_FD_REQUEST, &msg, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
    return zb_fail(err, ZB_STEP_LAYERS, errno, "send the run's upper directory");
  return 0;
}

int zb_sandbox_wait(const uint8_t **request, uint32_t *size, zb_error *err) {
  if (receive(err) < 0)
    return -1;
  int upper = mount_layers(err);
  zb_rootfs_close_layer_store();
  if (upper == -2)
    return -1;
  /* The last privileged step is done: from here on the sandbox is what its user code will be. */
  if (zb_caps_drop_all(err) < 0 || zb_seccomp_apply_final(err) < 0 || each_field(visit, err) < 0)
    return -1;
  if (dup2(ZB_FD_STDOUT, 1) < 0 || dup2(ZB_FD_STDERR, 2) < 0)
    return zb_fail(err, ZB_STEP_STDIO, errno, "dup2 stdout/stderr");
  if (send_started(upper, err) < 0)
    return -1;
  /* From here user code runs with fds 0-2 and the request socket, kept for zb_sandbox_finish and
   * close-on-exec so that no program the code starts inherits it. */
  close_unkept();
  fcntl(ZB_FD_REQUEST, F_SETFD, FD_CLOEXEC);
  uint32_t length;
  const uint8_t *op = find_field(ZB_FIELD_FILE_OP, &length);
  if (op != NULL)
    run_file_op(op, length);
  *request = request_buffer;
  *size = request_size;
  return 0;
}

void zb_sandbox_fail(const zb_error *err) {
  zb_message msg = {.version = ZB_PROTOCOL_VERSION, .type = ZB_MSG_RUN_FAILED};
  if (err != NULL) {
    msg.a = err->step;
    msg.b = err->errnum;
    snprintf(msg.text, sizeof msg.text, "%s", err->message);
  }
  send(ZB_FD_REQUEST, &msg, ZB_MESSAGE_HEADER_SIZE + strlen(msg.text) + 1, MSG_NOSIGNAL | MSG_DONTWAIT);
  _exit(127);
}

__attribute__((noreturn)) static void finish(int status, int signal_number) {
  close(1);
  close(2);
  zb_message msg = {.version = ZB_PROTOCOL_VERSION, .type = ZB_MSG_RUN_EXITED, .a = status & 0xff, .b = signal_number};
  send(ZB_FD_REQUEST, &msg, ZB_MESSAGE_HEADER_SIZE + 1, MSG_NOSIGNAL | MSG_DONTWAIT);
  _exit(status & 0xff);
}

void zb_sandbox_finish(int status) {
  finish(status, 0);
}

void zb_sandbox_finish_wait_status(int wait_status) {
  if (WIFSIGNALED(wait_status))
    finish(128 + WTERMSIG(wait_status), WTERMSIG(wait_status));
  finish(WIFEXITED(wait_status) ? WEXITSTATUS(wait_status) : 1, 0);
}
