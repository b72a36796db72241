/* zeroboot's shell fork-server: a small C program rather than a shell, since a shell cannot be forked
 * warm the way an interpreter can (its state is built from the script it runs).
 *
 *   zeroboot-shell key=value...   the settings of zb_config_set, plus shell=/bin/bash (the shell to run)
 *
 * In each sandbox the process parks as pid 1 with the shell already started beside it: exec'ing bash
 * costs ~1 ms here, more than the rest of a run, so it happens while the sandbox waits in the pool. That
 * shell (pid 2) sources its script from a pipe, so it blocks until the run's request arrives; then pid 1
 * writes the run's environment and code into that pipe, copies stdin into the shell's stdin, waits for
 * the shell and reports its status. The script runs as `bash -c` would run it, with two visible
 * differences: $BASH_SOURCE names the pipe, and a top-level `return` ends the script like `exit`. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "protocol.h"
#include "zeroboot.h"

extern char **environ;

/* The shell's fds: its script on 3 (closed by the prelude before user code runs). */
enum { SHELL_SCRIPT_FD = 3 };

static void fail_setup(const zb_error *err) {
  fprintf(stderr, "zeroboot fork-server: %s\n", err->message);
  _exit(70 + (err->step < 50 ? err->step : 50));
}

struct buffer {
  char *data;
  size_t length, capacity;
};

static void append(struct buffer *b, const void *data, size_t length) {
  if (b->length + length > b->capacity) {
    size_t capacity = (b->capacity + length) * 2;
    char *grown = realloc(b->data, capacity);
    if (grown == NULL) {
      zb_error err = {.step = ZB_STEP_REQUEST, .errnum = ENOMEM};
      snprintf(err.message, sizeof err.message, "out of memory building the script");
      zb_sandbox_fail(&err);
    }
    b->data = grown;
    b->capacity = capacity;
  }
  memcpy(b->data + b->length, data, length);
  b->length += length;
}

/* 'value' with every ' written as '\'' : POSIX quoting, the same in bash and dash. */
static void append_quoted(struct buffer *b, const uint8_t *value, size_t length) {
  append(b, "'", 1);
  for (size_t i = 0; i < length; i++) {
    if (value[i] == '\'')
      append(b, "'\\''", 4);
    else
      append(b, &value[i], 1);
  }
  append(b, "'", 1);
}

/* The script: a one-line prelude (close the script's fd, enter /workspace again: a Sandbox's run has just
 * mounted its own over the one the shell started in; export the run's environment) on the same line as
 * the first line of the code, so that $LINENO counts the code's lines. */
static void build_script(const uint8_t *request, uint32_t size, struct buffer *script) {
  static const char prelude[] = "exec 3<&-;cd /workspace;unset OLDPWD;";
  append(script, prelude, sizeof prelude - 1);
  uint32_t offset = 0, type, length;
  const uint8_t *data, *code = NULL;
  uint32_t code_length = 0;
  while (zb_request_next_field(request, size, &offset, &type, &data, &length) > 0) {
    if (type == ZB_FIELD_CODE) {
      code = data;
      code_length = length;
    } else if (type == ZB_FIELD_ENV) {
      const uint8_t *eq = memchr(data, '=', length);
      if (eq == NULL || memchr(data, '\0', length) != NULL)
        continue; /* the SDK validates names; a NUL cannot be in an environment */
      append(script, " export ", 8);
      append(script, data, (size_t)(eq - data) + 1);
      append_quoted(script, eq + 1, length - (uint32_t)(eq - data) - 1);
      append(script, ";", 1);
    }
  }
  append(script, " ", 1);
  if (code != NULL)
    append(script, code, code_length);
  append(script, "\n", 1);
}

static pid_t start_shell(const char *shell, int script_fd, int stdin_fd) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, stdin_fd, 0);
  posix_spawn_file_actions_adddup2(&actions, 4, 1); /* the run's stdout and stderr pipes (internal.h) */
  posix_spawn_file_actions_adddup2(&actions, 5, 2);
  posix_spawn_file_actions_adddup2(&actions, script_fd, SHELL_SCRIPT_FD);
  posix_spawn_file_actions_addclosefrom_np(&actions, SHELL_SCRIPT_FD + 1);
  const char *name = strrchr(shell, '/') != NULL ? strrchr(shell, '/') + 1 : shell; /* $0, as with `bash -c` */
  char *argv[] = {(char *)name, "-c", ". /proc/self/fd/3", (char *)name, NULL};
  pid_t pid = -1;
  int rc = posix_spawn(&pid, shell, &actions, NULL, argv, environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    zb_error err = {.step = ZB_STEP_REQUEST, .errnum = rc};
    snprintf(err.message, sizeof err.message, "start %s: %s", shell, strerror(rc));
    zb_sandbox_fail(&err);
  }
  return pid;
}

