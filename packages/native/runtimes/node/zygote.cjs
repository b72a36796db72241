'use strict';
// zeroboot's Node fork-server. Started by the SDK with a clean environment and the control socket as fd 3:
//
//   node --single-threaded --disable-sigusr1 zygote.cjs ZYGOTE_ADDON CONFIG_JSON
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
// - The libuv loop shares the server's epoll instance until loopFork() gives it its own.
// - Nothing may use the loop, the threadpool, Math.random or crypto before the fork: their state would
//   be every sandbox's.

const zb = require(process.argv[2]);
zb.recordFds();
const config = JSON.parse(process.argv[3]);
for (const [key, value] of config.settings) zb.configSet(key, String(value));
for (const name of config.preload) require(name);

const { createRequire } = require('node:module');
const { inspect } = require('node:util');
const { writeSync } = require('node:fs');
const v8 = require('node:v8');
const vm = require('node:vm');

zb.init();
if (zb.serve() !== 0) process.reallyExit(0); // the server, after an orderly shutdown

// ---- in a new sandbox ----
// A failure of this file's own code from here on must end the sandbox through the library: Node's own exit
// would wait for threads that do not exist here. Before the request, RUN_FAILED; after it, on stderr.
let requested = false;
try {
  sandbox();
} catch (error) {
  if (!requested) zb.fail(`node runtime: ${error?.stack ?? error}`);
  try {
    writeSync(2, `zeroboot node runtime: ${error?.stack ?? error}\n`);
  } catch {}
  zb.finish(70);
}

function sandbox() {

  // Math.random: V8 seeds a context's generator from --random-seed when it first draws a number, and no
  // context has drawn one yet. crypto needs nothing: OpenSSL reseeds when getpid() changes (here: 1), and
  // Node's own random caches fill on first use.
  v8.setFlagsFromString(`--random-seed=${zb.seed()}`);

  // Standard output and error are made now, while fds 1 and 2 are /dev/null: Node then writes them
  // synchronously (SyncWriteStream), so nothing is still queued when the run ends, whatever fds 1 and 2
  // become. Pipes would get libuv streams whose writes can be pending at exit.
  void process.stdout;
  void process.stderr;

  const WRAPPER_HEAD = '(async function (exports, require, module, __filename, __dirname) { ';

  function compile(code, filename) {
    const script = new vm.Script(`${WRAPPER_HEAD}${code}\n})`, { filename });
    return script.runInThisContext();
  }

  /** The script as a function and its arguments: (exports, require, module, __filename, __dirname). */
  function prepare(code, filename) {
    const fn = compile(code, filename);
    const module = { exports: {}, filename, id: '.', loaded: false, children: [], paths: [] };
    return [fn.bind(module.exports), module.exports, createRequire('/workspace/'), module, filename, '.'];
  }

  if (config.prewarm) {
    // The run's path on a tiny program, so that the pages it touches are copied now rather than on the
    // run's clock (output goes to /dev/null).
    const [fn, ...args] = prepare('console.log(1 + 1); process.exitCode;', '[prewarm]');
    fn(...args);
  }

  const request = zb.wait();
  requested = true;
  zb.loopFork();
  for (const [name, value] of request.env) process.env[name] = value;
  // The module cache holds this file and its binding, by their host paths: the script starts without them.
  for (const key of Object.keys(require.cache)) delete require.cache[key];
  // The binary is bound at config.execPath; its host path means nothing here.
  process.execPath = config.execPath;
  process.argv = [config.execPath];
  // Node keeps the pids it read at start-up: the server's, on the host. Here they are the namespace's.
  Object.defineProperty(process, 'pid', { value: 1, writable: false, enumerable: true, configurable: true });
  Object.defineProperty(process, 'ppid', { value: 0, writable: true, enumerable: true, configurable: true });

  // The run ends when Node would exit: after 'exit' has been emitted (event loop drained, process.exit(),
  // or an uncaught error). finish() closes stdout and stderr and tells the SDK the status; Node's teardown
  // would wait for threads this process does not have.
  let fatal; // an uncaught error with no handler: Node would print it after 'exit', so we print it
  process.on('uncaughtExceptionMonitor', (error) => {
    if (process.listenerCount('uncaughtException') === 0) fatal = { error };
  });
  const emit = process.emit;
  process.emit = function (event, ...args) {
    const result = Reflect.apply(emit, this, [event, ...args]);
    if (event === 'exit') end(args[0]);
    return result;
  };

  function end(code) {
    if (fatal) {
      try {
        writeSync(2, `${inspect(fatal.error)}\n\nNode.js ${process.version}\n`);
      } catch {}
    }
    const status = Number(process.exitCode ?? code ?? 0);
    zb.finish(Number.isInteger(status) ? status : 1);
  }

  try {
    // Called from setImmediate, as `node -e` runs its script from a macrotask: process.nextTick and promise
    // callbacks keep their order, and stack traces show no frame of this file. A rejection (a throw in the
    // script, a failed top-level await) is unhandled, so an uncaught error under Node's default
    // --unhandled-rejections=throw.
    setImmediate(...prepare(request.code, '[eval]'));
  } catch (error) {
    // A syntax error: the script never ran. Its stack is the compiler's; the message says where.
    fatal = { error: { [inspect.custom]: () => String(error.stack).split('\n    at ')[0] } };
    process.exitCode = 1;
  }
}
