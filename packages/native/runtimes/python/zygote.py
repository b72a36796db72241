"""zeroboot's Python fork-server.

Started by the SDK with a clean environment and the control socket as fd 3:

    python3 -s zygote.py LIBZEROBOOT_PATH CONFIG_JSON

It imports the template's preload modules once, then hands control to libzeroboot, which enters the
sandbox root and forks fully isolated children on request. zb_zygote_serve() returns 1 here after an
orderly shutdown and 0 in each new sandbox, which warms itself up, parks in zb_sandbox_wait() until the SDK
sends a run, and runs it as `python3 -c` would: as __main__, argv ['-c'], '' first on sys.path.
"""

import ctypes
import gc
import json
import os
import sys


class ZbError(ctypes.Structure):
    _fields_ = [("step", ctypes.c_int), ("errnum", ctypes.c_int), ("message", ctypes.c_char * 256)]


FIELD_CODE = 1
FIELD_ENV = 2


def fail_setup(lib, err):
    sys.stderr.write("zeroboot fork-server: %s\n" % err.message.decode("utf-8", "replace"))
    sys.stderr.flush()
    os._exit(70 + min(err.step, 50))


def parse_request(buffer):
    """The fields the runtime handles (see packages/native/src/protocol.h); the C side did the rest."""
    code = b""
    env = {}
    offset = 16
    view = memoryview(buffer)
    while offset + 8 <= len(buffer):
        field_type = int.from_bytes(view[offset:offset + 4], "little")
        size = int.from_bytes(view[offset + 4:offset + 8], "little")
        data = bytes(view[offset + 8:offset + 8 + size])
        offset += 8 + size
        if field_type == FIELD_CODE:
            code = data
        elif field_type == FIELD_ENV:
            name, _, value = data.partition(b"=")
            env[name.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
    return code, env


def reseed():
    """Every sandbox forks from the same memory: reseed every RNG that lives in it."""
    import random

    random.seed()
    np_random = sys.modules.get("numpy.random")
    if np_random is not None:
        try:
            np_random.seed()
        except Exception:
            pass


def exit_status(code):
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    try:
        sys.stderr.write(str(code) + "\n")
    except Exception:
        pass
    return 1


def prepare_main():
    """The __main__ of `python3 -c`: the same for every run, so it is made before the sandbox parks."""
    import types

    main = types.ModuleType("__main__")
    main.__dict__["__builtins__"] = __builtins__
    sys.modules["__main__"] = main
    sys.argv = ["-c"]
    sys.path[0:0] = [""]
    return main


def execute(code_bytes, namespace):
    """Runs the code as `python3 -c` would; returns the exit status."""
    try:
        exec(compile(code_bytes, "<string>", "exec"), namespace)
    except SystemExit as e:
        return exit_status(e.code)
    except BaseException:
        kind, value, tb = sys.exc_info()
        # Drop this frame, so the traceback starts at the user's code as with `python3 -c`.
        tb = tb.tb_next if tb is not None else None
        sys.excepthook(kind, value.with_traceback(tb), tb)
        return 1
    return 0


def wind_down(status, final=True):
    """What interpreter shutdown would do that user code can observe, without the cost of finalizing every
    module: wait for non-daemon threads, run atexit handlers, flush. Not final (the pre-warm): flush only,
    since threading._shutdown() and the atexit handlers can each run once per process."""
    import atexit
    import threading

    if final:
        try:
            threading._shutdown()
        except BaseException:
            pass
    if final and atexit._ncallbacks():
        try:
            atexit._run_exitfuncs()
        except SystemExit as e:
            status = exit_status(e.code)
        except BaseException:
            pass
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass
    return status


def prewarm():
    """Runs a tiny program through the same functions a real run takes, so that the shared pages they touch
    are copied now and not on the run's clock: every first write to a page the sandbox shares with the
    fork-server is a copy-on-write fault (~2 µs here), and a run touches a few hundred of them."""
    request = bytearray(16)
    for field_type, data in ((FIELD_CODE, b"print(1 + 1)"), (FIELD_ENV, b"ZEROBOOT_PREWARM=1")):
        request += field_type.to_bytes(4, "little") + len(data).to_bytes(4, "little") + data
    code, env = parse_request(bytes(request))
    execute(code, {"__name__": "__prewarm__", "__builtins__": __builtins__})
    wind_down(0, final=False)


def main():
    lib_path, config_json = sys.argv[1], sys.argv[2]
    config = json.loads(config_json)
    lib = ctypes.PyDLL(lib_path)  # PyDLL: keeps the GIL across calls; the fork happens inside one
    err = ZbError()
    for key, value in config["settings"]:
        if lib.zb_config_set(key.encode(), str(value).encode(), ctypes.byref(err)) < 0:
            fail_setup(lib, err)
    for name in config.get("preload", []):
        __import__(name)
    import random  # noqa: F401  (reseeded in every sandbox)
    import threading  # noqa: F401
    import atexit  # noqa: F401
    import types  # noqa: F401
    import traceback  # noqa: F401  (sys.excepthook imports it lazily otherwise)

    # Streaming: flush at each newline, as a terminal would, so onStdout sees lines as they are printed.
    sys.stdout.reconfigure(line_buffering=True)
    sys.stderr.reconfigure(line_buffering=True)
    if lib.zb_zygote_init(ctypes.byref(err)) < 0:
        fail_setup(lib, err)
    # Objects allocated so far are shared with every sandbox: out of the collector's generations, a
    # collection in a sandbox never walks (and so never dirties) them. The prototype measured no difference
    # for a small zygote; it is free, and large preloads are where it would count.
    gc.collect()
    gc.freeze()

    rc = lib.zb_zygote_serve(ctypes.byref(err))
    if rc != 0:
        if rc < 0:
            fail_setup(lib, err)
        os._exit(0)

    # ---- in a new sandbox ----
    # Not PyOS_AfterFork_Child(): it repairs the state of threads that did not survive the fork, and the
    # fork-server has none, while its bookkeeping dirtied ~400 KiB of shared pages per sandbox. What it
    # would do that matters here, reseeding, is done explicitly.
    reseed()
    if config.get("prewarm", True):
        prewarm()
    main_module = prepare_main()

    request = ctypes.POINTER(ctypes.c_uint8)()
    size = ctypes.c_uint32()
    if lib.zb_sandbox_wait(ctypes.byref(request), ctypes.byref(size), ctypes.byref(err)) < 0:
        lib.zb_sandbox_fail(ctypes.byref(err))
    code, env = parse_request(ctypes.string_at(request, size.value))
    if env:
        os.environ.update(env)
    status = wind_down(execute(code, main_module.__dict__))
    lib.zb_sandbox_finish(status)


if __name__ == "__main__":
    main()
