// One fork-server process per template, and the pool of ready sandboxes it keeps for us. The server does
// the forking and the isolation (packages/native/src/zygote.c); this side asks it for sandboxes (FORK),
// keeps the ones it hands over (READY) until a run takes one, and learns how each ended (EXIT).
import { spawn, type ChildProcess } from 'node:child_process';

import { ZerobootError } from './errors.js';
import { BASE_ENV } from './host.js';
import { ExitFlag, Feature, MessageType, decodeMessage, encodeControl, stepName, type Message } from './native-protocol.js';
import { native, type Watcher } from './native.js';
import { Samples } from './samples.js';

export interface ForkServerSpec {
  template: string;
  /** The fork-server's command line (runtimes.ts). */
  command: string;
  args: string[];
  argv0?: string | undefined;
  pool: number;
}

export interface ExitInfo {
  /** The raw wait(2) status. */
  status: number;
  oomKilled: boolean;
}

/** A forked, fully isolated sandbox parked in the server's pool; the fds are ours until released. */
export interface ReadySandbox {
  id: number;
  pid: number;
  slot: number;
  requestFd: number;
  stdoutFd: number;
  stderrFd: number;
  pidfd: number;
  /** Settles when the sandbox's pid 1 has been reaped; rejects with FORKSERVER_DIED or SANDBOX_CLOSED. */
  exit: Promise<ExitInfo>;
}

interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(error: Error): void;
}

function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (error: Error) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  promise.catch(() => {}); // a sandbox nobody awaits may still be rejected at shutdown
  return { promise, resolve, reject };
}

const START_TIMEOUT_MS = 20_000;
const MAX_CONSECUTIVE_FAILURES = 3;
const MAX_RESTARTS = 5;

export class ForkServer {
  readonly template: string;
  #spec: ForkServerSpec;
  #process: ChildProcess | undefined;
  #controlFd = -1;
  #watcher: Watcher | undefined;
  #hello: Deferred<Message> | undefined;
  #ready: ReadySandbox[] = [];
  #waiters: Array<Deferred<ReadySandbox>> = [];
  #exits = new Map<number, Deferred<ExitInfo>>();
  #pendingForks: number[] = []; // when each outstanding FORK was asked for
  #consecutiveFailures = 0;
  #closed = false;
  #restarting: Promise<void> | undefined;
  #launching = false;
  #failed: ZerobootError | undefined;
  #stderrTail = '';
  #onPoolChange: ((error: Error | undefined) => void) | undefined;
  #features = 0;
  forks = 0;
  readonly forkMs = new Samples(2048);

  constructor(spec: ForkServerSpec) {
    this.template = spec.template;
    this.#spec = spec;
  }

  get features(): number {
    return this.#features;
  }

  get readyCount(): number {
    return this.#ready.length;
  }

  /** Host pids of the parked sandboxes (for memory measurements). */
  get readyPids(): number[] {
    return this.#ready.map((s) => s.pid);
  }

  get serverPid(): number | undefined {
    return this.#process?.pid;
  }

  /** Starts the server and waits until its pool is full. */
  async start(): Promise<void> {
    await this.#launch();
    await this.#fillPool();
  }

