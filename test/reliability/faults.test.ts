// Faults injected from outside, as an operator or a crash would cause them: a fork-server killed with SIGKILL
// while runs are in flight or waiting for forks, the SDK process killed with SIGKILL, zb.close() with runs in
// every state, and the host's disk full under a Sandbox's layers. Each asserts what the caller sees (every
// promise settles, with a result or a stable error code, within a bound) and what the host sees afterwards
// (no sandbox process, no fork-server, no state left).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

import { describe, expect, test } from 'vitest';

import { LAYER_PARENT, ROOTLESS, STATE_PARENT, ZerobootError, alive, eventually, hostProcesses, hostUidFrom, killAll, record, within, withZeroboot, type RunResult } from '../helpers.js';
import { PROGRAMS, RUNTIMES, hostUidOf, leftovers, runtimeMarker, type Runtime } from './programs.js';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
const ALL_TEMPLATES = { python: { pool: 2 }, node: { pool: 2 }, shell: { pool: 2 } };

/** How a promise settled: its result, or the code of the ZerobootError it rejected with (anything else fails). */
async function settled(promise: Promise<RunResult>): Promise<RunResult | string> {
  try {
    return await promise;
  } catch (error) {
    expect(ZerobootError.isInstance(error), `not a ZerobootError: ${String(error)}`).toBe(true);
    return (error as ZerobootError).code;
  }
}

/** Waits until `count` runs have printed "up". */
function upCounter(count: number) {
  let seen = 0;
  let done!: () => void;
  const all = new Promise<void>((resolve) => (done = resolve));
  return {
    onStdout: (chunk: string) => {
      if (chunk.includes('up') && ++seen === count) done();
    },
    all: () => within(all, 15_000, `${count} runs to start`),
  };
}

