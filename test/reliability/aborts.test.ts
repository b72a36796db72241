// Aborts in every state a run can be in, on every template: before it is queued, queued behind the
// template's concurrency, waiting for a fork from an empty pool, queued behind another call on its Sandbox,
// and running. Each must reject with ABORTED, promptly, run nothing it had not started, leave nothing
// behind, and leave the template as good as before. Then aborts at random moments, 60 of them.
import { describe, expect, test } from 'vitest';

import { ZerobootError, eventually, record, within, withZeroboot, type RunResult } from '../helpers.js';
import { PROGRAMS, RUNTIMES, hostUidOf, leftovers, runtimeMarker, type Runtime } from './programs.js';

async function aborted(promise: Promise<unknown>, abortedAt: () => number): Promise<number> {
  try {
    const value = await within(promise, 5000, 'an aborted call');
    throw new Error(`an aborted call resolved: ${JSON.stringify(value)}`);
  } catch (error) {
    expect(ZerobootError.isInstance(error), String(error)).toBe(true);
    expect((error as ZerobootError).code).toBe('ABORTED');
    return performance.now() - abortedAt();
  }
}

/** Starts a run that prints "up" and sleeps; resolves once it is up. */
async function busy(start: (code: string, onStdout: () => void) => Promise<unknown>, runtime: Runtime): Promise<{ settled: Promise<unknown> }> {
  let up!: () => void;
  const isUp = new Promise<void>((resolve) => (up = resolve));
  const settled = start(PROGRAMS[runtime].upThenSleep(2), () => up()).catch((error: unknown) => error);
  await within(isUp, 10_000, 'the busy run to start');
  return { settled };
}

describe.each(RUNTIMES)('%s', (runtime) => {
  const P = PROGRAMS[runtime];

  test('aborted in every state: ABORTED at once, nothing it had not started runs, nothing is left, the template still works', async () => {
    await withZeroboot({ templates: { [runtime]: { pool: 1, concurrency: 1 } } }, async (zb) => {
      const hostUid = await hostUidOf(zb, runtime);
      const serverPid = zb.forkServer(runtime)!.serverPid!;
      const timings: Record<string, number> = {};
      let at = 0;
      const now = () => at;

      // 1. Before anything: an already-aborted signal.
      const never = runtimeMarker(runtime);
      at = performance.now();
      timings['already aborted'] = await aborted(zb.run(runtime, never.code, { signal: AbortSignal.abort() }), now);

      // 2. Queued behind concurrency: 1.
      const first = await busy((code, onStdout) => zb.run(runtime, code, { onStdout }), runtime);
      const queued = new AbortController();
      const queuedRun = zb.run(runtime, never.code, { signal: queued.signal });
      await new Promise((resolve) => setTimeout(resolve, 100));
      at = performance.now();
      queued.abort();
      timings['queued behind concurrency'] = await aborted(queuedRun, now);
      expect(await first.settled).toMatchObject({ exitCode: 0, stdout: 'up\n' });

      // 3. Running: its processes die with it.
      const running = runtimeMarker(runtime);
      const runningAbort = new AbortController();
      let upRunning!: () => void;
      const isUp = new Promise<void>((resolve) => (upRunning = resolve));
      const runningRun = zb.run(runtime, `${running.code}\n${P.upThenSleep(30)}`, { signal: runningAbort.signal, onStdout: () => upRunning() });
      await within(isUp, 10_000, 'the run to start');
      // The host sees the marker's command line a moment after the process starts (exec fills it in).
      expect(await eventually(() => running.find().length === 1, 3000)).toBe(true);
      at = performance.now();
      runningAbort.abort();
      timings.running = await aborted(runningRun, now);
      expect(await eventually(() => running.gone(), 3000)).toBe(true);

      // 4. On a Sandbox, queued behind another run of that Sandbox.
      const sb = await zb.sandbox();
      const sbFirst = await busy((code, onStdout) => sb.run(runtime, code, { onStdout }), runtime);
      const sbAbort = new AbortController();
      const sbQueued = sb.run(runtime, `${never.code}\n${P.echo('wrote')}`, { signal: sbAbort.signal });
      await new Promise((resolve) => setTimeout(resolve, 100));
      at = performance.now();
      sbAbort.abort();
      timings['queued on its Sandbox'] = await aborted(sbQueued, now);
      expect(await sbFirst.settled).toMatchObject({ exitCode: 0 });
      expect((await sb.run(runtime, P.echo('sandbox fine'))).stdout).toBe('sandbox fine\n');
      await sb.close();

      record('timings', timings);
      for (const [state, ms] of Object.entries(timings)) expect([state, ms < 1000]).toEqual([state, true]);
      // What was aborted before it started never ran.
      expect(never.find()).toEqual([]);
      // The template is as good as before: its pool refills, runs work, only the pool is left.
      const after = await Promise.all([0, 1, 2].map((i) => zb.run(runtime, P.echo(`after ${i}`))));
      expect(after.map((r) => r.stdout)).toEqual(['after 0\n', 'after 1\n', 'after 2\n']);
      expect(zb.forkServer(runtime)!.serverPid).toBe(serverPid);
      expect(await eventually(() => zb.stats().sandboxes === 0 && zb.stats().templates[runtime]!.ready === 1, 3000)).toBe(true);
      expect(await eventually(() => leftovers(hostUid, []).length <= (runtime === 'shell' ? 2 : 1), 3000)).toBe(true);
    });
  }, 60_000);

  test('aborted while waiting for a fork (pool 0): ABORTED at once; the fork that comes later is not leaked', async () => {
    await withZeroboot({ templates: { [runtime]: { pool: 0 } } }, async (zb) => {
      const hostUid = await hostUidOf(zb, runtime);
      const m = runtimeMarker(runtime);
      const controllers = Array.from({ length: 5 }, () => new AbortController());
      const runs = controllers.map((c) => zb.run(runtime, m.code, { signal: c.signal }));
      const at = performance.now();
      // At once: the forks were asked for, none is ready yet.
      for (const c of controllers) c.abort();
      for (const r of runs) expect(await aborted(r, () => at)).toBeLessThan(1000);
      expect(m.find()).toEqual([]);
      // The sandboxes forked for them meanwhile are given back, not kept running.
      expect(await eventually(() => leftovers(hostUid, []).length === 0, 3000)).toBe(true);
      expect((await zb.run(runtime, P.echo('next'))).stdout).toBe('next\n');
    });
  }, 30_000);
});

