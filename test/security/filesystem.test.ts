// Attacks on the host's files from inside a sandbox: reading secrets, writing system directories, setuid
// binaries, filling the disk. Each asserts what the attacker sees.
import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, test } from 'vitest';

import { py, run, runJson, sharedZeroboot, withZeroboot } from '../helpers.js';

const zb = sharedZeroboot({ templates: { python: { pool: 4 } } });

describe('host files', () => {
  const secret = `zb-secret-${randomBytes(8).toString('hex')}`;
  const planted = [join(tmpdir(), `${secret}.txt`), `/root/.${secret}`, `/work/.${secret}`, `/etc/${secret}.conf`];

  beforeAll(() => {
    for (const path of planted) {
      try {
        writeFileSync(path, `${secret}\n`, { mode: 0o644 });
      } catch {
        // a directory the host does not have: one target fewer
      }
    }
  });
  afterAll(() => {
    for (const path of planted) {
      try {
        rmSync(path, { force: true });
      } catch {
        // rootless, /root is not ours to look into: nothing was planted there
      }
    }
  });

  test('secrets the host has at well-known paths cannot be read', async () => {
    const seen = await runJson(zb(), py(`
      import json, os, errno
      out = {}
      for p in ${JSON.stringify([...planted, '/etc/shadow', '/etc/gshadow', '/etc/sudoers', '/root/.ssh/id_rsa', '/root/.bash_history', '/work/main/package.json', '/run/zeroboot', '/proc/1/environ'])}:
          try:
              data = open(p, "rb").read(4096) if not os.path.isdir(p) else repr(os.listdir(p)).encode()
              out[p] = "read: " + data[:200].decode("utf-8", "replace")
          except OSError as e:
              out[p] = errno.errorcode.get(e.errno, str(e.errno))
      print(json.dumps(out))
    `));
    for (const [path, outcome] of Object.entries(seen)) {
      if (path === '/run/zeroboot') continue; // the sandbox's own tmpfs: checked below for the host's content
      // An exec'd pid 1 (node and shell exec into the attack) is dumpable again: it may read its own
      // environment, the sandbox's clean one (the secret check below covers it).
      if (path === '/proc/1/environ' && /^read: PATH=/.test(outcome as string)) continue;
      expect([path, outcome]).toEqual([path, expect.stringMatching(/^(ENOENT|EACCES|EPERM)$/)]);
    }
    expect(JSON.stringify(Object.values(seen))).not.toContain(secret);
    expect(seen['/run/zeroboot']).not.toMatch(/\d+-[A-Za-z0-9]{6}/); // no host state directory of any SDK
  });

  test('a search of the whole file tree finds nothing of the host: not the secret, not the repo', async () => {
    const seen = await runJson(
      zb(),
      py(`
        import json, os
        names, hits, files = [], [], 0
        needle = bytes.fromhex("${Buffer.from(secret).toString('hex')}")
        for root, dirs, fs in os.walk("/"):
            if root == "/" and "proc" in dirs:
                dirs.remove("proc")
            for n in dirs + fs:
                # The secret's name anywhere, and files only the zeroboot repository has.
                if needle.decode() in n or n in ("pnpm-workspace.yaml", "zygote.c", "zeroboot.h"):
                    names.append(os.path.join(root, n))
            # Small files outside the runtime's install: read them all, looking for the secret's bytes.
            # /dev holds the sandbox's own device nodes and fds, no host file: /dev/stderr is its own stderr
            # pipe, on which a read would wait (rootless, the sandbox may reopen its fds through /proc/self/fd).
            if root.startswith(("/usr", "/root/.pyenv", "/dev")):
                continue
            for n in fs:
                p = os.path.join(root, n)
                try:
                    files += 1
                    if needle in open(p, "rb").read(1 << 20):
                        hits.append(p)
                except OSError:
                    pass
        print(json.dumps({"names": names, "hits": hits, "files": files, "top": sorted(os.listdir("/"))}))
      `),
      { timeoutMs: 20_000 },
    );
    expect(seen.names).toEqual([]);
    expect(seen.hits).toEqual([]);
    expect(seen.top).not.toContain('work');
    expect(seen.top).not.toContain('sys');
  }, 30_000);

  test('writes to system directories fail with EROFS or EACCES', async () => {
    const seen = await runJson(zb(), py(`
      import json, os, errno
      out = {}
      def attempt(name, fn):
          try:
              fn()
              out[name] = "succeeded"
          except OSError as e:
              out[name] = errno.errorcode.get(e.errno, str(e.errno))
      for d in ["/usr", "/usr/bin", "/usr/lib", "/etc", "/bin", "/sbin", "/lib", "/", "/root", "/var", "/home", "/dev", "/proc"]:
          attempt("create " + d, lambda d=d: open(os.path.join(d, "zb-pwned"), "w").write("x"))
      for f in ["/etc/passwd", "/etc/hosts", "/etc/ld.so.cache", "/usr/bin/python3", "/bin/sh", "/proc/sys/kernel/hostname", "/proc/sys/vm/drop_caches"]:
          attempt("append " + f, lambda f=f: open(f, "a").write("x"))
      attempt("chmod /usr/bin/env", lambda: os.chmod("/usr/bin/env", 0o4777))
      attempt("unlink /etc/passwd", lambda: os.unlink("/etc/passwd"))
      attempt("rename /etc/hosts", lambda: os.rename("/etc/hosts", "/etc/hosts2"))
      attempt("mkdir /usr/zb", lambda: os.mkdir("/usr/zb"))
      attempt("symlink in /etc", lambda: os.symlink("/workspace", "/etc/zb"))
      print(json.dumps(out))
    `));
    for (const [what, outcome] of Object.entries(seen)) {
      expect([what, outcome]).toEqual([what, expect.stringMatching(/^(EROFS|EACCES|EPERM|ENOENT)$/)]);
    }
  });

  test('the sandbox can write its own /workspace, /tmp and /dev/shm (the only writable places)', async () => {
    const r = await run(zb(), 'for d in ["/workspace", "/tmp", "/dev/shm"]: open(d + "/ok", "w").write("x")\nprint("ok")');
    expect(r.stdout).toBe('ok\n');
  });

  test('every mount is nosuid, and setuid-root binaries do not make anyone root', async () => {
    const seen = await runJson(zb(), py(`
      import json, subprocess, os
      mounts = [l.split() for l in open("/proc/self/mounts")]
      suid_ok = [m[1] for m in mounts if "nosuid" not in m[3].split(",")]
      tries = {}
      for argv in (["su", "-c", "id -u", "root"], ["su", "root"], ["passwd", "-d", "root"], ["mount", "-t", "tmpfs", "none", "/tmp"]):
          try:
              p = subprocess.run(argv, input=b"\\n", capture_output=True, timeout=5)
              tries[" ".join(argv)] = [p.returncode, p.stdout.decode(errors="replace")[-200:], p.stderr.decode(errors="replace")[-200:]]
          except FileNotFoundError:
              tries[" ".join(argv)] = "absent"
      setuid = [p for p in ("/usr/bin/su", "/usr/bin/passwd", "/usr/bin/mount", "/usr/bin/sudo") if os.path.exists(p) and os.stat(p).st_mode & 0o4000]
      print(json.dumps({"without_nosuid": suid_ok, "tries": tries, "setuid_binaries": setuid, "euid": os.geteuid()}))
    `));
    expect(seen.without_nosuid).toEqual([]);
    for (const [argv, outcome] of Object.entries(seen.tries)) {
      if (outcome === 'absent') continue;
      const [code, stdout] = outcome as [number, string, string];
      expect([argv, code === 0 && /^0\s*$/m.test(stdout)]).toEqual([argv, false]);
      expect([argv, code]).not.toEqual([argv, 0]);
    }
    expect(seen.euid).toBe(1000);
  });
});