describe('a fork-server killed with SIGKILL', () => {
  test.each(RUNTIMES)('%s: every run in flight settles with FORKSERVER_DIED, none of their processes is left, later runs work', async (runtime) => {
    await withZeroboot({ templates: ALL_TEMPLATES }, async (zb) => {
      const hostUid = await hostUidOf(zb, runtime);
      const serverPid = zb.forkServer(runtime)!.serverPid!;
      const markers = Array.from({ length: 6 }, () => runtimeMarker(runtime));
      const up = upCounter(markers.length);
      const runs = markers.map((m) => settled(zb.run(runtime, `${m.code}\n${PROGRAMS[runtime].upThenSleep(20)}`, { onStdout: up.onStdout, timeoutMs: 30_000 })));
      // And one run on each other template, which must not notice.
      const others = RUNTIMES.filter((r) => r !== runtime).map((r) => settled(zb.run(r, `${PROGRAMS[r].upThenSleep(1)}\n${PROGRAMS[r].echo('other fine')}`)));
      await up.all();
      expect(await eventually(() => markers.every((m) => m.find().length === 1), 3000)).toBe(true);
      process.kill(serverPid, 'SIGKILL');
      const killedAt = performance.now();
      const outcomes = await within(Promise.all(runs), 5000, 'the runs to settle after their fork-server died');
      record('outcomes', outcomes);
      expect(performance.now() - killedAt).toBeLessThan(3000);
      expect(outcomes).toEqual(markers.map(() => 'FORKSERVER_DIED'));
      expect(await eventually(() => markers.every((m) => m.gone()), 3000)).toBe(true);
      for (const other of await Promise.all(others)) expect(other).toMatchObject({ exitCode: 0, stdout: 'up\nother fine\n' });
      // A new server, and runs on it, in order and at once.
      const later = await within(Promise.all(Array.from({ length: 5 }, (_, i) => zb.run(runtime, PROGRAMS[runtime].echo(`later ${i}`)))), 20_000, 'runs after the restart');
      expect(later.map((r) => r.stdout)).toEqual([0, 1, 2, 3, 4].map((i) => `later ${i}\n`));
      const newPid = zb.forkServer(runtime)!.serverPid!;
      expect(newPid).not.toBe(serverPid);
      expect(alive(serverPid)).toBe(false);
      // Only the parked pools of the three templates remain as the instance's sandbox processes.
      expect(await eventually(() => zb.stats().sandboxes === 0, 3000)).toBe(true);
      expect(await eventually(() => leftovers(hostUid, []).length <= 3 * 2 * 2, 3000)).toBe(true); // pool 2 each; a shell sandbox is 2 processes
    });
  }, 60_000);

  test('runs waiting for forks when the server dies: each gets its own output from the restarted server, or FORKSERVER_DIED', async () => {
    await withZeroboot({ templates: { shell: { pool: 0 } } }, async (zb) => {
      const serverPid = zb.forkServer('shell')!.serverPid!;
      const runs = Array.from({ length: 12 }, (_, i) => settled(zb.run('shell', PROGRAMS.shell.echo(`run ${i}`), { timeoutMs: 20_000 })));
      process.kill(serverPid, 'SIGKILL');
      const outcomes = await within(Promise.all(runs), 20_000, 'runs that waited for forks');
      record('outcomes', outcomes);
      outcomes.forEach((outcome, i) => {
        if (typeof outcome === 'string') expect(outcome).toBe('FORKSERVER_DIED');
        else expect(outcome).toMatchObject({ exitCode: 0, stdout: `run ${i}\n` });
      });
      expect((await zb.run('shell', 'echo after')).stdout).toBe('after\n');
    });
  }, 40_000);

  test('killed again and again (5 times, 300 ms apart): every run settles, and the template works at the end', async () => {
    await withZeroboot({ templates: { python: { pool: 2 } } }, async (zb) => {
      const outcomes: Array<Promise<RunResult | string>> = [];
      for (let kill = 0; kill < 5; kill++) {
        for (let i = 0; i < 4; i++) outcomes.push(settled(zb.run('python', PROGRAMS.python.echo(`k${kill} r${i}`), { timeoutMs: 20_000 })));
        await eventually(() => zb.forkServer('python')!.serverPid !== undefined, 5000);
        const pid = zb.forkServer('python')!.serverPid;
        if (pid) process.kill(pid, 'SIGKILL');
        await new Promise((resolve) => setTimeout(resolve, 300));
      }
      const all = await within(Promise.all(outcomes), 30_000, 'every run across the kills');
      record('outcomes', all);
      for (const outcome of all) {
        if (typeof outcome === 'string') expect(outcome).toBe('FORKSERVER_DIED');
        else expect(outcome.exitCode).toBe(0);
      }
      // Five deaths in a row are within the restart budget (MAX_RESTARTS counts failed restarts, not deaths).
      const after = await within(zb.run('python', 'print("survived")'), 20_000, 'a run after the last kill');
      expect(after.stdout).toBe('survived\n');
    });
  }, 60_000);
});

