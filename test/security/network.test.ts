// Attacks over the network: the host's TCP and unix sockets, and one sandbox reaching another. Each
// attacker tries for real and reports what it saw; the listeners count what reached them.
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterEach, describe, expect, test } from 'vitest';

import { py, record, runJson, sharedZeroboot } from '../helpers.js';

const zb = sharedZeroboot({ templates: { python: { pool: 4 } } });

const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
});

/** A host listener that counts connections (and says hello, so a connection would be unmistakable). */
async function hostServer(listen: (server: Server, ready: () => void) => void): Promise<{ server: Server; connections: () => number }> {
  let count = 0;
  const server = createServer((socket) => {
    count++;
    socket.end('hello from the host\n');
  });
  servers.push(server);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    listen(server, resolve);
  });
  return { server, connections: () => count };
}

/** Python: tries each (family, address) and reports, per target, "connected: <data>" or the errno name. */
const CONNECT = py(`
  import errno, json, socket, sys
  def attempt(family, address, kind=socket.SOCK_STREAM):
      try:
          s = socket.socket(family, kind)
      except OSError as e:
          return "socket: " + errno.errorcode.get(e.errno, str(e.errno))
      s.settimeout(2)
      try:
          s.connect(address)
          return "connected: " + s.recv(100).decode(errors="replace")
      except OSError as e:
          return "connect: " + (errno.errorcode.get(e.errno, str(e.errno)) if e.errno else type(e).__name__)
      finally:
          s.close()
`);

describe('the host', () => {
  test('a TCP server on host loopback cannot be reached, by any address or family', async () => {
    const { server, connections } = await hostServer((s, ready) => s.listen(0, '127.0.0.1', ready));
    const { port } = server.address() as { port: number };
    const v6 = await hostServer((s, ready) => s.listen(0, '::1', ready)).catch(() => undefined);
    const v6port = v6 ? (v6.server.address() as { port: number }).port : port;
    const external = Object.values(networkInterfaces()).flat().find((i) => i && i.family === 'IPv4' && !i.internal)?.address;
    const seen = await runJson(zb(), CONNECT + py(`
      out = {
          "127.0.0.1": attempt(socket.AF_INET, ("127.0.0.1", ${port})),
          "localhost": attempt(socket.AF_INET, ("localhost", ${port})),
          "127.0.0.2": attempt(socket.AF_INET, ("127.0.0.2", ${port})),
          "::1": attempt(socket.AF_INET6, ("::1", ${v6port})),
          "::ffff:127.0.0.1": attempt(socket.AF_INET6, ("::ffff:127.0.0.1", ${port})),
          "udp": attempt(socket.AF_INET, ("127.0.0.1", ${port}), socket.SOCK_DGRAM),
          "raw": attempt(socket.AF_INET, ("127.0.0.1", 0), socket.SOCK_RAW),
          "packet": attempt(socket.AF_PACKET, ("lo", 0), socket.SOCK_RAW),
      }
      ${external ? `out["${external}"] = attempt(socket.AF_INET, ("${external}", ${port}))` : ''}
      print(json.dumps(out))
    `));
    for (const [target, outcome] of Object.entries(seen)) {
      expect([target, outcome]).toEqual([target, expect.not.stringMatching(/^connected/)]);
    }
    expect(seen['127.0.0.1']).toMatch(/EAFNOSUPPORT|ENETUNREACH|ECONNREFUSED|EPERM/);
    expect(connections()).toBe(0);
    expect(v6?.connections() ?? 0).toBe(0);
  });

  test('the sandbox has no network interface up and no route', async () => {
    const seen = await runJson(zb(), py(`
      import json, socket
      print(json.dumps({
          "interfaces": [l.split(":")[0].strip() for l in open("/proc/net/dev").read().splitlines()[2:]],
          "route": open("/proc/net/route").read().splitlines()[1:],
          "route6": [l for l in open("/proc/net/ipv6_route").read().splitlines() if not l.rstrip().endswith("lo")],
      }))
    `));
    expect(seen.route).toEqual([]);
    expect(seen.route6).toEqual([]);
    expect(seen.interfaces.filter((n: string) => n !== 'lo')).toEqual([]);
  });

  test('a host abstract unix socket cannot be reached', async () => {
    const name = `zb-host-${randomBytes(6).toString('hex')}`;
    const { connections } = await hostServer((s, ready) => s.listen(`\0${name}`, ready));
    const seen = await runJson(zb(), CONNECT + py(`
      print(json.dumps({"stream": attempt(socket.AF_UNIX, "\\0${name}"), "seqpacket": attempt(socket.AF_UNIX, "\\0${name}", socket.SOCK_SEQPACKET)}))
    `));
    expect(seen.stream).toMatch(/^connect: (ECONNREFUSED|EPERM|EACCES)$/);
    expect(seen.seqpacket).not.toMatch(/^connected/);
    expect(connections()).toBe(0);
  });

  test('a host unix socket on the filesystem cannot be reached', async () => {
    const path = join(tmpdir(), `zb-host-${randomBytes(6).toString('hex')}.sock`);
    try {
      const { connections } = await hostServer((s, ready) => s.listen(path, ready));
      const seen = await runJson(zb(), CONNECT + py(`
        print(json.dumps({"path": attempt(socket.AF_UNIX, "${path}"), "docker": attempt(socket.AF_UNIX, "/var/run/docker.sock"), "dbus": attempt(socket.AF_UNIX, "/run/dbus/system_bus_socket")}))
      `));
      for (const [target, outcome] of Object.entries(seen)) expect([target, outcome]).toEqual([target, expect.stringMatching(/^connect: (ENOENT|EACCES|EPERM|ECONNREFUSED)$/)]);
      expect(connections()).toBe(0);
    } finally {
      rmSync(path, { force: true });
    }
  });
});

