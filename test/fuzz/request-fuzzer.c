/* libFuzzer harness for the run request's decoders: the bytes a parked sandbox receives from the SDK
 * (protocol.h), through every function that reads them.
 *
 *   - request.c, which sandbox.c's receive(), each_field(), find_field(), mount_layers(), write_file() and
 *     run_file_op() call: the header, the field walk, LAYERS, FILE and FILE_OP;
 *   - the shell runtime's build_script() (runtimes/shell/shell.c, included below for its static functions),
 *     which turns CODE and ENV fields into the script bash sources.
 *
 * Each input is one request as received. Besides the sanitizers (address, undefined), every decoder's
 * answer is checked against what it promises in request.h: a crash or a broken promise aborts, and
 * libFuzzer saves the input. Built and run by scripts/fuzz.sh; test/fuzz/request-fuzzer.test.ts runs it
 * in CI from seeds made by the SDK's own encoder. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The shell fork-server's decoder, without its main(). */
#define main zb_shell_main
#include "../../packages/native/runtimes/shell/shell.c"
#undef main

#include "request.h"

/* Aborts (libFuzzer reports a crash and saves the input) when a promise does not hold: assert() would
 * vanish under NDEBUG. */
#define CHECK(condition)                                                                                     \
  do {                                                                                                       \
    if (!(condition)) {                                                                                      \
      fprintf(stderr, "request-fuzzer: %s:%d: broken promise: %s\n", __FILE__, __LINE__, #condition);       \
      abort();                                                                                               \
    }                                                                                                        \
  } while (0)

static void check_error(const zb_error *err, int step) {
  CHECK(err->step == step);
  CHECK(memchr(err->message, '\0', sizeof err->message) != NULL);
  CHECK(err->message[0] != '\0');
}

static void check_layers(const uint8_t *data, uint32_t length) {
  zb_layers_field layers;
  const char *names[ZB_MAX_LAYERS];
  zb_error err = {0};
  if (zb_request_layers(data, length, &layers, names, &err) < 0) {
    CHECK(err.step == ZB_STEP_REQUEST || err.step == ZB_STEP_LAYERS);
    check_error(&err, err.step);
    return;
  }
  CHECK(layers.count >= 1 && layers.count <= ZB_MAX_LAYERS);
  const char *expected = (const char *)data + sizeof layers;
  for (unsigned i = 0; i < layers.count; i++) {
    /* Consecutive, inside the field, NUL-terminated inside it, and one safe path component each. */
    CHECK(names[i] == expected);
    size_t n = strnlen(names[i], (size_t)((const char *)data + length - names[i]));
    CHECK(names[i] + n < (const char *)data + length);
    CHECK(n > 0 && memchr(names[i], '/', n) == NULL && strcmp(names[i], ".") != 0 && strcmp(names[i], "..") != 0);
    expected = names[i] + n + 1;
  }
}

static void check_file(const uint8_t *data, uint32_t size) {
  char path[PATH_MAX];
  const uint8_t *content;
  size_t length;
  zb_error err = {0};
  if (zb_request_file(data, size, path, &content, &length, &err) < 0) {
    check_error(&err, ZB_STEP_FILES);
    return;
  }
  size_t n = strnlen(path, sizeof path);
  CHECK(n < sizeof path && path[0] == '/');
  /* The path is the field's up to its first NUL (under /workspace when relative); the rest is content. */
  size_t given = strlen((const char *)data);
  CHECK(given > 0 && content == data + given + 1 && content + length == data + size);
  CHECK(data[0] == '/' ? strcmp(path, (const char *)data) == 0
                       : strncmp(path, "/workspace/", 11) == 0 && strcmp(path + 11, (const char *)data) == 0);
}

static void check_file_op(const uint8_t *data, uint32_t length) {
  uint32_t op;
  char path[PATH_MAX];
  int rc = zb_request_file_op(data, length, &op, path);
  if (rc != 0) {
    CHECK(rc == EINVAL);
    return;
  }
  CHECK(length >= 5 && strlen(path) == length - 4 && memcmp(path, data + 4, length - 4) == 0);
}

/* build_script's promise: the prelude, then for each ENV field with a '=' and no NUL, in order,
 * ` export NAME='VALUE';` where VALUE, read back with POSIX single-quote rules ('\'' is a quote), is the
 * field's value byte for byte; then a space, the last CODE field and a newline. Nothing a value holds can
 * end its quotes early. */
static void check_script(const uint8_t *request, uint32_t size) {
  struct buffer script = {0};
  build_script(request, size, &script);
  static const char prelude[] = "exec 3<&-;cd /workspace;unset OLDPWD;";
  const char *at = script.data, *end = script.data + script.length;
  CHECK((size_t)(end - at) >= sizeof prelude - 1 && memcmp(at, prelude, sizeof prelude - 1) == 0);
  at += sizeof prelude - 1;
  uint32_t offset = 0, type, length, code_length = 0;
  const uint8_t *data, *code = NULL;
  while (zb_request_next_field(request, size, &offset, &type, &data, &length) > 0) {
    if (type == ZB_FIELD_CODE) {
      code = data;
      code_length = length;
    }
    if (type != ZB_FIELD_ENV)
      continue;
    const uint8_t *eq = memchr(data, '=', length);
    if (eq == NULL || memchr(data, '\0', length) != NULL)
      continue;
    size_t name_length = (size_t)(eq - data) + 1; /* with its '=' */
    CHECK((size_t)(end - at) >= 8 + name_length && memcmp(at, " export ", 8) == 0 && memcmp(at + 8, data, name_length) == 0);
    at += 8 + name_length;
    const uint8_t *value = eq + 1, *value_end = data + length;
    CHECK(at < end && *at == '\'');
    at++;
    for (;;) {
      CHECK(at < end);
      if (*at != '\'') {
        CHECK(value < value_end && (uint8_t)*at == *value);
        at++, value++;
        continue;
      }
      /* A quote ends the quoted part: either the value's end, or '\'' for a quote inside it. */
      if ((size_t)(end - at) >= 4 && memcmp(at, "'\\''", 4) == 0) {
        CHECK(value < value_end && *value == '\'');
        at += 4, value++;
        continue;
      }
      at++;
      break;
    }
    CHECK(value == value_end);
    CHECK(at < end && *at == ';');
    at++;
  }
  CHECK(at < end && *at == ' ');
  at++;
  CHECK((size_t)(end - at) == (size_t)code_length + 1);
  CHECK(code_length == 0 || memcmp(at, code, code_length) == 0);
  CHECK(end[-1] == '\n');
  free(script.data);
}

int LLVMFuzzerTestOneInput(const uint8_t *input, size_t size) {
  if (size > ZB_REQUEST_INLINE_MAX)
    return 0; /* receive() never gets more in one message */
  zb_request_header header;
  zb_error err = {0};
  int in_memfd = zb_request_check_header(input, size, &header, &err);
  if (in_memfd < 0)
    check_error(&err, ZB_STEP_REQUEST);
  else if (in_memfd == 0)
    CHECK(header.total_size == size && header.magic == ZB_REQUEST_MAGIC);
  else
    CHECK(header.flags & ZB_REQUEST_IN_MEMFD);

  /* The field walk: in bounds, forward only, and it ends. A request in a memfd is walked the same way
   * once mapped, so every input is walked whatever its header says. */
  uint32_t offset = 0, previous = 0, type, length, fields = 0;
  const uint8_t *data;
  int rc;
  const uint8_t *first[8] = {0};
  while ((rc = zb_request_next_field(input, (uint32_t)size, &offset, &type, &data, &length)) > 0) {
    CHECK(data >= input + sizeof header && data + length <= input + size && offset > previous && offset <= size);
    CHECK(data + length == input + offset);
    previous = offset;
    fields++;
    if (type < 8 && first[type] == NULL)
      first[type] = data;
    switch (type) {
    case ZB_FIELD_LAYERS:
      check_layers(data, length);
      break;
    case ZB_FIELD_FILE:
      check_file(data, length);
      break;
    case ZB_FIELD_FILE_OP:
      check_file_op(data, length);
      break;
    default:
      break;
    }
  }
  CHECK(rc == 0 || rc == -1);
  CHECK(fields <= size / 8);
  for (uint32_t t = 1; t < 8; t++) {
    uint32_t found_length;
    CHECK(zb_request_find_field(input, (uint32_t)size, t, &found_length) == first[t]);
  }
  check_script(input, (uint32_t)size);
  return 0;
}
