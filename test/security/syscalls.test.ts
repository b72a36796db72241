// Privilege attacks: the system calls that open the kernel's attack surface, capabilities, seccomp itself,
// and state shared across forks of one template (random number generators).
import { arch } from 'node:os';

import { describe, expect, test } from 'vitest';

import { py, run, runJson, sharedZeroboot } from '../helpers.js';

const zb = sharedZeroboot({ templates: { python: { pool: 4 } } });

// x86_64 and aarch64 system call numbers (asm/unistd_64.h, asm-generic/unistd.h); -1: absent on that arch.
const SYSCALLS: Record<string, [number, number]> = {
  mount: [165, 40], umount2: [166, 39], pivot_root: [155, 41], chroot: [161, 51], unshare: [272, 97],
  setns: [308, 268], ptrace: [101, 117], process_vm_readv: [310, 270], bpf: [321, 280], keyctl: [250, 219],
  add_key: [248, 217], userfaultfd: [323, 282], perf_event_open: [298, 241], io_uring_setup: [425, 425],
  kexec_load: [246, 104], init_module: [175, 105], finit_module: [313, 273], delete_module: [176, 106],
  reboot: [169, 142], swapon: [167, 224], acct: [163, 89], sethostname: [170, 161], settimeofday: [164, 170],
  clock_settime: [227, 112], open_by_handle_at: [304, 265], fsopen: [430, 430], open_tree: [428, 428],
  pidfd_getfd: [438, 438], syslog: [103, 116], clone: [56, 220], clone3: [435, 435], socket: [41, 198],
  iopl: [172, -1], ioperm: [173, -1], socketpair: [53, 199], prctl: [157, 167], mbind: [237, 235],
  set_mempolicy: [238, 237],
};

