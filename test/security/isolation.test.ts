// What a sandbox can learn about the host: its processes and its environment.
import { randomBytes } from 'node:crypto';

import { describe, expect, test } from 'vitest';

import { ATTACK_RUNTIME, py, run, runJson, sharedZeroboot } from '../helpers.js';

// The shell's pid 1 is its fork-server, and the script pid 2 (runtimes/shell/shell.c).
const RUNTIME_PIDS = ATTACK_RUNTIME === 'shell' ? [1, 2] : [1];

// In the SDK's environment before any fork-server starts: a secret the sandboxes must never see, in any form.
const SECRET_NAME = `ZB_HOST_SECRET_${randomBytes(8).toString('hex')}`;
const SECRET_VALUE = `hunter2-${randomBytes(8).toString('hex')}`;
process.env[SECRET_NAME] = SECRET_VALUE;

const zb = sharedZeroboot({ templates: { python: { pool: 2 } } });

describe('host processes', () => {
  test('/proc shows only the sandbox own processes, and pid 1 is the sandbox', async () => {
    const seen = await runJson(zb(), py(`
      import json, os, subprocess
      import time
      kids = [subprocess.Popen(["sleep", "5"]) for _ in range(3)]
      time.sleep(0.2)  # let them exec, so their command lines are theirs
      pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
      cmdlines = {p: open("/proc/%d/cmdline" % p, "rb").read().split(b"\\0")[0].decode() for p in pids}
      status1 = dict(l.split(":\\t", 1) for l in open("/proc/1/status").read().splitlines() if ":\\t" in l)
      out = {
          "pids": pids, "kids": sorted(k.pid for k in kids), "cmdlines": cmdlines,
          "ppid1": status1["PPid"].strip(), "sdk_visible": os.path.exists("/proc/${process.pid}"),
          "cgroup": open("/proc/self/cgroup").read().split("\\n")[0],
      }
      for k in kids:
          k.kill()
      print(json.dumps(out))
    `));
    expect(seen.pids).toEqual([...RUNTIME_PIDS, ...seen.kids].sort((a, b) => a - b));
    expect(seen.pids.every((p: number) => p < 100)).toBe(true);
    expect(seen.ppid1).toBe('0');
    expect(seen.cmdlines['1']).toMatch({ python: /python/, node: /python/, shell: /zeroboot-shell/ }[ATTACK_RUNTIME]); // node: exec'd into the attack
    expect(Object.values(seen.cmdlines).filter((c) => !/python|sleep|zeroboot-shell/.test(c as string))).toEqual([]);
    expect(seen.sdk_visible).toBe(false);
    expect(seen.cgroup).toMatch(/:\/$/);
  });

  test('signals cannot reach the host: kill() of host pids fails with ESRCH', async () => {
    const seen = await runJson(zb(), py(`
      import json, os, errno
      out = {}
      for pid in (${process.pid}, ${process.ppid}, ${ATTACK_RUNTIME === 'shell' ? 3 : 2}, 300, 4242):
          try:
              os.kill(pid, 0); out[str(pid)] = "exists"
          except OSError as e:
              out[str(pid)] = errno.errorcode[e.errno]
      print(json.dumps(out))
    `));
    for (const [pid, outcome] of Object.entries(seen)) expect([pid, outcome]).toEqual([pid, 'ESRCH']);
  });
});

describe('host environment', () => {
  test('no host variable is in os.environ, and /proc/1/environ holds none either', async () => {
    const seen = await runJson(zb(), py(`
      import json, os
      try:
          pid1 = open("/proc/1/environ", "rb").read().decode("utf-8", "replace")
      except PermissionError:
          pid1 = "(unreadable)"
      print(json.dumps({"environ": dict(os.environ), "pid1": pid1}))
    `));
    const everything = JSON.stringify(seen);
    expect(everything).not.toContain(SECRET_NAME);
    expect(everything).not.toContain(SECRET_VALUE);
    // bash adds PWD and SHLVL (and _) of its own
    const shellOwn = ATTACK_RUNTIME === 'shell' ? ['PWD', 'SHLVL', '_'] : [];
    expect(Object.keys(seen.environ).filter((k) => !shellOwn.includes(k)).sort()).toEqual(['HOME', 'LANG', 'LOGNAME', 'PATH', 'USER']);
  });

  test('the host environment is nowhere in the sandbox memory (a scan of every anonymous mapping)', async () => {
    // The searcher must not hold the secret itself: it looks for the variable's shape, which its own code
    // (a regular expression) does not match.
    const seen = await runJson(
      zb(),
      py(`
        import ctypes, json, re
        shape = re.compile(rb"ZB_HOST_SECRET_[0-9a-f]{16}|hunter2-[0-9a-f]{16}")
        found, scanned = [], 0
        for line in open("/proc/self/maps").read().splitlines():
            parts = line.split()
            span, perms, path = parts[0], parts[1], (parts[5] if len(parts) > 5 else "")
            if not perms.startswith("r") or path not in ("", "[heap]", "[stack]"):
                continue
            start, end = (int(x, 16) for x in span.split("-"))
            data = ctypes.string_at(start, end - start)
            scanned += len(data)
            found += [m.group().decode() for m in shape.finditer(data)]
            del data
        print(json.dumps({"found": sorted(set(found)), "scanned": scanned}))
      `),
      { timeoutMs: 20_000 },
    );
    expect(seen.found).toEqual([]);
    expect(seen.scanned).toBeGreaterThan(1 << 20);
  }, 30_000);
});

describe('the channel to the SDK', () => {
  // The sandbox holds its end of the request socket (the runtime reports its exit on it): the code can
  // write anything there. What it writes after its start must not turn the run into an SDK error.
  const FORGE = py(`
    import os, stat, struct
    def forge(kind, a, b, text):
        message = struct.pack("<HHIii", 1, kind, 0, a, b) + text + b"\\0"
        sent = 0
        for fd in range(3, 64):
            try:
                if stat.S_ISSOCK(os.fstat(fd).st_mode):
                    os.write(fd, message)
                    sent += 1
            except OSError:
                pass
        return sent
    RUN_FAILED = 7
  `);

  test('a forged RUN_FAILED (disk full) does not make a successful run reject', async () => {
    const r = await run(zb(), `${FORGE}\nprint("forged", forge(RUN_FAILED, 19, 28, b"forged by the sandbox"))\nprint("ok")`);
    expect(r).toMatchObject({ exitCode: 0, outcome: 'exited' });
    // From node and shell the attack runs exec'd, and the socket is close-on-exec: nothing to forge with
    // (runtimes.test.ts forges from Node's own fd 3). From python it must have reached the socket.
    expect(r.stdout).toMatch(ATTACK_RUNTIME === 'python' ? /^forged [1-9]\d*\nok\n$/ : /^forged \d+\nok\n$/);
  });

  test('a forged RUN_FAILED followed by exit 127 is still just exit 127', async () => {
    const r = await run(zb(), `${FORGE}\nforge(RUN_FAILED, 17, 5, b"forged by the sandbox")\nimport sys\nsys.exit(127)`);
    expect(r).toMatchObject({ exitCode: 127, outcome: 'exited' });
  });

  test('garbage on the channel does not disturb the run or the next one', async () => {
    const r = await run(zb(), `${FORGE}\nimport os\nfor fd in range(3, 64):\n    try: os.write(fd, os.urandom(4096))\n    except OSError: pass\nprint("ok")`);
    expect(r).toMatchObject({ exitCode: 0, stdout: 'ok\n' });
    expect((await run(zb(), 'print("next")')).stdout).toBe('next\n');
  });
});
