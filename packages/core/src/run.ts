// One run in one sandbox: send the request, stream the output, enforce the deadline and the output cap,
// and turn the exit into a RunResult. The fds come from the fork-server; Node does the I/O.
import { fstatSync, statfsSync } from 'node:fs';
import { constants } from 'node:os';

import { ZerobootError } from './errors.js';
import type { ExitInfo, ForkServer, ReadySandbox } from './fork-server.js';
import { MessageType, REQUEST_INLINE_MAX, decodeMessage, memfdRequestHeader, stepName, type Message } from './native-protocol.js';
import { WATCH_CHANNEL, WATCH_STREAM, type ReceivedMessage, type Watcher } from './native.js';
import { native } from './native.js';

/** How a run ended: a closed set. */
export type RunOutcome = 'exited' | 'signaled' | 'timed-out' | 'out-of-memory' | 'seccomp-violation';

export interface RunResult {
  /** UTF-8 decoded; invalid bytes replaced, never thrown on. */
  stdout: string;
  stderr: string;
  /** null when killed by a signal. */
  exitCode: number | null;
  /** e.g. 'SIGKILL'; null when the code exited. */
  signal: string | null;
  timedOut: boolean;
  /** Output hit `maxOutputBytes` on at least one stream; the rest was dropped. */
  truncated: boolean;
  /** From acquiring the sandbox to its exit. */
  durationMs: number;
  /** Why it ended. `out-of-memory`: the memory limit's OOM killer; `seccomp-violation`: SIGSYS from the filter. */
  outcome: RunOutcome;
}

export interface RunSettings {
  timeoutMs: number;
  maxOutputBytes: number;
  /** Keep stdout's bytes as they are, uncapped (the files API's reads). */
  rawStdout?: boolean;
  onStdout?: ((chunk: string) => void) | undefined;
  onStderr?: ((chunk: string) => void) | undefined;
  onStdoutBytes?: ((chunk: Uint8Array) => void) | undefined;
  onStderrBytes?: ((chunk: Uint8Array) => void) | undefined;
  signal?: AbortSignal | undefined;
}

const signalNames = new Map<number, string>(Object.entries(constants.signals).map(([name, number]) => [number, name]));

class Output {
  readonly #decoder = new TextDecoder('utf-8');
  readonly #parts: string[] = [];
  readonly raw: Buffer[] | undefined;
  readonly #limit: number;
  readonly #onChunk: ((chunk: string) => void) | undefined;
  readonly #onBytes: ((chunk: Uint8Array) => void) | undefined;
  #bytes = 0;
  truncated = false;
  callbackError: unknown;

  constructor(limit: number, onChunk: ((chunk: string) => void) | undefined, onBytes: ((chunk: Uint8Array) => void) | undefined, raw = false) {
    this.#limit = limit;
    this.#onChunk = onChunk;
    this.#onBytes = onBytes;
    if (raw) this.raw = [];
  }

