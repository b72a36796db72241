// Resource attacks and escapes in time: fork and memory bombs, output floods, daemons that try to outlive
// their run, and an SDK killed outright. Each is bounded by limits and timeouts, and checked from the host.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

import { describe, expect, test } from 'vitest';

import {
  ATTACK_RUNTIME,
  PRINT_HOST_UID,
  alive,
  eventually,
  hostProcesses,
  hostUidFrom,
  killAll,
  marker,
  py,
  record,
  run,
  sandboxUidProcesses,
  withZeroboot,
} from '../helpers.js';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));

/** Proportional set size (shared pages split among their sharers, so forked children are not counted twice). */
function pssKb(pid: number): number {
  try {
    return Number(/^Pss:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'))?.[1] ?? 0);
  } catch {
    return 0;
  }
}

/** Samples the host's view of one sandbox uid while a run goes: the most processes and memory it had at once. */
function sampler() {
  let hostUid = 0;
  let processes = 0;
  let memKb = 0;
  const timer = setInterval(() => {
    if (!hostUid) return;
    const mine = sandboxUidProcesses((p) => p.uid === hostUid);
    processes = Math.max(processes, mine.length);
    memKb = Math.max(memKb, mine.reduce((sum, p) => sum + pssKb(p.pid), 0));
  }, 40);
  return {
    onStdout(chunk: string) {
      if (!hostUid && chunk.includes('host-uid')) hostUid = hostUidFrom(chunk);
    },
    stop() {
      clearInterval(timer);
      record('sampled', { hostUid, processes, memKb });
      return { hostUid, processes, memKb };
    },
  };
}

describe('bombs', () => {
  test('a fork bomb is held to maxProcesses, ends at the timeout, and leaves nothing behind', async () => {
    // pool 0: no other sandbox is forked meanwhile, so the bomb's host uid is its alone.
    await withZeroboot({ limits: { maxProcesses: 16 }, templates: { python: { pool: 0 } } }, async (zb) => {
      const s = sampler();
      const started = performance.now();
      const r = await run(zb, py(`
        ${PRINT_HOST_UID}
        import os
        while True:
            try:
                os.fork()
            except OSError:
                pass
      `), { timeoutMs: 2000, onStdout: (c) => s.onStdout(c) });
      const elapsed = performance.now() - started;
      const seen = s.stop();
      expect(r).toMatchObject({ timedOut: true, signal: 'SIGKILL', outcome: 'timed-out' });
      expect(elapsed).toBeLessThan(5000);
      expect(seen.processes).toBeGreaterThan(1);
      expect(seen.processes).toBeLessThanOrEqual(16);
      expect(await eventually(() => sandboxUidProcesses((p) => p.uid === seen.hostUid).length === 0, 3000)).toBe(true);
      // The host can still start processes and run code.
      expect((await run(zb, 'print("still fine")')).stdout).toBe('still fine\n');
    });
  });

  test('a memory bomb is killed at memoryMb: outcome out-of-memory (with rlimits: its allocations fail)', async (context) => {
    await withZeroboot({ limits: { memoryMb: 64 }, templates: { python: { pool: 0 } } }, async (zb) => {
      const rlimit = zb.enforcement.memory === 'rlimit';
      // RLIMIT_AS counts from what the sandbox had mapped when it was forked, and a Node sandbox has 1.1 GB
      // of V8's reservations: a program it execs has that much more room (docs/security.md, "Rootless mode").
      if (rlimit && ATTACK_RUNTIME === 'node') context.skip('RLIMIT_AS leaves a program exec\'d from a Node sandbox 1.1 GB more: not a 64 MB bound');
      const s = sampler();
      const r = await run(zb, py(`
        ${PRINT_HOST_UID}
        blocks = []
        while True:
            blocks.append(bytearray(4 << 20))  # touched: bytearray zero-fills
      `), { timeoutMs: 10_000, onStdout: (c) => s.onStdout(c) });
      const seen = s.stop();
      // A memory cgroup kills the sandbox; RLIMIT_AS (no cgroup: rootless on cgroup v1) fails the allocation.
      if (rlimit) expect(r).toMatchObject({ exitCode: 1, outcome: 'exited', timedOut: false, stderr: expect.stringContaining('MemoryError') });
      else expect(r).toMatchObject({ exitCode: null, signal: 'SIGKILL', outcome: 'out-of-memory', timedOut: false });
      expect(seen.memKb).toBeLessThan(96 * 1024);
    });
  });

  test('a memory bomb spread over child processes is held to memoryMb as a whole', async () => {
    await withZeroboot({ limits: { memoryMb: 64 }, templates: { python: { pool: 0 } } }, async (zb) => {
      const s = sampler();
      const r = await run(zb, py(`
        ${PRINT_HOST_UID}
        import os, time, json
        kids = []
        for _ in range(6):
            pid = os.fork()
            if pid == 0:
                x = bytearray(40 << 20)
                time.sleep(2)
                os._exit(0)
            kids.append(pid)
        statuses = [os.waitpid(k, 0)[1] for k in kids]
        print(json.dumps({"killed": sum(1 for st in statuses if os.WIFSIGNALED(st) and os.WTERMSIG(st) == 9)}))
      `), { timeoutMs: 10_000, onStdout: (c) => s.onStdout(c) });
      const seen = s.stop();
      if (zb.enforcement.memory === 'rlimit') {
        // RLIMIT_AS is per process: six children of 40 MB each fit under 64 MB, and together use 240 MB. This
        // is the weaker bound rootless mode has without a delegated cgroup (docs/security.md, "Rootless mode").
        expect(r.exitCode).toBe(0);
        expect(JSON.parse(r.stdout.trim().split('\n').at(-1)!).killed).toBe(0);
        return;
      }
      // Either the children are OOM-killed (and the parent reports it), or the whole sandbox is.
      if (r.exitCode === 0) expect(JSON.parse(r.stdout.trim().split('\n').at(-1)!).killed).toBeGreaterThanOrEqual(4);
      else expect(r).toMatchObject({ signal: 'SIGKILL', outcome: 'out-of-memory' });
      expect(seen.memKb).toBeLessThan(96 * 1024);
    });
  });

  test('an output flood is cut at maxOutputBytes, ends at the timeout, and the SDK memory stays bounded', async () => {
    await withZeroboot({ templates: { python: { pool: 1 } } }, async (zb) => {
      const rssBefore = process.memoryUsage().rss;
      let streamed = 0;
      const started = performance.now();
      const r = await zb.run(
        'python',
        py(`
          import os, threading
          chunk = b"x" * 65536
          def flood(fd):
              while True:
                  os.write(fd, chunk)
          threading.Thread(target=flood, args=(2,), daemon=True).start()
          flood(1)
        `),
        { timeoutMs: 1500, onStdout: (c) => (streamed += c.length) },
      );
      const elapsed = performance.now() - started;
      const rssGrowth = process.memoryUsage().rss - rssBefore;
      record('flood', { ...r, stdout: `${r.stdout.length} chars`, stderr: `${r.stderr.length} chars`, elapsed, rssGrowth, streamed });
      expect(r).toMatchObject({ truncated: true, timedOut: true, outcome: 'timed-out' });
      expect(r.stdout.length).toBe(1 << 20);
      expect(r.stderr.length).toBe(1 << 20);
      expect(streamed).toBe(1 << 20);
      expect(elapsed).toBeLessThan(4000);
      expect(rssGrowth).toBeLessThan(200 << 20);
    });
  });
});

describe('processes that try to outlive their run', () => {
  test('a double-forked, setsid daemon dies with the run', async () => {
    await withZeroboot({ templates: { python: { pool: 0 } } }, async (zb) => {
      const daemon = marker();
      const background = marker();
      const r = await run(zb, py(`
        ${PRINT_HOST_UID}
        import os, signal, subprocess
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                for s in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
                    signal.signal(s, signal.SIG_IGN)
                ${daemon.code.replace('import subprocess; ', '')}
                os._exit(0)
            os._exit(0)
        os.wait()
        subprocess.Popen(["sleep", "${background.cmdline.split(' ')[1]}"], start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        print("parent done")
      `));
      expect(r.exitCode).toBe(0);
      expect(r.stdout).toContain('parent done');
      const hostUid = hostUidFrom(r.stdout);
      expect(await eventually(() => daemon.gone() && background.gone(), 2000)).toBe(true);
      expect(await eventually(() => sandboxUidProcesses((p) => p.uid === hostUid).length === 0, 2000)).toBe(true);
    });
  });

  test('a daemon that holds stdout open does not keep the run alive past its end', async () => {
    await withZeroboot({ templates: { python: { pool: 0 } } }, async (zb) => {
      const daemon = marker();
      const started = performance.now();
      const r = await run(zb, py(`
        import os, subprocess, sys
        ${daemon.code.replace('import subprocess; ', '')}
        print("main exits", flush=True)
      `), { timeoutMs: 8000 });
      // The daemon inherited stdout; the run still ends when its main process does.
      expect(r).toMatchObject({ exitCode: 0, stdout: 'main exits\n', timedOut: false });
      expect(performance.now() - started).toBeLessThan(3000);
      expect(await eventually(() => daemon.gone(), 2000)).toBe(true);
    });
  });

  test('the SDK killed with SIGKILL leaves no fork-server and no sandbox behind', async () => {
    const m = marker();
    const code = `${m.code}\n${PRINT_HOST_UID}\nimport time\ntime.sleep(25)`;
    const script = `
      import { Zeroboot } from '@zeroboot/core';
      const zb = await Zeroboot.start({ templates: { python: { pool: 2 } } });
      const say = (o) => process.stdout.write(JSON.stringify(o) + '\\n');
      say({ serverPid: zb.forkServer('python').serverPid });
      zb.run('python', ${JSON.stringify(code)}, { onStdout: (chunk) => say({ chunk }) });
    `;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d) => (stderr += d));
    const stateDir = `/run/zeroboot/${child.pid}-`;
    const ours = () => hostProcesses().filter((p) => p.cmdline.includes(stateDir) && !p.state.startsWith('Z'));
    try {
      let serverPid = 0;
      let hostUid = 0;
      const lines = createInterface({ input: child.stdout! });
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`the child SDK did not start a run: ${stderr}`)), 15_000);
        lines.on('line', (line) => {
          const message = JSON.parse(line) as { serverPid?: number; chunk?: string };
          if (message.serverPid) serverPid = message.serverPid;
          if (message.chunk?.includes('host-uid')) {
            hostUid = hostUidFrom(message.chunk);
            clearTimeout(timer);
            resolve();
          }
        });
      });
      const before = { serverPid, hostUid, processes: ours().map((p) => `${p.pid} uid=${p.uid} ${p.cmdline.slice(0, 60)}`), marker: m.find() };
      record('before the kill', before);
      expect(alive(serverPid)).toBe(true);
      expect(await eventually(() => m.find().length === 1, 3000)).toBe(true);
      child.kill('SIGKILL');
      const clean = await eventually(() => !alive(serverPid) && m.gone() && ours().length === 0 && sandboxUidProcesses((p) => p.uid === hostUid).length === 0, 5000);
      record('5 s after the kill', {
        serverAlive: alive(serverPid),
        marker: m.find(),
        leftovers: ours().map((p) => `${p.pid} ppid=${p.ppid} uid=${p.uid} ${p.state}`),
        sameUid: sandboxUidProcesses((p) => p.uid === hostUid).map((p) => `${p.pid} ${p.cmdline.slice(0, 40)}`),
      });
      expect(clean).toBe(true);
    } finally {
      child.kill('SIGKILL');
      // Whatever the SDK left: kill it, so one failure does not leak into the next test.
      killAll(ours());
    }
  }, 30_000);
});
