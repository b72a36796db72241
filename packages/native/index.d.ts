/** Absolute path of the Node-API addon, `build/Release/zeroboot_native.node`. */
export declare const addonPath: string;
/** Absolute path of the C library for ctypes, `build/Release/libzeroboot.so`. */
export declare const libPath: string;
/** The Node fork-server's binding, `build/Release/zeroboot_zygote.node` (loaded by runtimes/node/zygote.cjs). */
export declare const zygoteAddonPath: string;
/** The shell fork-server, `build/Release/zeroboot-shell`. */
export declare const shellServerPath: string;
/** Rootless mode's launcher, `build/Release/zeroboot-userns`: starts a fork-server in a user namespace of its own. */
export declare const usernsLauncherPath: string;
/** Absolute path of the runtime sources, `packages/native/runtimes`. */
export declare const runtimesDir: string;
/** Loads the addon; the caller states its shape (core types the raw binding in one place). */
export declare function loadAddon<Binding = unknown>(): Binding;
