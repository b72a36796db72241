// The AI SDK's Experimental_SandboxSession over a zeroboot Sandbox: commands are shell runs over the
// sandbox's persistent filesystem (each a fresh fork of the warm shell template), files go through its
// files API. Relative paths resolve against /workspace, where commands start.
import { ZerobootError, assertSandbox, shellExitCode, timeoutNote, type RunOptions, type RunResult, type Sandbox } from '@zeroboot/core';
import type { Experimental_SandboxDirectoryEntry as DirectoryEntry, Experimental_SandboxProcess as SandboxProcess, Experimental_SandboxSession as SandboxSession } from 'ai';

export interface SandboxSessionOptions {
  /** The template commands run in: a shell template (bash where the system has it, else sh). Default: 'shell'. */
  shell?: string;
  /** Each command's wall-clock limit. Default: the instance's `limits.timeoutMs`. */
  timeoutMs?: number;
  /** What the agent is told about the sandbox. Default: a description of the sandbox's layout and limits. */
  description?: string;
}

type CommandOptions = { command: string; workingDirectory?: string; env?: Record<string, string>; abortSignal?: AbortSignal };

// Only what holds on every host: the shell is bash where the system has it, and which tools there are is
// the host's (its system directories, read-only).
const DESCRIPTION =
  'An isolated Linux sandbox without network access. Commands run in a POSIX shell (bash where the system has it), starting in /workspace (relative paths resolve there). ' +
  '/workspace and /tmp are writable and keep their files between commands; everything else is read-only. ' +
  "The system's command-line tools are there (check with `command -v` before relying on one, e.g. python3); nothing can be installed from the network.";

/**
 * An `Experimental_SandboxSession` for `generateText({ experimental_sandbox })` and AI SDK tools that use one.
 * Closing the Sandbox is the caller's job. `spawn` with `stdin: true` rejects (a run's stdin is fixed when it starts).
 */
export function createSandboxSession(sandbox: Sandbox, options: SandboxSessionOptions = {}): SandboxSession {
  assertSandbox(sandbox);
  const shell = options.shell ?? 'shell';
  const files = sandbox.files;

  const exec = (command: string, workingDirectory: string | undefined, runOptions: RunOptions): Promise<RunResult> =>
    sandbox.run(shell, workingDirectory === undefined ? command : `cd -- ${quote(workingDirectory)} || exit 1\n${command}`, {
      ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
      ...runOptions,
    });

  /** A command's exit code; the abort reason when its signal fired. */
  const command = async ({ command, workingDirectory, env, abortSignal }: CommandOptions, streams: Pick<RunOptions, 'onStdoutBytes' | 'onStderrBytes'>, kill?: AbortSignal) => {
    abortSignal?.throwIfAborted();
    const signals = [abortSignal, kill].filter((s) => s !== undefined);
    try {
      const result = await exec(command, workingDirectory, { ...(env ? { env } : {}), ...streams, ...(signals.length > 0 ? { signal: AbortSignal.any(signals) } : {}) });
      return { result, exitCode: shellExitCode(result) };
    } catch (error) {
      if (abortSignal?.aborted) throw abortSignal.reason;
      if (kill?.aborted) return { result: undefined, exitCode: shellExitCode({ exitCode: null, signal: 'SIGKILL' }) };
      throw error;
    }
  };

  const readBinaryFile = async ({ path, abortSignal }: { path: string; abortSignal?: AbortSignal }): Promise<Uint8Array | null> => {
    abortSignal?.throwIfAborted();
    return files.read(path).catch(notFoundAs(null));
  };

  const writeBinaryFile = async ({ path, content, abortSignal }: { path: string; content: Uint8Array; abortSignal?: AbortSignal }): Promise<void> => {
    abortSignal?.throwIfAborted();
    await files.write(path, content);
  };

  /** A shell probe's exit code: one run answers what the files API would need two calls for. */
  const probe = async (script: string, abortSignal: AbortSignal | undefined) => {
    const { result, exitCode } = await command({ command: script, ...(abortSignal ? { abortSignal } : {}) }, {});
    return { exitCode, stdout: result?.stdout ?? '', stderr: result?.stderr ?? '' };
  };

  const stat = async ({ path, abortSignal }: { path: string; abortSignal?: AbortSignal }) => {
    const { exitCode, stdout } = await probe(`stat -L -c '%F|%s' -- ${quote(checkedPath(path))} 2>/dev/null`, abortSignal);
    if (exitCode !== 0) return null;
    const [kind = '', size = '0'] = stdout.trim().split('|');
    return { type: kind === 'directory' ? ('directory' as const) : kind.includes('regular') ? ('file' as const) : ('other' as const), size: Number(size) };
  };

  return {
    description: options.description ?? DESCRIPTION,

    run: async (options) => {
      const { result, exitCode } = await command(options, {});
      // The AI SDK's result has no field for either: the agent reads them at the end of stderr.
      const dropped = result!.truncated ? '\n[output past the sandbox limit (maxOutputBytes) was dropped]' : '';
      return { exitCode, stdout: result!.stdout, stderr: result!.stderr + timeoutNote(result!) + dropped };
    },

    spawn: (async (options: CommandOptions & { stdin?: boolean }): Promise<SandboxProcess> => {
      if (options.stdin) {
        throw new ZerobootError('INVALID_ARGUMENT', 'zeroboot sandboxes take a command\'s stdin when it starts: spawn with `stdin: true` is not supported. Put the input in the command (a here-document) instead.');
      }
      options.abortSignal?.throwIfAborted();
      const kill = new AbortController();
      const [stdout, out] = byteStream();
      const [stderr, err] = byteStream();
      const exit = command(options, { onStdoutBytes: out.write, onStderrBytes: err.write }, kill.signal).then(
        ({ exitCode }) => ({ exitCode }),
        (error: unknown) => {
          out.error(error);
          err.error(error);
          throw error;
        },
      );
      exit.then(() => (out.close(), err.close())).catch(() => {}); // a caller that never waits must not see an unhandled rejection
      return {
        stdout,
        stderr,
        wait: () => exit,
        kill: async () => {
          kill.abort();
          await exit.catch(() => {});
        },
      };
    }) as unknown as SandboxSession['spawn'],

    readFile: async (options) => {
      const bytes = await readBinaryFile(options);
      return bytes === null ? null : new ReadableStream<Uint8Array>({ start: (controller) => (controller.enqueue(bytes), controller.close()) });
    },
    readBinaryFile,
    readTextFile: async ({ encoding, startLine, endLine, ...options }) => {
      const nodeEncoding = textEncoding(encoding);
      const bytes = await readBinaryFile(options);
      if (bytes === null) return null;
      const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString(nodeEncoding);
      if (startLine === undefined && endLine === undefined) return text;
      const lines = text.split(/(?<=\n)/); // each line keeps its newline, so a slice joins back exactly
      return lines.slice(Math.max(0, (startLine ?? 1) - 1), endLine ?? lines.length).join('');
    },

    writeFile: async ({ content, ...options }) => writeBinaryFile({ ...options, content: new Uint8Array(await new Response(content).arrayBuffer()) }),
    writeBinaryFile,
    writeTextFile: async ({ content, encoding, ...options }) => {
      await writeBinaryFile({ ...options, content: Buffer.from(content, textEncoding(encoding)) });
    },

    stat,
    listDirectory: async ({ path, abortSignal }) => {
      abortSignal?.throwIfAborted();
      const entries = await files.list(path).catch(notFoundAs(null));
      if (entries !== null) return entries.map((entry): DirectoryEntry => ({ name: entry.name, type: entry.type === 'dir' ? 'directory' : entry.type }));
      // The files API says "not found" for a path that is not a directory, too.
      if ((await stat({ path, ...(abortSignal ? { abortSignal } : {}) })) === null) return null;
      throw new ZerobootError('INVALID_ARGUMENT', `${JSON.stringify(path)} is not a directory: list a directory, or read the file.`);
    },
    deleteFile: async ({ path, abortSignal }) => {
      const p = quote(checkedPath(path));
      const { exitCode, stderr } = await probe(`if [ -d ${p} ] && [ ! -L ${p} ]; then exit 3; elif [ -e ${p} ] || [ -L ${p} ]; then rm -f -- ${p}; else exit 4; fi`, abortSignal);
      if (exitCode === 0) return true;
      if (exitCode === 4) return false;
      if (exitCode === 3) throw new ZerobootError('INVALID_ARGUMENT', `${JSON.stringify(path)} is a directory: deleteFile deletes files (run \`rm -r\` to remove a directory).`);
      throw new ZerobootError('INVALID_ARGUMENT', `Could not delete ${JSON.stringify(path)}: ${stderr.trim() || `rm exited with ${exitCode}`}.`);
    },
  };
}