describe('the SDK process killed with SIGKILL', () => {
  test('with runs in flight on every template, queued runs and a Sandbox: no fork-server or sandbox is left, and the next SDK sweeps its state', async () => {
    const markers = Object.fromEntries(RUNTIMES.map((r) => [r, runtimeMarker(r)])) as Record<Runtime, ReturnType<typeof runtimeMarker>>;
    const script = `
      import { Zeroboot } from '@zeroboot/core';
      const zb = await Zeroboot.start({ templates: { python: { pool: 2, concurrency: 2 }, node: { pool: 1 }, shell: { pool: 1 } } });
      const say = (o) => process.stdout.write(JSON.stringify(o) + '\\n');
      const sb = await zb.sandbox();
      await sb.files.write('kept.txt', 'x'.repeat(100000));
      say({ servers: ${JSON.stringify(RUNTIMES)}.map((t) => zb.forkServer(t).serverPid), hostUid: (await zb.run('shell', ${JSON.stringify(PROGRAMS.shell.hostUid)})).stdout });
      const codes = ${JSON.stringify(Object.fromEntries(RUNTIMES.map((r) => [r, `${markers[r].code}\n${PROGRAMS[r].upThenSleep(25)}`])))};
      for (const [runtime, code] of Object.entries(codes)) zb.run(runtime, code, { timeoutMs: 60000, onStdout: (chunk) => say({ runtime, chunk }) }).catch(() => {});
      // Queued behind python's concurrency of 2, and a Sandbox run that writes.
      for (let i = 0; i < 4; i++) zb.run('python', 'import time; time.sleep(25)').catch(() => {});
      sb.run('shell', 'echo more > more.txt; sleep 25').catch(() => {});
    `;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d) => (stderr += d));
    const stateDir = `${STATE_PARENT}/${child.pid}-`;
    const ours = () => hostProcesses().filter((p) => p.cmdline.includes(stateDir) && !p.state.startsWith('Z'));
    let servers: number[] = [];
    let hostUid = 0;
    try {
      const started = new Set<string>();
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`the child SDK did not start its runs: ${stderr}`)), 20_000);
        createInterface({ input: child.stdout! }).on('line', (line) => {
          const message = JSON.parse(line) as { servers?: number[]; hostUid?: string; runtime?: string; chunk?: string };
          if (message.servers) servers = message.servers;
          if (message.hostUid) hostUid = hostUidFrom(message.hostUid);
          if (message.chunk?.includes('up')) started.add(message.runtime!);
          if (started.size === RUNTIMES.length) {
            clearTimeout(timer);
            resolve();
          }
        });
      });
      record('before the kill', { servers, hostUid, processes: ours().length, markers: RUNTIMES.map((r) => markers[r].find().length) });
      expect(servers.every(alive)).toBe(true);
      expect(await eventually(() => RUNTIMES.every((r) => markers[r].find().length === 1), 3000)).toBe(true);
      const reaped = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGKILL');
      // Until it is reaped its pid is taken (a zombie), and the next SDK rightly sees its owner alive.
      await reaped;
      const clean = await eventually(() => leftovers(hostUid, servers).length === 0 && ours().length === 0 && RUNTIMES.every((r) => markers[r].gone()), 5000);
      record('5 s after the kill', { leftovers: leftovers(hostUid, servers), ours: ours().map((p) => `${p.pid} ${p.cmdline.slice(0, 60)}`) });
      expect(clean).toBe(true);
      // Its state directory and layer store stay until the next SDK starts, which sweeps them (the owner is dead).
      const stale = () => readdirSync(STATE_PARENT).filter((name) => name.startsWith(`${child.pid}-`));
      const [name] = stale();
      expect(name).toBeDefined();
      await withZeroboot({ templates: { shell: { pool: 0 } } }, async () => {
        expect(stale()).toEqual([]);
        expect(existsSync(`${LAYER_PARENT}/${name}`)).toBe(false);
      });
    } finally {
      child.kill('SIGKILL');
      killAll(ours());
    }
  }, 60_000);
});

