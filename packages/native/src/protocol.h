/* The fork-server's wire protocol, version 2. core/src/native-protocol.ts is the TypeScript twin of this
 * file; change both together and bump ZB_PROTOCOL_VERSION when a layout changes.
 *
 * Two channels, both AF_UNIX SOCK_SEQPACKET so that every message keeps its boundaries and can carry fds:
 *
 *  control (SDK <-> fork-server, the fork-server's fd 3)
 *    SDK -> server: FORK {a = how many}, SHUTDOWN
 *    server -> SDK: HELLO {a = version, b = feature bits, text = how limits are enforced},
 *                   READY {id, a = host pid, b = slot} + 4 fds [request socket, stdout, stderr, pidfd],
 *                   SPAWN_FAILED {id, a = zb_step, b = errno, text},
 *                   EXIT {id, a = wait status, b = exit flags}
 *
 *  request (SDK <-> one parked sandbox; the sandbox keeps its end, close-on-exec, for RUN_EXITED)
 *    SDK -> sandbox: one request message (zb_request_header + fields), or a header alone with
 *                    ZB_REQUEST_IN_MEMFD and the whole request in a memfd passed as one fd
 *    sandbox -> SDK: RUN_FAILED {a = zb_step, b = errno, text} when the run could not start
 *                    RUN_STARTED when the runtime is about to run user code (+ 1 fd, the overlay's upper
 *                    directory, when the request had layers): from here on the SDK
 *                    believes no RUN_FAILED, since user code can write to this socket too
 *                    RUN_EXITED {a = exit status, b = signal number or 0} when the runtime is done, after closing its stdout and
 *                    stderr: the run is over without waiting for the kernel to tear the sandbox down
 *                    (~0.5 ms); the SDK then SIGKILLs pid 1 through its pidfd to make sure of it. User code
 *                    can reach this socket too: after RUN_STARTED all it could claim is its own exit
 *                    status, which it chooses anyway.
 *
 * All integers are little-endian (x86_64/aarch64 hosts only). */
#ifndef ZB_PROTOCOL_H
#define ZB_PROTOCOL_H

#include <stdint.h>

#define ZB_PROTOCOL_VERSION 2u /* 2: layers, file operations, the upper directory's fd on RUN_STARTED */

enum zb_message_type {
  ZB_MSG_HELLO = 1,
  ZB_MSG_FORK = 2,
  ZB_MSG_READY = 3,
  ZB_MSG_SPAWN_FAILED = 4,
  ZB_MSG_EXIT = 5,
  ZB_MSG_SHUTDOWN = 6,
  ZB_MSG_RUN_FAILED = 7,
  ZB_MSG_RUN_EXITED = 8,
  ZB_MSG_RUN_STARTED = 9,
};

/* Feature bits in HELLO.b */
enum zb_feature {
  ZB_FEATURE_CGROUP_V1 = 1u << 0,
  ZB_FEATURE_CGROUP_V2 = 1u << 1,
  ZB_FEATURE_RLIMIT_MEMORY = 1u << 2, /* no writable memory cgroup: RLIMIT_AS instead */
  ZB_FEATURE_LANDLOCK_SCOPES = 1u << 3,
  ZB_FEATURE_SECCOMP = 1u << 4,
  ZB_FEATURE_ROOTLESS = 1u << 5, /* not root on the host: sandboxes run as the SDK's own uid (userns.c) */
};

/* Flags in EXIT.b */
enum zb_exit_flag {
  ZB_EXIT_OOM_KILLED = 1u << 0,
};

typedef struct zb_message {
  uint16_t version; /* ZB_PROTOCOL_VERSION */
  uint16_t type;    /* enum zb_message_type */
  uint32_t id;      /* sandbox id, unique per fork-server */
  int32_t a;
  int32_t b;
  char text[240];   /* NUL-terminated; may be shorter on the wire */
} zb_message;

#define ZB_MESSAGE_HEADER_SIZE 16u
#define ZB_READY_FDS 4

#define ZB_REQUEST_MAGIC 0x5152425au /* "ZBRQ" */
#define ZB_REQUEST_IN_MEMFD 1u
#define ZB_REQUEST_INLINE_MAX (128u * 1024u)

typedef struct zb_request_header {
  uint32_t magic;
  uint16_t version;
  uint16_t flags;
  uint32_t field_count;
  uint32_t total_size; /* header + fields */
} zb_request_header;

/* Each field: uint32 type, uint32 size, then size bytes. */
enum zb_field_type {
  ZB_FIELD_CODE = 1,  /* the program text; handled by the runtime */
  ZB_FIELD_ENV = 2,   /* "NAME=value"; handled by the runtime */
  ZB_FIELD_STDIN = 3, /* bytes for fd 0; without it fd 0 is /dev/null */
  ZB_FIELD_FILE = 4,  /* path NUL content; written before the code starts */
  ZB_FIELD_LAYERS = 5, /* zb_layers_field, then the layers' names (NUL-terminated), top first */
  ZB_FIELD_FILE_OP = 6, /* uint32 zb_file_op, then the path: done by the library instead of running code */
};

#define ZB_MAX_LAYERS 240

typedef struct zb_layers_field {
  uint64_t disk_bytes; /* what the run may write: the Sandbox's quota minus what its layer already holds */
  uint32_t count;      /* how many names follow; the last is the base */
  uint32_t reserved;
} zb_layers_field;

/* A file operation of the Sandbox files API, done inside the sandbox (its root, its uid, its quota):
 * no symlink it can plant resolves outside it. The result goes to stdout; the exit status is 0 or the
 * errno of the failure. WRITE has nothing to do past the FILE fields, which the library writes anyway. */
enum zb_file_op {
  ZB_OP_WRITE = 1,
  ZB_OP_READ = 2,   /* stdout: the file's bytes */
  ZB_OP_LIST = 3,   /* stdout: per entry "type size name\0", type one of f d l o (other) */
  ZB_OP_REMOVE = 4, /* a file, a symlink or a whole directory tree */
  ZB_OP_STAT = 5,   /* stdout: "type size" of the path, symlinks followed */
};

#endif