describe('aborts at random moments', () => {
  test('60 runs over three templates, each aborted 0-40 ms after it starts: ABORTED or a correct result, nothing left', async () => {
    await withZeroboot({ templates: { python: { pool: 2 }, node: { pool: 2 }, shell: { pool: 2 } } }, async (zb) => {
      const hostUid = await hostUidOf(zb);
      let seed = 42;
      const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
      const outcomes = await within(
        Promise.all(
          Array.from({ length: 60 }, async (_, i): Promise<string> => {
            const runtime = RUNTIMES[i % 3]!;
            const controller = new AbortController();
            setTimeout(() => controller.abort(), Math.floor(random() * 40));
            try {
              const r: RunResult = await zb.run(runtime, PROGRAMS[runtime].echo(`run ${i}`), { signal: controller.signal });
              expect(r).toMatchObject({ exitCode: 0, stdout: `run ${i}\n` });
              return 'result';
            } catch (error) {
              expect(ZerobootError.isInstance(error) && error.code === 'ABORTED', String(error)).toBe(true);
              return 'ABORTED';
            }
          }),
        ),
        30_000,
        '60 runs with random aborts',
      );
      const tally = { result: outcomes.filter((o) => o === 'result').length, ABORTED: outcomes.filter((o) => o === 'ABORTED').length };
      record('tally', tally);
      console.log(`random aborts: ${tally.result} results, ${tally.ABORTED} aborted`);
      expect(tally.result + tally.ABORTED).toBe(60);
      expect(await eventually(() => zb.stats().sandboxes === 0, 3000)).toBe(true);
      // Only the three refilled pools are left (a shell sandbox is two processes).
      expect(await eventually(() => leftovers(hostUid, []).length <= 2 + 2 + 2 * 2, 5000)).toBe(true);
      for (const runtime of RUNTIMES) expect((await zb.run(runtime, PROGRAMS[runtime].echo('fine'))).stdout).toBe('fine\n');
    });
  }, 60_000);
});
