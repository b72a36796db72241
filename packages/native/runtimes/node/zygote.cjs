'use strict';
// zeroboot's Node fork-server. Started by the SDK with a clean environment and the control socket as fd 3:
//
//   node --single-threaded --use-largepages=silent --disable-sigusr1 zygote.cjs ZYGOTE_ADDON CONFIG_JSON
//
// It loads the template's preload modules once, then hands control to libzeroboot (through
// zeroboot_zygote.node), which enters the sandbox root and forks fully isolated children. serve() returns
// 1 here after an orderly shutdown and 0 in each new sandbox, which makes its runtime state its own
// (RNG seeds, the event loop's kernel objects), warms up, parks in wait() until the SDK sends a run, and
// runs it as a CommonJS script with top-level await, like `node -e`.
//
// What makes forking Node safe (docs/architecture.md, "The Node template"):
// - V8 marks its heap MADV_DONTFORK: the server clears that before every fork (config madv_dofork).
// - --single-threaded: V8 posts no work to background threads. Node still starts a few (its platform's
//   workers and delayed-task scheduler); they idle, and do not exist in a sandbox. Nothing here may hand
//   them work, and the sandbox never waits for them: it ends through finish(), not Node's teardown.
// - The libuv loop shares the server's epoll instance until the binding gives it its own (ForkLoop in
//   addon.cc), in serve(), before any code of the sandbox runs: a wake-up of the loop before that aborts.
// - The server runs its event loop only for its warm-up, which leaves nothing in it; nothing may use the
//   threadpool, Math.random or crypto before the fork: their state would be every sandbox's.

const zb = require(process.argv[2]);
zb.recordFds();
const config = JSON.parse(process.argv[3]);
for (const [key, value] of config.settings) zb.configSet(key, String(value));
for (const name of config.preload) require(name);

const { createRequire } = require('node:module');
const { inspect } = require('node:util');
const { fstatSync, statSync, writeSync } = require('node:fs');
const { isatty } = require('node:tty');
const v8 = require('node:v8');
const vm = require('node:vm');

const WRAPPER_HEAD = '(async function (exports, require, module, __filename, __dirname) { ';
const PREWARM_CODE = 'console.log(1 + 1); process.exitCode;';
// V8 caches compiled scripts by their source: a pre-warm that compiled what the server had already
// compiled would find it in the cache and never parse, and a run's own code is always new. So each
// warm-up round, and every sandbox's pre-warm, compiles a source of its own.
const prewarmCode = (tag) => `${PREWARM_CODE} // ${tag}`;

function compile(code, filename) {
  const script = new vm.Script(`${WRAPPER_HEAD}${code}\n})`, { filename });
  return script.runInThisContext();
}

/** What a script gets besides its code (its module, require and file name): nothing of the request. */
function scriptScope(filename) {
  const module = { exports: {}, filename, id: '.', loaded: false, children: [], paths: [] };
  return { module, require: createRequire('/workspace/'), filename };
}

/** The script as a function and its arguments: (exports, require, module, __filename, __dirname). */
function prepare(code, scope) {
  const fn = compile(code, scope.filename);
  return [fn.bind(scope.module.exports), scope.module.exports, scope.require, scope.module, scope.filename, '.'];
}

zb.init();

// The run's path, compiled here once for every sandbox. V8 compiles a function when it first runs and tiers
// it up (Sparkplug, Maglev) once it has run often enough; Node loads its internals on first use too. What
// this process has not done, every sandbox does again, in its setup or on the run's clock (a sandbox
// started from an idle server spent ~1 ms of CPU compiling its run). So the server goes through a run's
// steps here, many times, before it forks anything: compile a script, run it from process.nextTick inside
// an immediate as a run does, console.log (fd 1 is /dev/null here, as the SDK starts it, so
// process.stdout becomes the synchronous stream every sandbox keeps; not stderr: fd 2 is a pipe to the
// SDK here and would get a libuv stream), and the 'exit' hook below. The sandboxes are forked from the
// event loop too (serve() is called from an immediate), so the code Node runs after the main script and
// around an immediate has run here, not in each sandbox.
//
// 30 rounds: enough for feedback vectors and Sparkplug code on the whole path. Fewer left each sandbox
// more to do (3 rounds: ~480 page faults per sandbox, its whole life; 30: ~450), and more did not help
// (50 and 100: ~510-530), probably functions tiering up, or deoptimizing, in every sandbox.
const TEMPLATE_WARMUP_ROUNDS = 30;
let warmupRoundsLeft = config.prewarm && fdIsDevNull(1) ? TEMPLATE_WARMUP_ROUNDS : 0;
let inSandbox = false;

setImmediate(warmUpThenServe);

function warmUpThenServe() {
  if (warmupRoundsLeft > 0) {
    warmupRoundsLeft--;
    process.nextTick(...prepare(prewarmCode(warmupRoundsLeft), scriptScope('[prewarm]')));
    process.emit('zeroboot:prewarm');
    exitStatus(0);
    setImmediate(warmUpThenServe);
    return;
  }
  emptyYoungGeneration();
  if (zb.serve() !== 0) process.reallyExit(0); // the server, after an orderly shutdown

  // ---- in a new sandbox, whose event loop is now its own (see ForkLoop in addon.cc) ----
  inSandbox = true;
  guarded(sandbox);
}

// The sandbox's own functions are function expressions in parentheses, which V8 compiles with this file
// (in the server) rather than lazily on first call (in every sandbox): ~20 page faults per sandbox.