describe('dangerous system calls', () => {
  test('each is refused: EPERM (EAFNOSUPPORT for non-unix sockets, ENOSYS for clone3)', async () => {
    const column = arch() === 'arm64' ? 1 : 0;
    const numbers = Object.fromEntries(Object.entries(SYSCALLS).map(([name, nr]) => [name, nr[column]]).filter(([, nr]) => nr !== -1));
    const seen = await runJson(zb(), py(`
      import ctypes, errno, json, os, signal, subprocess
      libc = ctypes.CDLL(None, use_errno=True)
      libc.syscall.restype = ctypes.c_long
      NR = json.loads('${JSON.stringify(numbers)}')
      L = ctypes.c_long
      def buf(n):
          return ctypes.create_string_buffer(n)
      victim = subprocess.Popen(["sleep", "5"])
      ns_fd = os.open("/proc/self/ns/user", os.O_RDONLY)
      null_fd = os.open("/dev/null", os.O_RDONLY)
      perf_attr = buf(128); perf_attr[4] = 128  # size field: PERF_ATTR_SIZE_VER*
      uring_params = buf(120)
      iov = buf(16)
      attempts = {
          "mount": ("mount", b"none", b"/tmp", b"tmpfs", L(0), None),
          "umount2 /proc": ("umount2", b"/proc", L(2)),
          "pivot_root": ("pivot_root", b"/tmp", b"/tmp"),
          "chroot": ("chroot", b"/tmp"),
          "unshare(NEWUSER|NEWNS)": ("unshare", L(0x10000000 | 0x00020000)),
          "unshare(NEWNET)": ("unshare", L(0x40000000)),
          "setns": ("setns", L(ns_fd), L(0)),
          "ptrace(ATTACH child)": ("ptrace", L(16), L(victim.pid), None, None),
          "ptrace(TRACEME)": ("ptrace", L(0), L(0), None, None),
          "process_vm_readv": ("process_vm_readv", L(victim.pid), iov, L(1), iov, L(1), L(0)),
          "bpf(MAP_CREATE)": ("bpf", L(0), buf(128), L(128)),
          "keyctl(GET_KEYRING_ID)": ("keyctl", L(0), L(-3), L(1)),
          "add_key": ("add_key", b"user", b"zb", b"v", L(1), L(-3)),
          "userfaultfd": ("userfaultfd", L(0)),
          "perf_event_open": ("perf_event_open", perf_attr, L(0), L(-1), L(-1), L(0)),
          "io_uring_setup": ("io_uring_setup", L(8), uring_params),
          "kexec_load": ("kexec_load", L(0), L(0), None, L(0)),
          "init_module": ("init_module", buf(64), L(64), b""),
          "finit_module": ("finit_module", L(null_fd), b"", L(0)),
          "delete_module": ("delete_module", b"ext4", L(0)),
          "reboot(CAD_OFF)": ("reboot", L(0xfee1dead), L(672274793), L(0)),
          "swapon": ("swapon", b"/tmp/swap", L(0)),
          "acct": ("acct", b"/tmp/acct"),
          "sethostname": ("sethostname", b"pwned", L(5)),
          "settimeofday": ("settimeofday", buf(16), None),
          "clock_settime": ("clock_settime", L(0), buf(16)),
          "open_by_handle_at": ("open_by_handle_at", L(null_fd), buf(64), L(0)),
          "fsopen": ("fsopen", b"tmpfs", L(0)),
          "open_tree": ("open_tree", L(-100), b"/", L(1)),
          "pidfd_getfd": ("pidfd_getfd", L(0), L(0), L(0)),
          "syslog(READ_ALL)": ("syslog", L(3), buf(64), L(64)),
          "iopl": ("iopl", L(3)),
          "ioperm": ("ioperm", L(0x80), L(1), L(1)),
          "clone(NEWUSER)": ("clone", L(0x10000000 | signal.SIGCHLD), None, None, None, None),
          "clone(NEWPID)": ("clone", L(0x20000000 | signal.SIGCHLD), None, None, None, None),
          "clone3": ("clone3", buf(88), L(88)),
          "socket(AF_INET)": ("socket", L(2), L(1), L(0)),
          "socket(AF_INET6)": ("socket", L(10), L(2), L(0)),
          "socket(AF_NETLINK)": ("socket", L(16), L(3), L(0)),
          "socket(AF_PACKET)": ("socket", L(17), L(3), L(0)),
          "socket(AF_VSOCK)": ("socket", L(40), L(1), L(0)),
          # socketpair() reaches a family's create() too (TIPC implements it): same rule as socket().
          "socketpair(AF_INET)": ("socketpair", L(2), L(1), L(0), buf(8)),
          "socketpair(AF_TIPC)": ("socketpair", L(30), L(5), L(0), buf(8)),
          # Clearing the parent-death signal would let pid 1 outlive a dead fork-server.
          "prctl(PR_SET_PDEATHSIG, 0)": ("prctl", L(1), L(0), L(0), L(0), L(0)),
          "mbind": ("mbind", L(0), L(4096), L(0), None, L(0), L(0)),
          "set_mempolicy": ("set_mempolicy", L(0), None, L(0)),
      }
      out = {}
      for label, (name, *args) in attempts.items():
          if name not in NR:
              continue
          ctypes.set_errno(0)
          rc = libc.syscall(L(NR[name]), *args)
          if rc == 0 and name == "clone":
              os._exit(0)  # the attack worked and this is the child: leave
          out[label] = "returned %d" % rc if rc >= 0 else errno.errorcode.get(ctypes.get_errno(), str(ctypes.get_errno()))
      # TIOCSTI: push characters into the input of a terminal someone else reads.
      ctypes.set_errno(0)
      rc = libc.ioctl(ctypes.c_int(0), ctypes.c_ulong(0x5412), ctypes.c_char_p(b"x"))
      out["ioctl(TIOCSTI)"] = "returned %d" % rc if rc >= 0 else errno.errorcode.get(ctypes.get_errno(), str(ctypes.get_errno()))
      victim.kill()
      print(json.dumps(out))
    `));
    const expected: Record<string, string> = {};
    for (const label of Object.keys(seen)) {
      expected[label] = label.startsWith('socket(') || label.startsWith('socketpair(') ? 'EAFNOSUPPORT' : label === 'clone3' ? 'ENOSYS' : 'EPERM';
    }
    expect(seen).toEqual(expected);
    expect(Object.keys(seen).length).toBeGreaterThanOrEqual(35);
  });

  test('a 32-bit system call (int 0x80) kills the process: outcome seccomp-violation', async () => {
    if (arch() !== 'x64') return;
    const r = await run(zb(), py(`
      import ctypes, mmap
      # mov eax, 20 (getpid on i386); int 0x80; ret
      code = b"\\xb8\\x14\\x00\\x00\\x00\\xcd\\x80\\xc3"
      page = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
      page.write(code)
      f = ctypes.CFUNCTYPE(ctypes.c_int)(ctypes.addressof(ctypes.c_char.from_buffer(page)))
      print("calling", flush=True)
      print("survived with", f())
    `));
    expect(r).toMatchObject({ stdout: 'calling\n', exitCode: null, signal: 'SIGSYS', outcome: 'seccomp-violation' });
  });
});