describe('zb.close()', () => {
  test('with runs running, queued, waiting for forks and on a Sandbox: all settle at once, nothing is left', async () => {
    let serverPids: number[] = [];
    let hostUid = 0;
    const outcomes: Array<Promise<RunResult | string>> = [];
    const markers = RUNTIMES.map((r) => runtimeMarker(r));
    let closedIn = 0;
    await withZeroboot({ templates: { python: { pool: 1, concurrency: 2 }, node: { pool: 0 }, shell: { pool: 1 } } }, async (zb) => {
      hostUid = await hostUidOf(zb);
      serverPids = RUNTIMES.map((r) => zb.forkServer(r)!.serverPid!);
      const sb = await zb.sandbox();
      await sb.files.write('a.txt', 'a');
      const up = upCounter(RUNTIMES.length);
      RUNTIMES.forEach((runtime, i) => outcomes.push(settled(zb.run(runtime, `${markers[i]!.code}\n${PROGRAMS[runtime].upThenSleep(30)}`, { onStdout: up.onStdout, timeoutMs: 60_000 }))));
      await up.all();
      // Queued behind python's concurrency of 2 (one slot is taken by the run above).
      for (let i = 0; i < 4; i++) outcomes.push(settled(zb.run('python', 'import time; time.sleep(30)', { timeoutMs: 60_000 })));
      // Node has no pool: these wait for forks.
      for (let i = 0; i < 4; i++) outcomes.push(settled(zb.run('node', 'await new Promise((r) => setTimeout(r, 30000));', { timeoutMs: 60_000 })));
      // A Sandbox: a run, a file operation and a branch queued behind it.
      outcomes.push(settled(sb.run('shell', 'sleep 30', { timeoutMs: 60_000 })));
      outcomes.push(settled(sb.files.read('a.txt').then(() => ({ stdout: 'read' }) as RunResult)));
      outcomes.push(settled(sb.branch().then(() => ({ stdout: 'branched' }) as RunResult)));
      await new Promise((resolve) => setTimeout(resolve, 300));
      const closing = performance.now();
      await within(zb.close(), 8000, 'zb.close() with runs in flight');
      closedIn = performance.now() - closing;
      const all = await within(Promise.all(outcomes), 3000, 'every call to settle after close');
      record('outcomes', all);
      for (const outcome of all) expect(outcome).toBe('SANDBOX_CLOSED');
      // And every later call says so.
      expect(await settled(zb.run('shell', 'echo no'))).toBe('SANDBOX_CLOSED');
      expect(await settled(sb.run('shell', 'echo no'))).toBe('SANDBOX_CLOSED');
      await expect(zb.sandbox()).rejects.toMatchObject({ code: 'SANDBOX_CLOSED' });
    });
    expect(closedIn).toBeLessThan(5000);
    expect(await eventually(() => leftovers(hostUid, serverPids).length === 0 && markers.every((m) => m.gone()), 3000)).toBe(true);
    expect(readdirSync(STATE_PARENT).filter((name) => name.startsWith(`${process.pid}-`))).toEqual([]);
    expect(readdirSync(LAYER_PARENT).filter((name) => name.startsWith(`${process.pid}-`))).toEqual([]);
  }, 60_000);
});