  push(chunk: Buffer): void {
    if (this.raw) {
      this.raw.push(chunk);
      return;
    }
    if (this.#bytes >= this.#limit) {
      if (chunk.length > 0) this.truncated = true;
      return; // keep draining so the writer is never blocked, but keep nothing
    }
    let piece = chunk;
    if (this.#bytes + chunk.length > this.#limit) {
      piece = chunk.subarray(0, this.#limit - this.#bytes);
      this.truncated = true;
    }
    this.#bytes += piece.length;
    // The bytes as the code wrote them (each chunk a fresh copy from the addon): a decoded chunk cannot be
    // turned back into them once invalid UTF-8 was replaced.
    if (this.#onBytes && piece.length > 0) this.#call(this.#onBytes, piece);
    this.#emit(this.#decoder.decode(piece, { stream: true }));
  }

  finish(): string {
    this.#emit(this.#decoder.decode());
    return this.#parts.join('');
  }

  #emit(text: string): void {
    if (text === '') return;
    this.#parts.push(text);
    if (this.#onChunk) this.#call(this.#onChunk, text);
  }

  #call<T>(callback: (chunk: T) => void, chunk: T): void {
    if (this.callbackError !== undefined) return;
    try {
      callback(chunk);
    } catch (error) {
      this.callbackError = error;
    }
  }
}

/** Reads a pipe to its end; the watcher owns the fd from here on and closes it. */
function drain(fd: number, output: Output, watchers: Watcher[]): Promise<void> {
  return new Promise((resolve) => {
    watchers.push(
      new (native().Watcher)(fd, (chunk) => {
        if (chunk === false) resolve();
        else output.push(chunk as unknown as Buffer);
      }, WATCH_STREAM),
    );
  });
}

function sendRequest(sandbox: ReadySandbox, request: Buffer): void {
  const binding = native();
  if (request.length <= REQUEST_INLINE_MAX) {
    binding.send(sandbox.requestFd, request);
    return;
  }
  const memfd = binding.memfd(request);
  try {
    binding.send(sandbox.requestFd, memfdRequestHeader(request), [memfd]);
  } finally {
    binding.close(memfd);
  }
}

/** A Sandbox's run (its layers are named in the request): the overlay's upper directory comes back. */
export interface LayeredRun {
  /**
   * Called once, as the code starts, with an fd on the directory where the run's writes land, and the
   * sandbox's exit: the writes are complete once it settles. The fd is the callee's to close.
   */
  onUpper(fd: number, exit: Promise<ExitInfo>): void;
}

/** statfs(2)'s f_type of a tmpfs (linux/magic.h). */
const TMPFS_MAGIC = 0x01021994;

/**
 * Whether an fd a sandbox sent as its run's upper directory is one: a directory on a tmpfs (the run's
 * own, which the fold then reads). Anything else is refused before the fold would read through it.
 */
function isUpperDirectory(fd: number): boolean {
  try {
    return fstatSync(fd).isDirectory() && statfsSync(`/proc/self/fd/${fd}`).type === TMPFS_MAGIC;
  } catch {
    return false;
  }
}

/** What runInSandbox returns: the RunResult, plus stdout's bytes when asked for. */
export type SandboxRunResult = RunResult & { stdoutBytes?: Buffer };

/** ENOSPC (tmpfs full), EDQUOT, EFBIG (RLIMIT_FSIZE = diskMb): the sandbox's disk limit. */
export function isDiskFull(errno: number): boolean {
  return errno === constants.errno.ENOSPC || errno === constants.errno.EDQUOT || errno === constants.errno.EFBIG;
}

function runFailure(message: Message): ZerobootError {
  const step = stepName(message.a);
  const full = isDiskFull(message.b);
  return new ZerobootError(
    full ? 'DISK_QUOTA_EXCEEDED' : 'SANDBOX_SETUP_FAILED',
    full
      ? `The run's files or stdin do not fit in the sandbox's disk (limits.diskMb): ${message.text}. Write less, or raise limits.diskMb.`
      : `The run could not start (step '${step}'): ${message.text}.`,
    { step, errno: message.b },
  );
}

function toResult(exit: ExitInfo, timedOut: boolean): Pick<RunResult, 'exitCode' | 'signal' | 'outcome'> {
  const termSignal = exit.status & 0x7f;
  // timedOut wins: code that claimed an exit (RUN_EXITED) and kept running until the deadline timed out.
  if (termSignal === 0) return { exitCode: (exit.status >> 8) & 0xff, signal: null, outcome: timedOut ? 'timed-out' : 'exited' };
  const signal = signalNames.get(termSignal) ?? `SIG${termSignal}`;
  let outcome: RunOutcome = 'signaled';
  if (timedOut) outcome = 'timed-out';
  else if (exit.oomKilled) outcome = 'out-of-memory';
  else if (signal === 'SIGSYS') outcome = 'seccomp-violation';
  return { exitCode: null, signal, outcome };
}

export async function runInSandbox(server: ForkServer, sandbox: ReadySandbox, request: Buffer, settings: RunSettings, acquiredAt: number, layered?: LayeredRun): Promise<SandboxRunResult> {
  const stdout = new Output(settings.maxOutputBytes, settings.onStdout, settings.onStdoutBytes, settings.rawStdout);
  const stderr = new Output(settings.maxOutputBytes, settings.onStderr, settings.onStderrBytes);
  const watchers: Watcher[] = [];
  const outputs = Promise.all([drain(sandbox.stdoutFd, stdout, watchers), drain(sandbox.stderrFd, stderr, watchers)]);
  let timedOut = false;
  let aborted = false;
  const kill = () => {
    try {
      native().pidfdSignal(sandbox.pidfd, constants.signals.SIGKILL);
    } catch {
      // already gone
    }
  };
  const timer = setTimeout(() => {
    timedOut = true;
    kill();
  }, settings.timeoutMs);
  const onAbort = () => {
    aborted = true;
    kill();
  };
  settings.signal?.addEventListener('abort', onAbort, { once: true });
  // The runtime reports its exit status itself once it has closed its output (RUN_EXITED), which ends
  // the run without waiting for the kernel to tear the sandbox down; a run killed by a signal never
  // reports, and the fork-server's EXIT tells.
  let failure: ZerobootError | undefined;
  let runtimeSignal = 0;
  let started = false; // after RUN_STARTED user code runs and can write to the socket: no more RUN_FAILED
  let upperSeen = false;
  let resolveReported!: (exit: ExitInfo) => void;
  const reported = new Promise<ExitInfo>((resolve) => (resolveReported = resolve));
  const onMessage = (received: ReceivedMessage | false) => {
    if (received === false) return;
    const message = decodeMessage(received.data);
    let fds = received.fds;
    if (message?.type === MessageType.RUN_STARTED && !started && layered && fds.length > 0 && isUpperDirectory(fds[0]!)) {
      upperSeen = true;
      layered.onUpper(fds[0]!, sandbox.exit);
      fds = fds.slice(1);
    }
    for (const fd of fds) native().close(fd);
    if (message?.type === MessageType.RUN_STARTED) started = true;
    else if (message?.type === MessageType.RUN_EXITED) {
      // b: the signal that killed the runtime's child running the code (the shell's script)
      if (message.b > 0 && message.b < 128) runtimeSignal = message.b;
      resolveReported({ status: (message.a & 0xff) << 8, oomKilled: false });
    }
    else if (message?.type === MessageType.RUN_FAILED && !started) failure ??= runFailure(message);
  };
  watchers.push(new (native().Watcher)(sandbox.requestFd, onMessage, WATCH_CHANNEL));
  try {
    try {
      sendRequest(sandbox, request);
    } catch (error) {
      kill();
      throw error;
    }
    // pid 1's exit takes the whole pid namespace down, so every writer of the pipes is gone with it.
    let [exit] = await Promise.all([Promise.race([reported, sandbox.exit]), outputs]);
    // The fork-server's EXIT can be handled before the sandbox's own messages (two sockets, no order
    // between them): what is still queued then says why the run could not start, or where a Sandbox's
    // writes are.
    const readQueued = () => {
      for (let late = native().receive(sandbox.requestFd); late; late = native().receive(sandbox.requestFd)) onMessage(late);
    };
    if (layered && !upperSeen) readQueued();
    if (runtimeSignal !== 0) {
      // Killed by a signal: by the memory limit's OOM killer if it was SIGKILL and the fork-server saw an
      // OOM kill in the sandbox's cgroup (its EXIT follows at once: the runtime exits right after).
      const oomKilled = runtimeSignal === constants.signals.SIGKILL && (await sandbox.exit.then((e) => e.oomKilled, () => false));
      exit = { status: runtimeSignal, oomKilled };
    }
    const durationMs = performance.now() - acquiredAt;
    if (aborted) throw new ZerobootError('ABORTED', 'The run was aborted through its AbortSignal; its processes were killed.', { cause: settings.signal?.reason });
    const status = toResult(exit, timedOut);
    if (status.exitCode === 127 && !timedOut && !started) readQueued();
    if (layered && started && !upperSeen) {
      failure ??= new ZerobootError('SANDBOX_SETUP_FAILED', "The sandbox ran the code but did not hand over the directory its writes went to: nothing it wrote was kept. Run it again; report this if it repeats.", { step: 'layers' });
    }
    if (failure) throw failure;
    const callbackError = stdout.callbackError ?? stderr.callbackError;
    const result: SandboxRunResult = {
      stdout: stdout.raw ? '' : stdout.finish(),
      stderr: stderr.finish(),
      ...status,
      timedOut,
      truncated: stdout.truncated || stderr.truncated,
      durationMs,
    };
    if (stdout.raw) result.stdoutBytes = Buffer.concat(stdout.raw);
    if (callbackError !== undefined) throw new ZerobootError('INVALID_ARGUMENT', 'An onStdout/onStderr (or onStdoutBytes/onStderrBytes) callback threw; the run itself completed.', { cause: callbackError });
    return result;
  } finally {
    kill(); // on every path: a run that threw (FORKSERVER_DIED, a failed send) leaves nothing running
    for (const watcher of watchers) watcher.close();
    clearTimeout(timer);
    settings.signal?.removeEventListener('abort', onAbort);
    server.release(sandbox);
  }
}