  /** Spawns the server process and waits for its HELLO. On failure, tears down only what it made. */
  async #launch(): Promise<void> {
    const binding = native();
    const [ours, theirs] = binding.channelPair();
    const hello = deferred<Message>();
    let child: ChildProcess;
    try {
      // A clean environment: the server's memory is every sandbox's memory, so nothing of ours may be in it.
      child = spawn(this.#spec.command, this.#spec.args, {
        argv0: this.#spec.argv0 ?? this.#spec.command,
        env: { ...BASE_ENV },
        cwd: '/',
        stdio: ['ignore', 'ignore', 'pipe', theirs],
        detached: true, // its own session: no terminal, and a Ctrl-C meant for us is not its business
      });
    } catch (cause) {
      binding.close(ours);
      throw new ZerobootError('FORKSERVER_DIED', `The ${this.template} fork-server could not be spawned: ${(cause as Error).message}.`, { cause });
    } finally {
      binding.close(theirs);
    }
    this.#process = child;
    this.#controlFd = ours;
    this.#hello = hello;
    this.#launching = true;
    let stderrTail = '';
    this.#stderrTail = '';
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (chunk: string) => {
      stderrTail = (stderrTail + chunk).slice(-4096);
      if (child === this.#process) this.#stderrTail = stderrTail;
    });
    // A failed spawn emits 'error' and no 'exit': both mean the server is gone.
    child.on('error', (error) => this.#onServerGone(child, error.message));
    child.on('exit', (code, signal) => this.#onServerGone(child, signal ?? `exit code ${code}`));
    this.#watcher = new binding.Watcher(ours, (message) => this.#onMessage(message === false ? false : message.data, message === false ? [] : message.fds));
    const timer = setTimeout(() => hello.reject(new Error(`no HELLO within ${START_TIMEOUT_MS} ms`)), START_TIMEOUT_MS);
    try {
      const message = await hello.promise;
      this.#features = message.b;
    } catch (cause) {
      if (child === this.#process) {
        this.#process = undefined;
        this.#teardownChannel();
      }
      child.kill('SIGKILL');
      const detail = stderrTail.trim() || String((cause as Error).message ?? cause);
      throw new ZerobootError(
        /namespace|unshare|clone|EPERM|Operation not permitted/i.test(detail) ? 'KERNEL_FEATURE_MISSING' : 'FORKSERVER_DIED',
        `The ${this.template} fork-server did not start: ${detail}. Run \`zeroboot doctor\` to check the kernel features it needs.`,
        { cause },
      );
    } finally {
      clearTimeout(timer);
      this.#launching = false;
    }
  }

  /**
   * Waits until the pool is full, so that the first run is as fast as the rest, and so that a sandbox that
   * cannot be set up on this machine fails start() rather than the first run.
   */
  async #fillPool(): Promise<void> {
    if (this.#closed) throw closedError();
    const wanted = this.#spec.pool;
    if (wanted === 0) {
      // Nothing to keep warm: still prove that a sandbox can be set up here.
      this.discard(await this.acquire());
      return;
    }
    const filled = deferred<void>();
    this.#onPoolChange = (error) => {
      if (error) filled.reject(error);
      else if (this.#ready.length >= wanted) filled.resolve();
    };
    this.#requestForks();
    this.#onPoolChange(undefined);
    try {
      await filled.promise;
    } finally {
      this.#onPoolChange = undefined;
    }
  }

  /** A parked sandbox if the pool has one, at once; undefined when empty (or closed or failed). */
  takeReady(): ReadySandbox | undefined {
    if (this.#closed || this.#failed) return undefined;
    const sandbox = this.#ready.shift();
    // Refill when the run is done (release), not now: forking competes for the CPUs with the run it would
    // delay. Only an empty pool refills at once.
    if (sandbox && this.#ready.length === 0) this.#requestForks();
    return sandbox;
  }

  /**
   * A ready sandbox: from the pool when one is parked, otherwise forked on demand. `cancel` takes a
   * waiting caller out of the line (the promise rejects with its reason).
   */
  acquire(cancel?: AbortSignal): Promise<ReadySandbox> {
    if (this.#closed) return Promise.reject(closedError());
    if (this.#failed) return Promise.reject(this.#failed);
    const sandbox = this.takeReady();
    if (sandbox) return Promise.resolve(sandbox);
    const waiter = deferred<ReadySandbox>();
    this.#waiters.push(waiter);
    this.#requestForks();
    if (!cancel) return waiter.promise;
    const onCancel = () => {
      const index = this.#waiters.indexOf(waiter);
      if (index >= 0) this.#waiters.splice(index, 1);
      waiter.reject(cancel.reason instanceof Error ? cancel.reason : new Error(String(cancel.reason)));
    };
    cancel.addEventListener('abort', onCancel, { once: true });
    return waiter.promise.finally(() => cancel.removeEventListener('abort', onCancel));
  }

  /** Closes our ends of a sandbox's channels; the sandbox itself exits (or already has). */
  release(sandbox: ReadySandbox): void {
    const binding = native();
    binding.close(sandbox.requestFd);
    binding.close(sandbox.pidfd);
    this.#requestForks();
  }

  /** For a sandbox that will not run: closes every fd we hold of it, so it exits. */
  discard(sandbox: ReadySandbox): void {
    native().close(sandbox.stdoutFd);
    native().close(sandbox.stderrFd);
    this.release(sandbox);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#onPoolChange?.(closedError()); // a start() or restart still filling the pool ends here
    for (const waiter of this.#waiters.splice(0)) waiter.reject(closedError());
    const child = this.#process;
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      try {
        native().send(this.#controlFd, encodeControl(MessageType.SHUTDOWN));
      } catch {
        child.kill('SIGKILL');
      }
      const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(timer);
    }
    this.#failInFlight(closedError());
    this.#teardownChannel();
  }

  #requestForks(): void {
    if (this.#closed || this.#controlFd < 0) return;
    // After repeated setup failures, fork only for runs that are waiting, not to refill the pool.
    const target = (this.#consecutiveFailures >= MAX_CONSECUTIVE_FAILURES ? 0 : this.#spec.pool) + this.#waiters.length;
    // The server forks at most 1024 per FORK; never count more as pending than it will answer.
    const missing = Math.min(1024, target - this.#ready.length - this.#pendingForks.length);
    if (missing <= 0) return;
    try {
      native().send(this.#controlFd, encodeControl(MessageType.FORK, missing));
    } catch {
      return; // the server is gone; its exit handler restarts it
    }
    const now = performance.now();
    for (let i = 0; i < missing; i++) this.#pendingForks.push(now);
  }

  #onMessage(data: Buffer | false, fds: number[]): void {
    if (data === false) return; // EOF: the exit handler does the rest
    const message = decodeMessage(data);
    if (!message) {
      for (const fd of fds) native().close(fd);
      return;
    }
    switch (message.type) {
      case MessageType.HELLO:
        this.#hello?.resolve(message);
        break;
      case MessageType.READY:
        this.#onReady(message, fds);
        break;
      case MessageType.SPAWN_FAILED:
        this.#onSpawnFailed(message);
        break;
      case MessageType.EXIT:
        this.#onExit(message);
        break;
      default:
        for (const fd of fds) native().close(fd);
    }
  }

  #onReady(message: Message, fds: number[]): void {
    const asked = this.#pendingForks.shift();
    if (asked !== undefined) this.forkMs.add(performance.now() - asked);
    this.forks++;
    this.#consecutiveFailures = 0;
    const [requestFd, stdoutFd, stderrFd, pidfd] = fds as [number, number, number, number];
    const exit = deferred<ExitInfo>();
    // A sandbox given back unused (its run aborted while it was forked) has no one waiting on its exit:
    // a rejection at close must not be an unhandled one. Whoever awaits it still gets the error.
    exit.promise.catch(() => {});
    this.#exits.set(message.id, exit);
    const sandbox: ReadySandbox = { id: message.id, pid: message.a, slot: message.b, requestFd, stdoutFd, stderrFd, pidfd, exit: exit.promise };
    const waiter = this.#waiters.shift();
    if (waiter) waiter.resolve(sandbox);
    else if (this.#ready.length < this.#spec.pool) this.#ready.push(sandbox);
    // Forked for a run that stopped waiting (aborted, timed out) and beyond the pool: let it go rather than
    // keep more sandboxes parked than asked for (with pool 0, one per aborted run, for good).
    else this.discard(sandbox);
    this.#onPoolChange?.(undefined);
  }

  #onSpawnFailed(message: Message): void {
    this.#pendingForks.shift();
    this.#consecutiveFailures++;
    const error = spawnError(this.template, message);
    this.#waiters.shift()?.reject(error);
    this.#onPoolChange?.(error);
    this.#requestForks();
  }

  #onExit(message: Message): void {
    const index = this.#ready.findIndex((s) => s.id === message.id);
    if (index >= 0) {
      // A parked sandbox died before use (killed from outside): forget it and refill.
      this.discard(this.#ready.splice(index, 1)[0]!);
    }
    const exit = this.#exits.get(message.id);
    this.#exits.delete(message.id);
    exit?.resolve({ status: message.a, oomKilled: (message.b & ExitFlag.OOM_KILLED) !== 0 });
  }

  #failInFlight(error: ZerobootError): void {
    for (const exit of this.#exits.values()) exit.reject(error);
    this.#exits.clear();
    this.#pendingForks = [];
    for (const sandbox of this.#ready.splice(0)) this.discard(sandbox);
  }

  #teardownChannel(): void {
    this.#watcher?.close();
    this.#watcher = undefined;
    if (this.#controlFd >= 0) native().close(this.#controlFd);
    this.#controlFd = -1;
  }

  #onServerGone(child: ChildProcess, how: string): void {
    if (child !== this.#process) return;
    this.#hello?.reject(new Error(`exited with ${how}`));
    if (this.#launching || this.#closed) return; // #launch's own failure path, or close(), handles it
    this.#process = undefined;
    // Its sandboxes died with it (PR_SET_PDEATHSIG): runs in flight settle now, later runs get a new server.
    const error = new ZerobootError('FORKSERVER_DIED', `The ${this.template} fork-server died (${how}) during the run; it is being restarted and later runs will work. ${this.#stderrTail.trim()}`.trim());
    this.#failInFlight(error);
    this.#teardownChannel();
    this.#scheduleRestart(error);
  }

  /**
   * Restarts the server: at once, then with backoff (50 ms doubling to 2 s). After MAX_RESTARTS failures in a
   * row the template is failed: waiting and later runs reject with the last error instead of waiting forever.
   */
  #scheduleRestart(reason: Error): void {
    if (this.#closed || this.#restarting) return;
    this.#restarting = (async () => {
      for (let attempt = 1; attempt <= MAX_RESTARTS; attempt++) {
        if (attempt > 1) await new Promise((resolve) => setTimeout(resolve, Math.min(2000, 50 * 2 ** (attempt - 2))));
        if (this.#closed) return;
        try {
          await this.#launch();
          this.#requestForks();
          return;
        } catch (error) {
          reason = error as Error;
        }
      }
      if (this.#closed) return;
      this.#failed = new ZerobootError('FORKSERVER_DIED', `The ${this.template} fork-server died and could not be restarted (${MAX_RESTARTS} attempts): ${reason.message} Start a new Zeroboot instance once the cause is fixed.`, { cause: reason });
      for (const waiter of this.#waiters.splice(0)) waiter.reject(this.#failed);
    })().finally(() => {
      this.#restarting = undefined;
    });
  }

  featureList(): string[] {
    const names: string[] = [];
    for (const [name, bit] of Object.entries(Feature)) if (this.#features & bit) names.push(name.toLowerCase());
    return names;
  }
}

/** A sandbox that could not be set up: a missing kernel feature says how to get it, anything else which step failed. */
function spawnError(template: string, message: Message): ZerobootError {
  const step = stepName(message.a);
  const errno = message.b;
  const options = { step, errno };
  // clone3 with CLONE_NEWUSER: ENOSPC when user.max_user_namespaces is 0 (or used up), EPERM when a
  // security module or sysctl forbids them, EINVAL on a kernel without them.
  if (step === 'clone' && (errno === 1 || errno === 28 || errno === 22)) {
    return new ZerobootError(
      'KERNEL_FEATURE_MISSING',
      `The kernel refused to create the ${template} sandbox's namespaces (${message.text}). User namespaces must be enabled: ` +
        'check `sysctl user.max_user_namespaces` (must be > 0; fix: `sysctl -w user.max_user_namespaces=15000`), on Ubuntu ' +
        '`sysctl -w kernel.apparmor_restrict_unprivileged_userns=0`, and in a container allow clone/unshare in its seccomp profile. ' +
        '`zeroboot doctor` checks each of these.',
      options,
    );
  }
  if (step === 'mount-proc' || step === 'mount-writable' || step === 'landlock' || step === 'seccomp') {
    return new ZerobootError('KERNEL_FEATURE_MISSING', `The ${template} sandbox could not be set up at step '${step}' (${message.text}): the kernel or a security module refuses it. Run \`zeroboot doctor\` to see what is missing and how to fix it.`, options);
  }
  return new ZerobootError('SANDBOX_SETUP_FAILED', `A ${template} sandbox failed to set up at step '${step}': ${message.text}. Run \`zeroboot doctor\` to check the kernel features sandboxes need.`, options);
}

function closedError(): ZerobootError {
  return new ZerobootError('SANDBOX_CLOSED', 'This Zeroboot instance is closed: start a new one with Zeroboot.start().');
}
