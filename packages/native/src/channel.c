#define _GNU_SOURCE
#include "channel.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"

#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif

int zb_channel_pair(int fds[2], zb_error *err) {
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, fds) < 0)
    return zb_fail(err, ZB_STEP_CONFIG, errno, "socketpair");
  return 0;
}

int zb_channel_send(int fd, const void *data, size_t size, const int *fds, int fd_count, int flags, zb_error *err) {
  if (fd_count < 0 || fd_count > ZB_CHANNEL_MAX_FDS)
    return zb_fail(err, ZB_STEP_REQUEST, EINVAL, "too many fds");
  struct iovec iov = {.iov_base = (void *)data, .iov_len = size};
  char control[CMSG_SPACE(sizeof(int) * ZB_CHANNEL_MAX_FDS)];
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
  if (fd_count > 0) {
    memset(control, 0, sizeof control);
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)fd_count);
    struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)fd_count);
    memcpy(CMSG_DATA(cmsg), fds, sizeof(int) * (size_t)fd_count);
  }
  ssize_t n;
  do
    n = sendmsg(fd, &msg, MSG_NOSIGNAL | flags);
  while (n < 0 && errno == EINTR);
  if (n < 0)
    return zb_fail(err, ZB_STEP_REQUEST, errno, "sendmsg");
  return 0;
}

ssize_t zb_channel_recv(int fd, void *buffer, size_t capacity, int *fds, int *fd_count, zb_error *err) {
  struct iovec iov = {.iov_base = buffer, .iov_len = capacity};
  char control[CMSG_SPACE(sizeof(int) * ZB_CHANNEL_MAX_FDS)];
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof control};
  *fd_count = 0;
  ssize_t n;
  do
    n = recvmsg(fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  if (n < 0)
    return zb_fail(err, ZB_STEP_REQUEST, errno, "recvmsg");
  for (struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg); cmsg != NULL; cmsg = CMSG_NXTHDR(&msg, cmsg)) {
    if (cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_RIGHTS)
      continue;
    int count = (int)((cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int));
    for (int i = 0; i < count; i++) {
      int received;
      memcpy(&received, CMSG_DATA(cmsg) + sizeof(int) * (size_t)i, sizeof received);
      if (*fd_count < ZB_CHANNEL_MAX_FDS)
        fds[(*fd_count)++] = received;
      else
        close(received);
    }
  }
  if (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
    for (int i = 0; i < *fd_count; i++)
      close(fds[i]);
    *fd_count = 0;
    return zb_fail(err, ZB_STEP_REQUEST, EMSGSIZE, "message truncated");
  }
  return n;
}

int zb_memfd_from(const void *data, size_t size, zb_error *err) {
  int fd = memfd_create("zeroboot-request", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0)
    return zb_fail(err, ZB_STEP_REQUEST, errno, "memfd_create");
  if (zb_write_all(fd, data, size) < 0 ||
      fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0) {
    int saved = errno;
    close(fd);
    return zb_fail(err, ZB_STEP_REQUEST, saved, "fill the request memfd");
  }
  return fd;
}

int zb_pidfd_signal(int pidfd, int signal, zb_error *err) {
  if (syscall(SYS_pidfd_send_signal, pidfd, signal, NULL, 0) < 0 && errno != ESRCH)
    return zb_fail(err, ZB_STEP_SIGNALS, errno, "pidfd_send_signal");
  return 0;
}