describe('disks that fill up', () => {
  test("a Sandbox at its quota: writes fail with DISK_QUOTA_EXCEEDED, and once files are removed it works again", async () => {
    await withZeroboot({ templates: { shell: { pool: 2 } }, limits: { diskMb: 8 } }, async (zb) => {
      const sb = await zb.sandbox();
      const fill = await sb.run('shell', 'i=0; while head -c 1048576 /dev/zero > fill-$i 2>/dev/null; do i=$((i+1)); done; echo "stopped at $i"; ls | wc -l');
      record('fill', fill);
      expect(fill.exitCode).toBe(0);
      expect(fill.stdout).toMatch(/^stopped at [1-8]\n/);
      await expect(sb.files.write('one-more', new Uint8Array(2 << 20))).rejects.toMatchObject({ code: 'DISK_QUOTA_EXCEEDED' });
      const inside = await sb.run('shell', 'head -c 2097152 /dev/zero > one-more && echo wrote || echo refused');
      expect(inside.stdout).toContain('refused');
      // Other sandboxes of the instance are not affected by this one's quota.
      expect((await zb.run('shell', 'head -c 4194304 /dev/zero > /tmp/x && echo fine')).stdout).toBe('fine\n');
      // Freed, it takes writes again, and keeps them.
      for (const entry of await sb.files.list('.')) await sb.files.remove(entry.path);
      await sb.files.write('after.txt', new Uint8Array(4 << 20));
      expect((await sb.run('shell', 'wc -c < after.txt')).stdout.trim()).toBe(String(4 << 20));
    });
  }, 60_000);

  test("the host's disk full under the layer store: the run's writes are lost with a clear error, the Sandbox and the instance go on", () => {
    // A child SDK in its own mount namespace, with a 4 MB tmpfs where the layer stores live.
    const script = `
      import { Zeroboot } from '@zeroboot/core';
      import { statfsSync } from 'node:fs';
      const out = {};
      const settle = async (name, promise) => {
        try { out[name] = { value: await promise }; } catch (e) { out[name] = { code: e.code ?? String(e), message: e.message }; }
      };
      const zb = await Zeroboot.start({ templates: { shell: { pool: 1 } }, limits: { diskMb: 64 } });
      const sb = await zb.sandbox();
      await settle('small write', sb.files.write('small.txt', 'kept').then(() => 'done'));
      await settle('big run', sb.run('shell', 'head -c 8388608 /dev/zero > big && echo wrote').then((r) => r.stdout));
      await settle('next call', sb.files.exists('small.txt'));
      await settle('after that', sb.files.list('.').then((l) => l.map((e) => e.name)));
      await settle('a new write', sb.files.write('new.txt', 'y').then(() => sb.files.read('new.txt', 'utf8')));
      await settle('a plain run', zb.run('shell', 'echo ok').then((r) => r.stdout));
      const fs = statfsSync(${JSON.stringify(LAYER_PARENT)});
      out.usedKb = (fs.blocks - fs.bfree) * fs.bsize / 1024;
      await zb.close();
      const after = statfsSync(${JSON.stringify(LAYER_PARENT)});
      out.usedKbAfterClose = (after.blocks - after.bfree) * after.bsize / 1024;
      console.log(JSON.stringify(out));
    `;
    // Rootless, the mount needs a user namespace where mount(8) runs as root, and the child SDK then one more
    // that maps the user's own uid back, so that it is as rootless there as here.
    mkdirSync(LAYER_PARENT, { recursive: true, mode: 0o700 });
    const asUser = ROOTLESS ? `unshare --user --map-user=${process.getuid!()} --map-group=${process.getgid!()} ` : '';
    const child = spawnSync(
      'unshare',
      [
        ...(ROOTLESS ? ['--user', '--map-root-user'] : []),
        ...['--mount', '--propagation', 'private', 'sh', '-c', `mount -t tmpfs -o size=4m,mode=0700 zb-full-disk "$2" && exec ${asUser}"$0" --input-type=module -e "$1"`],
        ...[process.execPath, script, LAYER_PARENT],
      ],
      { cwd: repoRoot, encoding: 'utf8', timeout: 45_000 },
    );
    record('child', { status: child.status, stdout: child.stdout, stderr: child.stderr.slice(-3000) });
    expect(child.status).toBe(0);
    const out = JSON.parse(child.stdout.trim().split('\n').at(-1)!);
    expect(out['small write']).toEqual({ value: 'done' });
    // The run itself ran; keeping its 8 MB in a 4 MB store failed: the next call says so, with a ZerobootError.
    expect(out['big run']).toEqual({ value: 'wrote\n' });
    expect(['SANDBOX_SETUP_FAILED', 'DISK_QUOTA_EXCEEDED']).toContain(out['next call'].code);
    expect(out['next call'].message).toMatch(/disk|quota/i);
    // Then the Sandbox is as it was before that run, and takes new writes.
    expect(out['after that']).toEqual({ value: ['small.txt'] });
    expect(out['a new write']).toEqual({ value: 'y' });
    expect(out['a plain run']).toEqual({ value: 'ok\n' });
    // The failed copy left nothing in the store; close removed the rest.
    expect(out.usedKb).toBeLessThan(1024);
    expect(out.usedKbAfterClose).toBeLessThan(64);
  }, 60_000);
});