static void write_script(int fd, const struct buffer *script) {
  size_t done = 0;
  while (done < script->length) {
    ssize_t n = write(fd, script->data + done, script->length - done);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break; /* the shell is gone; its status tells why */
    done += (size_t)n;
  }
  close(fd);
}

/* Copies our stdin (the request's, a memfd, or /dev/null) into the shell's stdin pipe while the shell
 * lives; a shell that exits without reading it all must not keep us here. */
static void feed_stdin(int pipe_fd, int shell_pidfd) {
  char chunk[65536];
  ssize_t have = 0, sent = 0;
  fcntl(pipe_fd, F_SETFL, O_NONBLOCK);
  for (;;) {
    if (sent == have) {
      have = read(0, chunk, sizeof chunk);
      sent = 0;
      if (have <= 0)
        break;
    }
    ssize_t n = write(pipe_fd, chunk + sent, (size_t)(have - sent));
    if (n > 0) {
      sent += n;
      continue;
    }
    if (n < 0 && errno != EAGAIN && errno != EINTR)
      break; /* EPIPE: nobody reads it any more */
    struct pollfd fds[2] = {{.fd = pipe_fd, .events = POLLOUT}, {.fd = shell_pidfd, .events = POLLIN}};
    if (poll(fds, 2, -1) < 0 && errno != EINTR)
      break;
    if (fds[1].revents & POLLIN)
      break;
  }
  close(pipe_fd);
}

static int wait_for(pid_t shell) {
  /* pid 1 reaps every orphan of the sandbox; the shell's own status is the run's. */
  for (;;) {
    int status = 0;
    pid_t pid = waitpid(-1, &status, 0);
    if (pid == shell)
      return status;
    if (pid < 0 && errno != EINTR)
      return 1 << 8;
  }
}

int main(int argc, char **argv) {
  zb_error err = {0};
  const char *shell = "/bin/sh";
  for (int i = 1; i < argc; i++) {
    char *eq = strchr(argv[i], '=');
    if (eq == NULL) {
      snprintf(err.message, sizeof err.message, "argument '%s' is not key=value", argv[i]);
      err.step = ZB_STEP_CONFIG;
      fail_setup(&err);
    }
    *eq = '\0';
    if (strcmp(argv[i], "shell") == 0)
      shell = eq + 1;
    else if (zb_config_set(argv[i], eq + 1, &err) < 0)
      fail_setup(&err);
  }
  if (zb_zygote_init(&err) < 0)
    fail_setup(&err);
  int rc = zb_zygote_serve(&err);
  if (rc < 0)
    fail_setup(&err);
  if (rc > 0)
    return 0;

  /* ---- in a new sandbox: start the shell, park ---- */
  int script[2], input[2];
  if (pipe2(script, O_CLOEXEC) < 0 || pipe2(input, O_CLOEXEC) < 0) {
    zb_fail(&err, ZB_STEP_REQUEST, errno, "pipe2");
    zb_sandbox_fail(&err);
  }
  pid_t pid = start_shell(shell, script[0], input[0]);
  close(script[0]);
  close(input[0]);
  int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
  if (pidfd < 0 || zb_sandbox_keep_fd(script[1], &err) < 0 || zb_sandbox_keep_fd(input[1], &err) < 0 ||
      zb_sandbox_keep_fd(pidfd, &err) < 0) {
    if (pidfd < 0)
      zb_fail(&err, ZB_STEP_REQUEST, errno, "pidfd_open");
    zb_sandbox_fail(&err);
  }
  /* The shell's stdin pipe may outlive its readers: a failed write must be EPIPE, not our death. */
  signal(SIGPIPE, SIG_IGN);

  const uint8_t *request;
  uint32_t size;
  if (zb_sandbox_wait(&request, &size, &err) < 0)
    zb_sandbox_fail(&err);
  struct buffer text = {0};
  build_script(request, size, &text);
  write_script(script[1], &text);
  feed_stdin(input[1], pidfd);
  zb_sandbox_finish_wait_status(wait_for(pid));
}
