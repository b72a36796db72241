// The raw binding, typed in one place. Validation happens before these calls; the addon only translates.
import { loadAddon, libPath, runtimesDir, shellServerPath, zygoteAddonPath } from '@zeroboot/native';

import { ZerobootError } from './errors.js';
import { stepName } from './native-protocol.js';

export interface ReceivedMessage {
  data: Buffer;
  fds: number[];
}

export interface Watcher {
  close(): void;
}

export interface NativeBinding {
  init(errorFactory: (step: number, errno: number, message: string) => Error): void;
  channelPair(): [number, number];
  send(fd: number, data: Uint8Array, fds?: number[]): void;
  /** One queued message, null when none is queued, false at EOF. */
  receive(fd: number): ReceivedMessage | null | false;
  close(fd: number): void;
  memfd(data: Uint8Array): number;
  pidfdSignal(pidfd: number, signal: number): void;
  /** mode WATCH_CHANNEL: one callback per message; WATCH_STREAM: one per chunk (a Buffer), and the fd is the watcher's. */
  Watcher: new (fd: number, callback: (message: ReceivedMessage | false) => void, mode?: number) => Watcher;
  protocolVersion: number;
  /** lgetxattr: the value, or null when the entry has none. Throws a Node-style error (code 'ENOENT', ...). */
  getXattr(path: string, name: string): Buffer | null;
  /** lsetxattr. */
  setXattr(path: string, name: string, value: Uint8Array): void;
  /** An overlayfs whiteout (character device 0:0) at path. */
  mknodWhiteout(path: string): void;
  /**
   * `rel` opened below the directory `root` through no symlink, magic link or mount point (openat2
   * RESOLVE_BENEATH | NO_SYMLINKS | NO_MAGICLINKS | NO_XDEV): 'dir' an O_PATH fd on a directory, 'file' a
   * read-only fd. Throws a Node-style error (ELOOP through a symlink, ENOTDIR, ENOENT, ...).
   */
  openBeneath(root: string, rel: string, kind: 'dir' | 'file'): number;
}

export const WATCH_CHANNEL = 0;
export const WATCH_STREAM = 1;

let binding: NativeBinding | undefined;

export function native(): NativeBinding {
  if (binding) return binding;
  if (process.platform !== 'linux') {
    throw new ZerobootError('UNSUPPORTED_PLATFORM', `zeroboot sandboxes need Linux (namespaces, seccomp, cgroups); this is ${process.platform}. Run it in a Linux VM or container.`);
  }
  try {
    binding = loadAddon<NativeBinding>();
  } catch (cause) {
    throw new ZerobootError('KERNEL_FEATURE_MISSING', 'The zeroboot native addon is not built or does not load: run `pnpm build` (it needs cmake, g++ and libseccomp-dev).', { cause });
  }
  binding.init((step, errno, message) =>
    new ZerobootError('SANDBOX_SETUP_FAILED', `${message} (at ${stepName(step)})`, {
      step: stepName(step),
      errno,
    }),
  );
  return binding;
}

export { libPath, runtimesDir, shellServerPath, zygoteAddonPath };