describe('disk', () => {
  test('filling the disk stops at limits.diskMb with ENOSPC inside, and the host disk is untouched', async () => {
    await withZeroboot({ limits: { diskMb: 16 }, templates: { python: { pool: 1 } } }, async (zb) => {
      const hostFreeBefore = statfsSync('/').bavail * statfsSync('/').bsize;
      const seen = await runJson(zb, py(`
        import json, os, errno
        out = {}
        for d in ["/workspace", "/tmp", "/dev/shm"]:
            written, err = 0, None
            try:
                for i in range(256):
                    with open("%s/fill-%d" % (d, i), "wb") as f:
                        f.write(b"\\0" * (1 << 20))
                    written += 1 << 20
            except OSError as e:
                err = errno.errorcode.get(e.errno, str(e.errno))
            out[d] = [written, err]
        try:
            open("/workspace/one-more", "wb").write(b"x" * (1 << 20))
            out["after"] = "wrote"
        except OSError as e:
            out["after"] = errno.errorcode.get(e.errno, str(e.errno))
        print(json.dumps(out))
      `), { timeoutMs: 15_000 });
      const hostFreeAfter = statfsSync('/').bavail * statfsSync('/').bsize;
      const total = seen['/workspace'][0] + seen['/tmp'][0] + seen['/dev/shm'][0];
      expect(seen['/workspace'][1]).toMatch(/^(ENOSPC|EDQUOT|EFBIG)$/);
      expect(seen['/tmp'][1]).toMatch(/^(ENOSPC|EDQUOT|EFBIG)$/);
      expect(seen['/dev/shm'][1]).toMatch(/^(ENOSPC|EDQUOT|EFBIG)$/);
      expect(seen.after).toMatch(/^(ENOSPC|EDQUOT|EFBIG)$/);
      expect(total).toBeLessThanOrEqual(16 << 20);
      // 768 MB were attempted; other work on the machine may write a little meanwhile.
      expect(hostFreeBefore - hostFreeAfter).toBeLessThan(64 << 20);
    });
  });

  test('one huge file stops at limits.diskMb (EFBIG or ENOSPC), the run goes on', async () => {
    await withZeroboot({ limits: { diskMb: 8 }, templates: { python: { pool: 1 } } }, async (zb) => {
      const r = await run(zb, py(`
        import os, errno
        f = open("/tmp/huge", "wb")
        try:
            while True:
                f.write(b"\\0" * (1 << 20)); f.flush()
        except OSError as e:
            print(errno.errorcode[e.errno], os.path.getsize("/tmp/huge") <= 8 << 20)
      `), { timeoutMs: 10_000 });
      expect(r.stdout).toMatch(/^(EFBIG|ENOSPC) True\n$/);
    });
  });

  test('a directory made on the host tmp is not the sandbox /tmp', async () => {
    const dir = join(tmpdir(), `zb-host-dir-${randomBytes(4).toString('hex')}`);
    mkdirSync(dir);
    try {
      const r = await run(zb(), `import os; print(os.path.exists(${JSON.stringify(dir)}), os.listdir("/tmp"))`);
      expect(r.stdout).toBe('False []\n');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
