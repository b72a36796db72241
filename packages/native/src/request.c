/* The run request's decoding: see request.h. Every length comes from the wire, so every read is checked
 * against the bytes that are there before it is made. */
#define _GNU_SOURCE
#include "request.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "zeroboot.h"

int zb_request_check_header(const uint8_t *message, size_t size, zb_request_header *header, zb_error *err) {
  if (size < sizeof *header)
    return zb_fail(err, ZB_STEP_REQUEST, EPROTO, "request shorter than its header");
  memcpy(header, message, sizeof *header);
  if (header->magic != ZB_REQUEST_MAGIC || header->version != ZB_PROTOCOL_VERSION)
    return zb_fail(err, ZB_STEP_REQUEST, EPROTO, "request of an unknown protocol");
  if (header->flags & ZB_REQUEST_IN_MEMFD)
    return 1;
  if (header->total_size != size)
    return zb_fail(err, ZB_STEP_REQUEST, EPROTO, "request size mismatch");
  return 0;
}

int zb_request_next_field(const uint8_t *request, uint32_t size, uint32_t *offset, uint32_t *type,
                          const uint8_t **data, uint32_t *length) {
  if (*offset == 0)
    *offset = sizeof(zb_request_header);
  if (*offset >= size)
    return 0;
  if (size - *offset < 8)
    return -1;
  uint32_t field_size;
  memcpy(type, request + *offset, 4);
  memcpy(&field_size, request + *offset + 4, 4);
  *offset += 8;
  if (field_size > size - *offset)
    return -1;
  *data = request + *offset;
  *length = field_size;
  *offset += field_size;
  return 1;
}

const uint8_t *zb_request_find_field(const uint8_t *request, uint32_t size, uint32_t wanted, uint32_t *length) {
  uint32_t offset = 0, type;
  const uint8_t *data;
  while (zb_request_next_field(request, size, &offset, &type, &data, length) > 0)
    if (type == wanted)
      return data;
  return NULL;
}

int zb_request_layers(const uint8_t *data, uint32_t length, zb_layers_field *layers, const char *names[ZB_MAX_LAYERS],
                      zb_error *err) {
  /* The last byte a NUL: every name below ends inside the field, so strchr and strlen stop there. */
  if (length < sizeof *layers || data[length - 1] != '\0')
    return zb_fail(err, ZB_STEP_REQUEST, EPROTO, "malformed layers field");
  memcpy(layers, data, sizeof *layers);
  if (layers->count == 0 || layers->count > ZB_MAX_LAYERS)
    return zb_fail(err, ZB_STEP_LAYERS, EINVAL, "%u layers (1 to %d)", layers->count, ZB_MAX_LAYERS);
  const char *name = (const char *)data + sizeof *layers;
  const char *end = (const char *)data + length;
  for (unsigned i = 0; i < layers->count; i++) {
    if (name >= end || *name == '\0' || strchr(name, '/') != NULL || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
      return zb_fail(err, ZB_STEP_LAYERS, EINVAL, "layer %u has no valid name", i);
    names[i] = name;
    name += strlen(name) + 1;
  }
  return 0;
}

int zb_request_file(const uint8_t *data, uint32_t size, char path[PATH_MAX], const uint8_t **content, size_t *length,
                    zb_error *err) {
  const uint8_t *nul = memchr(data, '\0', size);
  if (nul == NULL || nul == data || (size_t)(nul - data) >= PATH_MAX - 16)
    return zb_fail(err, ZB_STEP_FILES, EINVAL, "file field without a path");
  if (data[0] == '/')
    memcpy(path, data, (size_t)(nul - data) + 1);
  else
    snprintf(path, PATH_MAX, "/workspace/%s", (const char *)data);
  *content = nul + 1;
  *length = size - (size_t)(*content - data);
  return 0;
}

int zb_request_file_op(const uint8_t *data, uint32_t length, uint32_t *op, char path[PATH_MAX]) {
  if (length < 5 || length - 4 >= PATH_MAX)
    return EINVAL;
  memcpy(op, data, 4);
  memcpy(path, data + 4, length - 4);
  path[length - 4] = '\0';
  return strlen(path) == length - 4 ? 0 : EINVAL;
}
