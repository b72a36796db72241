// The TypeScript twin of packages/native/src/protocol.h (and the step list of error.h): change both together.
export const PROTOCOL_VERSION = 2;

export const MessageType = {
  HELLO: 1,
  FORK: 2,
  READY: 3,
  SPAWN_FAILED: 4,
  EXIT: 5,
  SHUTDOWN: 6,
  RUN_FAILED: 7,
  RUN_EXITED: 8,
  RUN_STARTED: 9,
} as const;

export const Feature = {
  CGROUP_V1: 1 << 0,
  CGROUP_V2: 1 << 1,
  RLIMIT_MEMORY: 1 << 2,
  LANDLOCK_SCOPES: 1 << 3,
  SECCOMP: 1 << 4,
  ROOTLESS: 1 << 5,
} as const;

export const ExitFlag = { OOM_KILLED: 1 << 0 } as const;

export const STEP_NAMES = [
  'none', 'config', 'clone', 'userns-map', 'cgroup-attach', 'sync', 'credentials', 'cgroup-namespace',
  'hostname', 'mount-writable', 'mount-proc', 'rlimits', 'landlock', 'capabilities', 'no-new-privs',
  'seccomp', 'stdio', 'request', 'stdin', 'files', 'rootfs', 'namespaces', 'cgroup-setup', 'signals',
  'child-died', 'layers', 'file-op',
] as const;

export function stepName(step: number): string {
  return STEP_NAMES[step] ?? `step-${step}`;
}

export interface Message {
  type: number;
  id: number;
  a: number;
  b: number;
  text: string;
}

export const MESSAGE_HEADER_SIZE = 16;

export function decodeMessage(data: Buffer): Message | undefined {
  if (data.length < MESSAGE_HEADER_SIZE || data.readUInt16LE(0) !== PROTOCOL_VERSION) return undefined;
  const end = data.indexOf(0, MESSAGE_HEADER_SIZE);
  return {
    type: data.readUInt16LE(2),
    id: data.readUInt32LE(4),
    a: data.readInt32LE(8),
    b: data.readInt32LE(12),
    text: data.toString('utf8', MESSAGE_HEADER_SIZE, end < 0 ? data.length : end),
  };
}

export function encodeControl(type: number, a = 0): Buffer {
  const buf = Buffer.alloc(MESSAGE_HEADER_SIZE + 1);
  buf.writeUInt16LE(PROTOCOL_VERSION, 0);
  buf.writeUInt16LE(type, 2);
  buf.writeInt32LE(a, 8);
  return buf;
}

const REQUEST_MAGIC = 0x5152425a;
export const REQUEST_IN_MEMFD = 1;
export const REQUEST_INLINE_MAX = 128 * 1024;
const REQUEST_HEADER_SIZE = 16;

const Field = { CODE: 1, ENV: 2, STDIN: 3, FILE: 4, LAYERS: 5, FILE_OP: 6 } as const;

/** The files API's operations, done inside the sandbox (protocol.h's zb_file_op). */
export const FileOp = { WRITE: 1, READ: 2, LIST: 3, REMOVE: 4, STAT: 5 } as const;

export interface RequestParts {
  /** Absent for a file operation. */
  code?: string | undefined;
  env?: Record<string, string> | undefined;
  stdin?: string | Uint8Array | undefined;
  files?: Record<string, string | Uint8Array> | undefined;
  /** A Sandbox's run: its layers' names in the layer store, top first, and what it may write. */
  layers?: { names: readonly string[]; diskBytes: number } | undefined;
  fileOp?: { op: number; path: string } | undefined;
}

/** Encodes a run request: header, then (type, size, bytes) fields. */
export function encodeRequest(parts: RequestParts): Buffer {
  const chunks: Buffer[] = [];
  let size = REQUEST_HEADER_SIZE;
  let count = 0;
  const field = (type: number, ...data: Buffer[]) => {
    const length = data.reduce((n, d) => n + d.length, 0);
    const head = Buffer.allocUnsafe(8);
    head.writeUInt32LE(type, 0);
    head.writeUInt32LE(length, 4);
    chunks.push(head, ...data);
    size += 8 + length;
    count++;
  };
  if (parts.layers) {
    const layers = Buffer.alloc(16);
    layers.writeBigUInt64LE(BigInt(Math.max(0, Math.floor(parts.layers.diskBytes))), 0);
    layers.writeUInt32LE(parts.layers.names.length, 8);
    field(Field.LAYERS, layers, ...parts.layers.names.map((name) => Buffer.from(`${name}\0`, 'utf8')));
  }
  if (parts.fileOp) {
    const op = Buffer.alloc(4);
    op.writeUInt32LE(parts.fileOp.op, 0);
    field(Field.FILE_OP, op, Buffer.from(parts.fileOp.path, 'utf8'));
  }
  if (parts.code !== undefined) field(Field.CODE, Buffer.from(parts.code, 'utf8'));
  if (parts.env) for (const [name, value] of Object.entries(parts.env)) field(Field.ENV, Buffer.from(`${name}=${value}`, 'utf8'));
  if (parts.stdin !== undefined) field(Field.STDIN, toBuffer(parts.stdin));
  if (parts.files) {
    for (const [path, content] of Object.entries(parts.files)) {
      field(Field.FILE, Buffer.from(path, 'utf8'), Buffer.of(0), toBuffer(content));
    }
  }
  const header = Buffer.allocUnsafe(REQUEST_HEADER_SIZE);
  header.writeUInt32LE(REQUEST_MAGIC, 0);
  header.writeUInt16LE(PROTOCOL_VERSION, 4);
  header.writeUInt16LE(0, 6);
  header.writeUInt32LE(count, 8);
  header.writeUInt32LE(size, 12);
  return Buffer.concat([header, ...chunks], size);
}

/** For a request too large to send inline: the header alone, flagged, with the full request in a memfd. */
export function memfdRequestHeader(request: Buffer): Buffer {
  const header = Buffer.from(request.subarray(0, REQUEST_HEADER_SIZE));
  header.writeUInt16LE(REQUEST_IN_MEMFD, 6);
  return header;
}

function toBuffer(value: string | Uint8Array): Buffer {
  return typeof value === 'string' ? Buffer.from(value, 'utf8') : Buffer.from(value.buffer, value.byteOffset, value.byteLength);
}
