/* Message channels for the SDK side (used by the Node addon): SOCK_SEQPACKET sends and receives with
 * SCM_RIGHTS, all non-blocking, every received fd close-on-exec. Ownership: fds passed to
 * zb_channel_send stay the caller's; fds received are the caller's to close. */
#ifndef ZB_CHANNEL_H
#define ZB_CHANNEL_H

#include <stddef.h>
#include <sys/types.h>

#include "error.h"

#define ZB_CHANNEL_MAX_FDS 8

int zb_channel_pair(int fds[2], zb_error *err);
/* Returns 0, or -1 with err (EAGAIN when the peer's queue is full and flags has MSG_DONTWAIT). */
int zb_channel_send(int fd, const void *data, size_t size, const int *fds, int fd_count, int flags, zb_error *err);
/* Returns the message size, 0 at EOF, -1 with errnum EAGAIN when there is nothing to read. */
ssize_t zb_channel_recv(int fd, void *buffer, size_t capacity, int *fds, int *fd_count, zb_error *err);
/* A sealed memfd holding data, for requests too large to send inline. */
int zb_memfd_from(const void *data, size_t size, zb_error *err);
int zb_pidfd_signal(int pidfd, int signal, zb_error *err);

#endif