describe('another sandbox', () => {
  /**
   * Sandbox A listens (printing "listening" once it does, or why it cannot) and waits for a connection;
   * sandbox B, started once A listens, connects. Neither may reach the other.
   */
  async function peers(listenCode: string, connectCode: string) {
    let listening!: (line: string) => void;
    const ready = new Promise<string>((resolve) => (listening = resolve));
    const listener = runJson(zb(), listenCode, { timeoutMs: 10_000, onStdout: (chunk) => listening(chunk) });
    const first = await ready;
    record('listener said', first);
    const connector = await runJson(zb(), connectCode, { timeoutMs: 10_000 });
    return { listener: await listener, connector };
  }

  const LISTEN = py(`
    import errno, json, socket, select
    def listen(family, address, kind=socket.SOCK_STREAM):
        try:
            s = socket.socket(family, kind)
            s.bind(address)
            s.listen(5)
        except OSError as e:
            print("cannot listen: " + errno.errorcode.get(e.errno, str(e.errno)), flush=True)
            return None
        print("listening", flush=True)
        return s
    def wait(s):
        if s is None:
            return "never listened"
        ready, _, _ = select.select([s], [], [], 2.5)
        if not ready:
            return "no connection"
        c, _ = s.accept()
        c.sendall(b"hello from the other sandbox")
        return "accepted"
  `);

  test('sandbox to sandbox over an abstract unix socket: the connection fails', async () => {
    const name = `zb-peer-${randomBytes(6).toString('hex')}`;
    const { listener, connector } = await peers(
      `${LISTEN}\ns = listen(socket.AF_UNIX, "\\0${name}")\nprint(json.dumps(wait(s)))`,
      `${CONNECT}\nprint(json.dumps(attempt(socket.AF_UNIX, "\\0${name}")))`,
    );
    expect(connector).toMatch(/^connect: (ECONNREFUSED|EPERM|EACCES)$/);
    expect(listener).not.toBe('accepted');
  });

  test('sandbox to sandbox over loopback TCP: the connection fails', async () => {
    const port = 20_000 + Math.floor(Math.random() * 20_000);
    const { listener, connector } = await peers(
      `${LISTEN}\ns = listen(socket.AF_INET, ("127.0.0.1", ${port}))\nprint(json.dumps(wait(s)))`,
      `${CONNECT}\nprint(json.dumps(attempt(socket.AF_INET, ("127.0.0.1", ${port}))))`,
    );
    expect(connector).not.toMatch(/^connected/);
    expect(listener).not.toBe('accepted');
  });

  test('sandbox to sandbox through SysV shared memory: the other sandbox cannot find the segment', async () => {
    const key = 0x7a620000 + Math.floor(Math.random() * 0xffff);
    const CTYPES = 'import ctypes, json, os, errno\nlibc = ctypes.CDLL(None, use_errno=True)\n';
    const { listener, connector } = await peers(
      `${CTYPES}import time\nid = libc.shmget(${key}, 4096, 0o1666)\nprint("listening" if id >= 0 else "cannot: %d" % ctypes.get_errno(), flush=True)\ntime.sleep(1.5)\nprint(json.dumps(id >= 0))`,
      `${CTYPES}id = libc.shmget(${key}, 0, 0)\nprint(json.dumps("found" if id >= 0 else errno.errorcode[ctypes.get_errno()]))`,
    );
    expect(listener).toBe(true);
    expect(connector).toBe('ENOENT');
  });

  test('kill(-1) in one sandbox does not touch another sandbox', async () => {
    let up!: () => void;
    const started = new Promise<void>((resolve) => (up = resolve));
    const victim = runJson(zb(), 'import time, json\nprint("up", flush=True)\ntime.sleep(1)\nprint(json.dumps("survived"))', { onStdout: () => up(), timeoutMs: 10_000 });
    await started;
    const attacker = await runJson(zb(), py(`
      import os, signal, json, errno
      signal.signal(signal.SIGTERM, signal.SIG_IGN)
      out = {}
      for sig in (signal.SIGKILL, signal.SIGSTOP):
          try:
              os.kill(-1, sig)
              out[sig.name] = "sent"
          except OSError as e:
              out[sig.name] = errno.errorcode[e.errno]
      print(json.dumps(out))
    `));
    record('attacker', attacker);
    expect(await victim).toBe('survived');
  });
});
