import { createRequire } from 'node:module';
import { join } from 'node:path';

const release = join(import.meta.dirname, 'build', 'Release');

export const addonPath = join(release, 'zeroboot_native.node');
export const libPath = join(release, 'libzeroboot.so');
export const zygoteAddonPath = join(release, 'zeroboot_zygote.node');
export const shellServerPath = join(release, 'zeroboot-shell');
/** Rootless mode: starts a fork-server in a user namespace of its own (tools/zeroboot-userns.c). */
export const usernsLauncherPath = join(release, 'zeroboot-userns');
export const runtimesDir = join(import.meta.dirname, 'runtimes');

export function loadAddon() {
  return createRequire(import.meta.url)(addonPath);
}