/**
 * A failure of this file's own code in a sandbox must end it through the library: Node's own exit would
 * wait for threads that do not exist here. Before the request, RUN_FAILED; after it, on stderr.
 */
const guarded = (function guarded(step, ...args) {
  try {
    step(...args);
  } catch (error) {
    if (!requested) zb.fail(`node runtime: ${error?.stack ?? error}`);
    try {
      writeSync(2, `zeroboot node runtime: ${error?.stack ?? error}\n`);
    } catch {}
    zb.finish(70);
  }
});

/**
 * A scavenge, so that every sandbox starts with an empty young generation. Otherwise a sandbox inherits
 * however full the warm-up left it, and each one may scavenge during its pre-warm or its run, copying
 * the survivors onto pages it must first copy on write: with 37 warm-up rounds, 811 page faults per
 * sandbox instead of ~450. Minor only: a full GC (compacting the old generation) cost ~50 faults more
 * per sandbox. `gc` exists only in a context made while --expose-gc is set; the flag goes off again so
 * that the contexts a run makes have none.
 */
function emptyYoungGeneration() {
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc');
  v8.setFlagsFromString('--no-expose-gc');
  gc({ type: 'minor' });
}

function fdIsDevNull(fd) {
  try {
    const stat = fstatSync(fd);
    return stat.isCharacterDevice() && stat.rdev === statSync('/dev/null').rdev && !isatty(fd);
  } catch {
    return false;
  }
}

// A sandbox's run ends when Node would exit: after 'exit' has been emitted (event loop drained,
// process.exit(), or an uncaught error). finish() closes stdout and stderr and tells the SDK the status;
// Node's teardown would wait for threads a sandbox does not have. Installed here, so that the server has
// compiled it; it does nothing outside a sandbox.
let requested = false;
let fatal; // an uncaught error with no handler: Node would print it after 'exit', so we print it
process.on('uncaughtExceptionMonitor', (error) => {
  if (inSandbox && process.listenerCount('uncaughtException') === 0) fatal = { error };
});
const emit = process.emit;
process.emit = function (event, ...args) {
  const result = Reflect.apply(emit, this, [event, ...args]);
  if (event === 'exit' && inSandbox) {
    const status = exitStatus(args[0]);
    zb.finish(status);
  }
  return result;
};

/** The exit status Node would report, after printing an uncaught error as Node would. */
function exitStatus(code) {
  if (fatal) {
    try {
      writeSync(2, `${inspect(fatal.error)}\n\nNode.js ${process.version}\n`);
    } catch {}
  }
  const status = Number(process.exitCode ?? code ?? 0);
  return Number.isInteger(status) ? status : 1;
}

const sandbox = (function sandbox() {
  // Math.random: V8 seeds a context's generator from --random-seed when it first draws a number, and no
  // context has drawn one yet. crypto needs nothing: OpenSSL reseeds when getpid() changes (here: 1), and
  // Node's own random caches fill on first use.
  v8.setFlagsFromString(`--random-seed=${zb.seed()}`);

  // Standard output and error are made while fds 1 and 2 are /dev/null (stdout already is, by the server's
  // warm-up): Node then writes them synchronously (SyncWriteStream), so nothing is still queued when the
  // run ends, whatever fds 1 and 2 become. Pipes would get libuv streams whose writes can be pending at exit.
  void process.stdout;
  void process.stderr;

  // What `node -e` would show, set before parking: none of it depends on the request.
  // The binary is bound at config.execPath; its host path means nothing here.
  process.execPath = config.execPath;
  process.argv = [config.execPath];
  // Node keeps the pids it read at start-up: the server's, on the host. Here they are the namespace's.
  Object.defineProperty(process, 'pid', { value: 1, writable: false, enumerable: true, configurable: true });
  Object.defineProperty(process, 'ppid', { value: 0, writable: true, enumerable: true, configurable: true });

  // The run's path once more, in this sandbox: the code as a run gets it (from process.nextTick), then a
  // turn of the event loop, and the parking from an immediate: the pages they write (V8's heap, inline
  // caches, libuv's loop) are copied now, and the code they run is mapped, rather than on the run's clock.
  // Output goes to /dev/null.
  if (config.prewarm) process.nextTick(...prepare(prewarmCode('sandbox'), scriptScope('[prewarm]')));

  // The module cache holds this file and its binding, by their host paths: the script starts without them.
  for (const key of Object.keys(require.cache)) delete require.cache[key];
  setImmediate(guarded, park, scriptScope('[eval]'));
});

/** Parks until the request arrives, then runs it. */
const park = (function park(scope) {
  const request = zb.wait(); // [code, name, value, name, value, ...]
  requested = true;
  for (let i = 1; i < request.length; i += 2) process.env[request[i]] = request[i + 1];

  try {
    // Called from process.nextTick: after this function returns, and before anything else, as `node -e`
    // runs its script before the event loop: process.nextTick and promise callbacks keep their order, and
    // stack traces show no frame of this file. A rejection (a throw in the script, a failed top-level
    // await) is unhandled, so an uncaught error under Node's default --unhandled-rejections=throw.
    process.nextTick(...prepare(request[0], scope));
  } catch (error) {
    // A syntax error: the script never ran. Its stack is the compiler's; the message says where.
    fatal = { error: { [inspect.custom]: () => String(error.stack).split('\n    at ')[0] } };
    process.exitCode = 1;
  }
});
