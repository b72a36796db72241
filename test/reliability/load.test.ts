// Load: 10,000 runs one after the other must not grow the SDK's or the fork-servers' fds or memory, and
// 256 runs at once on a 2-core machine must each come back with their own output (their own env, stdin and
// files: no cross-talk between sandboxes forked at the same moment).
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

import { describe, expect, test } from 'vitest';

import { eventually, record, within, withZeroboot } from '../helpers.js';
import { PROGRAMS, RUNTIMES, footprint, hostUidOf, leftovers, type Runtime } from './programs.js';

/** A full garbage collection, so that heap sizes compare live objects, not garbage not yet collected. */
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** The cgroup slots (v1: directories s0, s1, ... under the server's pids cgroup) a fork-server has made; 0 elsewhere. */
function slotsOf(serverPid: number): number {
  const root = '/sys/fs/cgroup/pids';
  const dir = existsSync(root) ? readdirSync(root).find((name) => name.startsWith('zeroboot-') && name.endsWith(`-${serverPid}`)) : undefined;
  return dir ? readdirSync(join(root, dir)).filter((name) => /^s\d+$/.test(name)).length : 0;
}

/** Sequential runs per template: 10,000 in all. */
const SEQUENTIAL: Record<Runtime, number> = { python: 4000, node: 3000, shell: 3000 };
const WARM_UP = 300;

describe('10,000 sequential runs', () => {
  test('no growth in fds or memory of the SDK process or of any fork-server', async () => {
    await withZeroboot({ templates: { python: { pool: 2 }, node: { pool: 2 }, shell: { pool: 2 } } }, async (zb) => {
      const hostUid = await hostUidOf(zb);
      const servers = Object.fromEntries(RUNTIMES.map((r) => [r, zb.forkServer(r)!.serverPid!])) as Record<Runtime, number>;
      const sample = () => {
        gc();
        return {
          sdk: { ...footprint(process.pid), heapKb: Math.round(process.memoryUsage().heapUsed / 1024) },
          servers: Object.fromEntries(RUNTIMES.map((r) => [r, { ...footprint(servers[r]), slots: slotsOf(servers[r]) }])) as Record<Runtime, { fds: number; rssKb: number; slots: number }>,
        };
      };
      const runSome = async (runtime: Runtime, count: number, from: number) => {
        for (let i = from; i < from + count; i++) {
          const r = await zb.run(runtime, PROGRAMS[runtime].echo(`${runtime} ${i}`));
          if (r.exitCode !== 0 || r.stdout !== `${runtime} ${i}\n`) {
            record(`run ${i} of ${runtime}`, r);
            throw new Error(`run ${i} of ${runtime} came back wrong`);
          }
        }
      };
      // Warm up: caches, JIT, the pools' first refill, the slots' cgroups made on their first use.
      for (const runtime of RUNTIMES) await runSome(runtime, WARM_UP, 0);
      await eventually(() => zb.stats().sandboxes === 0 && RUNTIMES.every((r) => zb.stats().templates[r]!.ready === 2), 3000);
      const before = sample();
      const started = performance.now();
      let total = RUNTIMES.length * WARM_UP;
      for (const runtime of RUNTIMES) {
        await runSome(runtime, SEQUENTIAL[runtime] - WARM_UP, WARM_UP);
        total += SEQUENTIAL[runtime] - WARM_UP;
      }
      const elapsed = performance.now() - started;
      await eventually(() => zb.stats().sandboxes === 0 && RUNTIMES.every((r) => zb.stats().templates[r]!.ready === 2), 3000);
      const after = sample();
      record('footprints', { before, after, total, elapsedMs: Math.round(elapsed) });
      console.log(`sequential: ${total} runs; SDK fds ${before.sdk.fds} -> ${after.sdk.fds}, rss ${before.sdk.rssKb} -> ${after.sdk.rssKb} kB, heap ${before.sdk.heapKb} -> ${after.sdk.heapKb} kB; ` +
        RUNTIMES.map((r) => `${r} server fds ${before.servers[r].fds} -> ${after.servers[r].fds} (slots ${before.servers[r].slots} -> ${after.servers[r].slots}), rss ${before.servers[r].rssKb} -> ${after.servers[r].rssKb} kB`).join('; '));
      expect(total).toBe(10_000);
      // fds: exactly as many (a leak of one per run would be thousands). A fork-server keeps two fds open per
      // cgroup slot it has made (cgroup v1: the slot's memory and pids cgroup.procs), and makes slots up to
      // the most sandboxes it has had alive at once: slots are a high-water mark, not a count of runs.
      expect(after.sdk.fds).toBeLessThanOrEqual(before.sdk.fds + 2);
      for (const r of RUNTIMES) {
        expect([r, after.servers[r].fds - 2 * after.servers[r].slots]).toEqual([r, before.servers[r].fds - 2 * before.servers[r].slots]);
        expect([r, after.servers[r].slots]).toEqual([r, expect.toSatisfy((n: number) => n <= 64)]);
      }
      // Memory: the live heap after a full GC within 2 MB (200 bytes a run), RSS within 32 MB (the allocator
      // keeps freed pages); a fork-server's RSS within 1 MB (it allocates nothing per fork that it keeps).
      expect(after.sdk.heapKb - before.sdk.heapKb).toBeLessThan(2 * 1024);
      expect(after.sdk.rssKb - before.sdk.rssKb).toBeLessThan(32 * 1024);
      for (const r of RUNTIMES) expect(after.servers[r].rssKb - before.servers[r].rssKb, `${r} fork-server RSS growth (kB)`).toBeLessThan(1024);
      // Nothing of the 10,000 sandboxes is left: only the parked pools (a shell sandbox is two processes).
      expect(leftovers(hostUid, []).length).toBeLessThanOrEqual(2 + 2 + 2 * 2);
    });
  }, 240_000);
});

describe('256 runs at once on 2 cores', () => {
  test('one template (queued past its concurrency of 64): each run gets its own output', async () => {
    await withZeroboot({ templates: { python: { pool: 8 } } }, async (zb) => {
      const code = 'import os, sys\nn = int(os.environ["N"])\nprint(n * n, sys.stdin.read(), open("mine.txt").read())';
      const runs = Array.from({ length: 256 }, (_, i) => zb.run('python', code, { env: { N: String(i) }, stdin: `in-${i}`, files: { 'mine.txt': `file-${i}` }, timeoutMs: 60_000 }));
      const results = await within(Promise.all(runs), 90_000, '256 concurrent runs');
      const wrong = results.map((r, i) => ({ i, r })).filter(({ r, i }) => r.exitCode !== 0 || r.stdout !== `${i * i} in-${i} file-${i}\n`);
      record('wrong', wrong.slice(0, 5));
      expect(wrong.length).toBe(0);
      expect(zb.stats().sandboxes).toBe(0);
    });
  }, 120_000);

  test('three templates, 256 in all, every one in flight at once: each gets its own output, and nothing is left', async () => {
    await withZeroboot({ templates: { python: { pool: 4, concurrency: 256 }, node: { pool: 4, concurrency: 256 }, shell: { pool: 4, concurrency: 256 } } }, async (zb) => {
      const hostUid = await hostUidOf(zb);
      const code: Record<Runtime, string> = {
        python: 'import os, sys\nprint(os.environ["N"], sys.stdin.read(), open("mine.txt").read())',
        node: "console.log(process.env.N, require('fs').readFileSync(0, 'utf8'), require('fs').readFileSync('mine.txt', 'utf8'));",
        shell: 'echo "$N" "$(cat)" "$(cat mine.txt)"',
      };
      const runs = Array.from({ length: 256 }, (_, i) => {
        const runtime = RUNTIMES[i % 3]!;
        return zb.run(runtime, code[runtime], { env: { N: String(i) }, stdin: `in-${i}`, files: { 'mine.txt': `file-${i}` }, timeoutMs: 60_000 });
      });
      const results = await within(Promise.all(runs), 90_000, '256 concurrent runs on three templates');
      const wrong = results.map((r, i) => ({ i, runtime: RUNTIMES[i % 3], r })).filter(({ r, i }) => r.exitCode !== 0 || r.stdout !== `${i} in-${i} file-${i}\n`);
      record('wrong', wrong.slice(0, 5));
      expect(wrong.length).toBe(0);
      expect(zb.stats().sandboxes).toBe(0);
      // Only the refilled pools remain (a shell sandbox is two processes).
      expect(await eventually(() => leftovers(hostUid, []).length <= 4 + 4 + 2 * 4, 5000)).toBe(true);
    });
  }, 120_000);
});
