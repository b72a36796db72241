#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "zeroboot.h"

struct zb_config zb_cfg = {
    .template_name = "default",
    .hostname = "sandbox",
    .host_uid = 1000000,
    .memory_mb = 256,
    .max_processes = 64,
    .disk_mb = 256,
    .control_fd = 3,
};

static int copy_string(char *dst, size_t size, const char *key, const char *value, zb_error *err) {
  if (strlen(value) >= size)
    return zb_fail(err, ZB_STEP_CONFIG, 0, "config %s is longer than %zu bytes", key, size - 1);
  strcpy(dst, value);
  return 0;
}

static int parse_unsigned(unsigned *dst, const char *key, const char *value, unsigned min, unsigned max,
                          zb_error *err) {
  char *end = NULL;
  errno = 0;
  unsigned long v = strtoul(value, &end, 10);
  if (errno != 0 || end == value || *end != '\0' || v < min || v > max)
    return zb_fail(err, ZB_STEP_CONFIG, 0, "config %s must be a whole number from %u to %u, got '%s'", key,
                   min, max, value);
  *dst = (unsigned)v;
  return 0;
}

int zb_config_set(const char *key, const char *value, zb_error *err) {
  if (key == NULL || value == NULL)
    return zb_fail(err, ZB_STEP_CONFIG, 0, "config key and value must not be NULL");
  if (strcmp(key, "state_dir") == 0)
    return copy_string(zb_cfg.state_dir, sizeof zb_cfg.state_dir, key, value, err);
  if (strcmp(key, "layer_dir") == 0)
    return copy_string(zb_cfg.layer_dir, sizeof zb_cfg.layer_dir, key, value, err);
  if (strcmp(key, "etc_dir") == 0)
    return copy_string(zb_cfg.etc_dir, sizeof zb_cfg.etc_dir, key, value, err);
  if (strcmp(key, "template") == 0)
    return copy_string(zb_cfg.template_name, sizeof zb_cfg.template_name, key, value, err);
  if (strcmp(key, "hostname") == 0)
    return copy_string(zb_cfg.hostname, sizeof zb_cfg.hostname, key, value, err);
  if (strcmp(key, "ro_path") == 0) {
    if (zb_cfg.ro_path_count >= ZB_MAX_RO_PATHS)
      return zb_fail(err, ZB_STEP_CONFIG, 0, "more than %d ro_path entries", ZB_MAX_RO_PATHS);
    const char *arrow = strstr(value, "=>");
    if (value[0] != '/' || strstr(value, "..") != NULL || (arrow != NULL && arrow[2] != '/'))
      return zb_fail(err, ZB_STEP_CONFIG, 0, "ro_path must be an absolute path without '..' (or HOST=>SANDBOX, both absolute), got '%s'", value);
    char *copy = strdup(value);
    if (copy == NULL)
      return zb_fail(err, ZB_STEP_CONFIG, ENOMEM, "ro_path");
    zb_cfg.ro_paths[zb_cfg.ro_path_count++] = copy;
    return 0;
  }
  unsigned n = 0;
  if (strcmp(key, "host_uid") == 0)
    return parse_unsigned(&zb_cfg.host_uid, key, value, 65536, 4000000000u, err);
  if (strcmp(key, "memory_mb") == 0)
    return parse_unsigned(&zb_cfg.memory_mb, key, value, 16, 1u << 20, err);
  if (strcmp(key, "max_processes") == 0)
    return parse_unsigned(&zb_cfg.max_processes, key, value, 1, 1u << 20, err);
  if (strcmp(key, "disk_mb") == 0)
    return parse_unsigned(&zb_cfg.disk_mb, key, value, 1, 1u << 20, err);
  if (strcmp(key, "control_fd") == 0) {
    if (parse_unsigned(&n, key, value, 0, 1u << 20, err) < 0)
      return -1;
    zb_cfg.control_fd = (int)n;
    return 0;
  }
  if (strcmp(key, "madv_dofork") == 0) {
    if (parse_unsigned(&n, key, value, 0, 1, err) < 0)
      return -1;
    zb_cfg.madv_dofork = n == 1;
    return 0;
  }
  if (strcmp(key, "rootless") == 0) {
    if (parse_unsigned(&n, key, value, 0, 1, err) < 0)
      return -1;
    zb_cfg.rootless = n == 1;
    return 0;
  }
  if (strcmp(key, "sdk_pid") == 0) {
    if (parse_unsigned(&n, key, value, 1, 1u << 30, err) < 0)
      return -1;
    zb_cfg.sdk_pid = (pid_t)n;
    return 0;
  }
  return zb_fail(err, ZB_STEP_CONFIG, 0, "unknown config key '%s'", key);
}
