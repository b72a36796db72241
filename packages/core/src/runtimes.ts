// How each runtime's fork-server is started: the command line, what the sandboxes need of the host
// read-only, and which preloads make sense. The fork-servers themselves are in packages/native/runtimes.
import { isBuiltin } from 'node:module';
import { join } from 'node:path';

import { invalidArgument } from './errors.js';
import { findNode, findPython, findShell, SYSTEM_PATHS } from './host.js';
import { libPath, runtimesDir, shellServerPath, zygoteAddonPath } from './native.js';
import type { RuntimeKind } from './options.js';

export type Setting = [string, string | number];

export interface TemplateSpec {
  executable?: string | undefined;
  preload: string[];
  prewarm: boolean;
}

export interface Launch {
  command: string;
  args: string[];
  /** argv[0], what the runtime reports as its own name (Node's process.argv0). Default: the command. */
  argv0?: string;
}

/** Default pool size per runtime: sandboxes kept forked and parked. */
export const DEFAULT_POOL: Record<RuntimeKind, number> = { python: 8, node: 4, shell: 4 };

/** Where a node template's Node binary is inside its sandboxes (process.execPath there). */
const SANDBOX_NODE = '/opt/zeroboot/bin/node';

const roPaths = (extra: string[]): Setting[] => [...SYSTEM_PATHS, ...extra].map((p): Setting => ['ro_path', p]);

/**
 * The command line of a template's fork-server. `settings` are the ones every runtime takes
 * (zb_config_set); `field` names the template in error messages.
 */
export function launchFor(runtime: RuntimeKind, spec: TemplateSpec, settings: Setting[], field: string): Launch {
  switch (runtime) {
    case 'python': {
      for (const [i, name] of spec.preload.entries()) {
        if (!/^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/.test(name)) {
          throw invalidArgument(`${field}.preload.${i}`, 'a Python module name such as "json" or "os.path"', name);
        }
      }
      const python = findPython(spec.executable ?? 'python3');
      const config = { settings: [...settings, ...roPaths(python.extraPaths)].map(([k, v]) => [k, String(v)]), preload: spec.preload, prewarm: spec.prewarm };
      return { command: python.executable, args: ['-s', join(runtimesDir, 'python', 'zygote.py'), libPath, JSON.stringify(config)] };
    }
    case 'node': {
      for (const [i, name] of spec.preload.entries()) {
        // Built-ins only: a package's files would have to be visible in every sandbox for what it loads
        // lazily, and the sandbox sees only the system paths.
        if (!isBuiltin(name)) throw invalidArgument(`${field}.preload.${i}`, 'a Node.js built-in module such as "node:zlib"', name);
      }
      const node = findNode(spec.executable);
      // The binary alone, at a path of its own: Node's built-in modules are inside it; its install prefix
      // (npm, headers) is not needed, and its host path may be in a home directory or a checkout.
      const own: Setting[] = [...roPaths([`${node.executable}=>${SANDBOX_NODE}`]), ['madv_dofork', 1]];
      const config = { settings: [...settings, ...own].map(([k, v]) => [k, String(v)]), preload: spec.preload, prewarm: spec.prewarm, execPath: SANDBOX_NODE };
      const [major, minor] = node.version;
      // --use-largepages: Node copies its own machine code onto 2 MiB pages at start-up (anonymous, with
      // transparent huge pages allowed; silently 4 KiB pages where they are not). A fork copies those
      // mappings whole, a few page-table entries, where the binary's file-backed 4 KiB pages are never
      // copied and every sandbox faulted in the code it ran again (~140 of its ~430 page faults).
      const flags = ['--single-threaded', '--use-largepages=silent'];
      if (major > 22 || (major === 22 && minor >= 14)) flags.push('--disable-sigusr1'); // no inspector thread
      return { command: node.executable, argv0: 'node', args: [...flags, join(runtimesDir, 'node', 'zygote.cjs'), zygoteAddonPath, JSON.stringify(config)] };
    }
    case 'shell': {
      if (spec.preload.length > 0) throw invalidArgument(`${field}.preload`, 'empty: a shell has nothing to preload', spec.preload);
      const shell = findShell(spec.executable);
      const extra = SYSTEM_PATHS.some((p) => shell.startsWith(`${p}/`)) ? [] : [shell];
      return { command: shellServerPath, args: [...settings, ...roPaths(extra), ['shell', shell]].map(([k, v]) => `${k}=${v}`) };
    }
  }
}

/** Which runtimes this machine can warm, for the default templates. */
export function availableRuntimes(): RuntimeKind[] {
  const found: RuntimeKind[] = [];
  try {
    findPython('python3');
    found.push('python');
  } catch {
    // no python3 here: no python template by default
  }
  try {
    findNode(); // the SDK's own Node
    found.push('node');
  } catch {
    // older than 22
  }
  try {
    findShell();
    found.push('shell');
  } catch {
    // no shell
  }
  return found;
}