/**
 * The text encodings readTextFile and writeTextFile take, the same both ways so that what is written reads
 * back: Node's, by the names the AI SDK's WHATWG-style default ('utf-8') suggests, too. Not TextDecoder's
 * labels: its 'latin1' is windows-1252, which does not round-trip, and it cannot encode. Not Node's binary
 * encodings either ('hex' of text that is not hex writes nothing).
 */
const TEXT_ENCODINGS: Record<string, BufferEncoding> = { 'utf-8': 'utf8', utf8: 'utf8', 'utf-16le': 'utf16le', utf16le: 'utf16le', latin1: 'latin1', ascii: 'ascii' };

function textEncoding(encoding: string | undefined): BufferEncoding {
  const known = TEXT_ENCODINGS[(encoding ?? 'utf-8').toLowerCase()];
  if (known === undefined) throw new ZerobootError('INVALID_ARGUMENT', `Expected \`encoding\` to be one of 'utf-8', 'utf-16le', 'latin1', 'ascii', got ${JSON.stringify(encoding)}. Read or write the bytes (readBinaryFile, writeBinaryFile) for anything else.`);
  return known;
}

/** A path the shell probes (stat, deleteFile) can take, checked as the files API checks its own. */
function checkedPath(path: unknown): string {
  if (typeof path !== 'string' || path === '' || path.includes('\0')) {
    throw new ZerobootError('INVALID_ARGUMENT', `Expected \`path\` to be a non-empty string without NUL bytes, got ${JSON.stringify(path)}.`);
  }
  return path;
}

/** A shell word that is exactly `s`. */
function quote(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

function notFoundAs<T>(value: T): (error: unknown) => T {
  return (error) => {
    if (ZerobootError.isInstance(error) && error.code === 'FILE_NOT_FOUND') return value;
    throw error;
  };
}

/**
 * A byte stream fed with the run's output as it arrives. A reader that cancels it only stops reading: the
 * command runs on, and what it prints from then on is dropped.
 */
function byteStream(): [ReadableStream<Uint8Array>, { write: (chunk: Uint8Array) => void; close: () => void; error: (error: unknown) => void }] {
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  let open = true;
  const stream = new ReadableStream<Uint8Array>({
    start: (c) => void (controller = c),
    cancel: () => void (open = false),
  });
  const end = (f: () => void) => {
    if (open) (open = false), f();
  };
  return [
    stream,
    {
      write: (chunk) => open && controller.enqueue(chunk),
      close: () => end(() => controller.close()),
      error: (error) => end(() => controller.error(error)),
    },
  ];
}