describe('privileges', () => {
  test('no capabilities at all, no_new_privs, seccomp filter on; the same in a child process', async () => {
    const seen = await runJson(zb(), py(`
      import json, subprocess
      def fields(text):
          keep = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp")
          return {k: v.strip() for k, v in (l.split(":", 1) for l in text.splitlines()) if k in keep}
      child = subprocess.run(["cat", "/proc/self/status"], capture_output=True, text=True).stdout
      print(json.dumps({"self": fields(open("/proc/self/status").read()), "child": fields(child)}))
    `));
    const expected = {
      CapInh: '0000000000000000', CapPrm: '0000000000000000', CapEff: '0000000000000000',
      CapBnd: '0000000000000000', CapAmb: '0000000000000000', NoNewPrivs: '1', Seccomp: '2',
    };
    expect(seen).toEqual({ self: expected, child: expected });
  });

  test('uid 0 is out of reach: setuid(0) and friends fail', async () => {
    const seen = await runJson(zb(), py(`
      import json, os, errno
      out = {}
      for name, fn in (("setuid", lambda: os.setuid(0)), ("seteuid", lambda: os.seteuid(0)), ("setgid", lambda: os.setgid(0)),
                       ("setgroups", lambda: os.setgroups([0])), ("chown", lambda: os.chown("/workspace", 0, 0))):
          try:
              fn(); out[name] = "succeeded"
          except OSError as e:
              out[name] = errno.errorcode[e.errno]
      out["ids"] = [os.getuid(), os.geteuid(), os.getgid(), os.getegid()]
      print(json.dumps(out))
    `));
    const refused = expect.stringMatching(/^(EPERM|EINVAL)$/); // EINVAL: uid/gid 0 is not even mapped in the namespace
    expect(seen).toEqual({ setuid: refused, seteuid: refused, setgid: refused, setgroups: refused, chown: refused, ids: [1000, 1000, 1000, 1000] });
  });
});

describe('state shared by forks of one template', () => {
  test('random numbers differ across 20 runs: random, uuid4, os.urandom, secrets', async () => {
    const code = py(`
      import json, os, random, secrets, uuid, tempfile
      print(json.dumps([random.random(), random.getrandbits(64), str(uuid.uuid4()), os.urandom(16).hex(), secrets.token_hex(16), tempfile.mktemp()]))
    `);
    const outputs: string[][] = [];
    for (let i = 0; i < 10; i++) outputs.push(await runJson(zb(), code));
    outputs.push(...(await Promise.all(Array.from({ length: 10 }, () => runJson<string[]>(zb(), code)))));
    for (let column = 0; column < outputs[0]!.length; column++) {
      const values = outputs.map((o) => String(o[column]));
      expect([column, new Set(values).size]).toEqual([column, outputs.length]);
    }
  });
});
