/* Decoding a run request (protocol.h): pure functions over bytes, with no system call and no global state,
 * so that the fuzzer (test/fuzz) can call them on any input with the sanitizers on. sandbox.c receives the
 * request and acts on what these return. The SDK is the only sender and never sends a malformed request:
 * these checks keep a bug on either side from becoming an out-of-bounds read, not a trust boundary. */
#ifndef ZB_REQUEST_H
#define ZB_REQUEST_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "protocol.h"

/* The header of a received message of `size` bytes. Returns 0 for a request that is the whole message, 1
 * for one in a memfd (header->total_size is then what the memfd must hold), -1 with err (EPROTO). */
int zb_request_check_header(const uint8_t *message, size_t size, zb_request_header *header, zb_error *err);

/* The first field of a type, or NULL (also when a malformed field comes first). */
const uint8_t *zb_request_find_field(const uint8_t *request, uint32_t size, uint32_t wanted, uint32_t *length);

/* A LAYERS field: its fixed part, and `layers->count` names, each one non-empty path component that is
 * not "." or "..", pointing into data. -1 with err when malformed. */
int zb_request_layers(const uint8_t *data, uint32_t length, zb_layers_field *layers, const char *names[ZB_MAX_LAYERS],
                      zb_error *err);

/* A FILE field: the absolute path to write (a relative one is under /workspace) and the content, which
 * points into data. -1 with err when the field has no path. */
int zb_request_file(const uint8_t *data, uint32_t size, char path[PATH_MAX], const uint8_t **content, size_t *length,
                    zb_error *err);

/* A FILE_OP field: the operation and its path (NUL-terminated, no NUL inside). Returns 0, or EINVAL. */
int zb_request_file_op(const uint8_t *data, uint32_t length, uint32_t *op, char path[PATH_MAX]);

#endif
