// `pnpm bench` / `zeroboot bench`: zeroboot's Python runs side by side with a cold `python3 -c` and bubblewrap,
// on this machine, in one run. Prints a markdown table and the targets; writes every raw number to JSON.
import { realpathSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

import { Zeroboot } from '../zeroboot.js';
import { benchLayers, formatLayerTable, type LayerBench } from './layers.js';
import { childPids, cpuPerRun, cpuTimes, nowMs, processMemory, sleep, summarize, type CpuTimes, type ProcessMemory, type Summary } from './measure.js';
import { bwrapArgv, bwrapCommand, environment, findPython, hasCommand, timeCommand, timeIsolatedVm, type Environment, type PeerResult } from './peers.js';

const CODE = 'print(1+1)';

/** What a series runs: a template and a program that prints "2". */
interface Workload {
  runtime: string;
  code: string;
}
const PYTHON: Workload = { runtime: 'python', code: CODE };
/** The node and shell rows: the same program in each. */
const OTHERS: Workload[] = [
  { runtime: 'node', code: 'console.log(1+1)' },
  { runtime: 'shell', code: 'echo 2' },
];

export interface BenchOptions {
  /** Fewer iterations: a smoke check in a few seconds, not a measurement. */
  quick?: boolean;
  /** Where to write the JSON. Default: `bench-results.json` in the current directory; `false`: do not write. */
  outFile?: string | false;
  /** Progress lines. Default: to stderr. */
  log?: (line: string) => void;
}

export interface LatencySeries {
  summary: Summary;
  samplesMs: number[];
  failures: number;
  firstError?: string;
  /** CPU ms per run: this Node process, the fork-server, and the sandboxes (reaped children of the fork-server). */
  cpuPerRunMs?: CpuTimes;
}

export interface WarmSeries extends LatencySeries {
  /** Runs that started with no parked sandbox, so they waited for a fork. */
  startedOnEmptyPool: number;
  /** For the paced series: the actual gaps between runs. */
  gapMs?: Summary;
}

export interface ConcurrencyResult extends LatencySeries {
  pool: number;
  runs: number;
  inFlight: number;
  wallMs: number;
  runsPerSecond: number;
}

export interface MemoryResult {
  pool: number;
  sandboxes: number;
  ussKiB: Summary;
  pssKiB: Summary;
  rssKiB: Summary;
  privateDirtyKiB: Summary;
  pageTablesKiB: Summary;
  perSandbox: ProcessMemory[];
  forkServer: ProcessMemory | null;
}

export interface Target {
  name: string;
  goal: string;
  value: number;
  unit: string;
  met: boolean;
}

export interface BenchResult {
  quick: boolean;
  environment: Environment;
  iterations: Record<string, number>;
  zeroboot: {
    startMs: number;
    fillMs: number;
    warm: WarmSeries;
    paced: WarmSeries;
    cold: LatencySeries & { forkP50Ms: number; forkP99Ms: number };
    concurrency: ConcurrencyResult[];
    memory: MemoryResult;
    /** The node and shell templates, pool 8: back to back and paced. */
    others: Array<{ runtime: string; code: string; warm: WarmSeries; paced: WarmSeries }>;
    layers: LayerBench;
  };
  peers: PeerResult[];
  /** p50 of each row divided by zeroboot's warm back-to-back p50. */
  ratios: Record<string, number>;
  targets: Target[];
  table: string;
  totalMs: number;
}

interface Iterations {
  warm: number;
  paced: number;
  cold: number;
  concurrentRuns: number;
  inFlight: number;
  peers: number;
  memoryPool: number;
  warmup: number;
}

const FULL: Iterations = { warm: 1000, paced: 500, cold: 300, concurrentRuns: 1000, inFlight: 32, peers: 100, memoryPool: 32, warmup: 30 };
const QUICK: Iterations = { warm: 100, paced: 50, cold: 30, concurrentRuns: 200, inFlight: 32, peers: 10, memoryPool: 16, warmup: 5 };
const PACE_GAP_MS = 2;

/** Runs the whole benchmark; returns every number. Prints nothing to stdout itself (see `formatReport`). */
export async function runBench(options: BenchOptions = {}): Promise<BenchResult> {
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const it = options.quick ? QUICK : FULL;
  const began = nowMs();
  const python = findPython('python3');
  const env = environment(python);
  log(`zeroboot bench${options.quick ? ' (quick)' : ''}: ${env.cpus} CPUs, kernel ${env.kernel}, node ${env.node}, python ${python.version} (${python.executable})`);

  // 1. Warm pool of 8: back-to-back, then paced like an agent loop, then 32 in flight.
  const startBegan = nowMs();
  let zb = await Zeroboot.start({ templates: { python: { pool: 8 } } });
  let warm: WarmSeries, paced: WarmSeries, concurrency8: ConcurrencyResult;
  const startMs = nowMs() - startBegan;
  let fillMs: number;
  try {
    await waitForPool(zb, 8);
    fillMs = nowMs() - startBegan - startMs;
    await warmup(zb, it.warmup);
    await waitForPool(zb, 8);
    log(`warm pool 8: ${it.warm} runs back to back`);
    warm = await sequential(zb, it.warm, 0);
    await waitForPool(zb, 8);
    log(`warm pool 8: ${it.paced} runs, ${PACE_GAP_MS} ms apart`);
    paced = await sequential(zb, it.paced, PACE_GAP_MS);
    await waitForPool(zb, 8);
    log(`pool 8: ${it.concurrentRuns} runs, ${it.inFlight} in flight`);
    concurrency8 = await concurrent(zb, 8, it.concurrentRuns, it.inFlight);
  } finally {
    await zb.close();
  }

  // 2. Empty pool: every run waits for a fork on demand.
  zb = await Zeroboot.start({ templates: { python: { pool: 0 } } });
  let cold: BenchResult['zeroboot']['cold'];
  try {
    await warmup(zb, Math.min(it.warmup, 10));
    log(`empty pool: ${it.cold} runs, each forked on demand`);
    const series = await sequential(zb, it.cold, 0);
    const stats = zb.stats().templates.python!;
    cold = { ...(series.cpuPerRunMs ? { cpuPerRunMs: series.cpuPerRunMs } : {}), summary: series.summary, samplesMs: series.samplesMs, failures: series.failures, ...(series.firstError === undefined ? {} : { firstError: series.firstError }), forkP50Ms: stats.p50ForkMs, forkP99Ms: stats.p99ForkMs };
  } finally {
    await zb.close();
  }

  // 3. A pool of 32: memory per parked sandbox, then 32 in flight.
  zb = await Zeroboot.start({ templates: { python: { pool: it.memoryPool } } });
  let memory: MemoryResult, concurrencyFull: ConcurrencyResult;
  try {
    await waitForPool(zb, it.memoryPool);
    await sleep(200); // let the last sandboxes finish parking
    await waitForPool(zb, it.memoryPool);
    log(`pool ${it.memoryPool}: memory of the parked sandboxes`);
    memory = measureMemory(zb, it.memoryPool);
    await warmup(zb, it.warmup);
    await waitForPool(zb, it.memoryPool);
    log(`pool ${it.memoryPool}: ${it.concurrentRuns} runs, ${it.inFlight} in flight`);
    concurrencyFull = await concurrent(zb, it.memoryPool, it.concurrentRuns, it.inFlight);
  } finally {
    await zb.close();
  }

  // 4. Node and shell templates, pool 8, the same two series.
  const others: BenchResult['zeroboot']['others'] = [];
  for (const work of OTHERS) {
    zb = await Zeroboot.start({ templates: { [work.runtime]: { pool: 8 } } });
    try {
      await waitForPool(zb, 8, work.runtime);
      await warmup(zb, it.warmup, work);
      await waitForPool(zb, 8, work.runtime);
      log(`${work.runtime}, warm pool 8: ${it.paced} runs back to back, then ${it.paced} paced`);
      const warmSeries = await sequential(zb, it.paced, 0, work);
      await waitForPool(zb, 8, work.runtime);
      const pacedSeries = await sequential(zb, it.paced, PACE_GAP_MS, work);
      others.push({ ...work, warm: warmSeries, paced: pacedSeries });
    } finally {
      await zb.close();
    }
  }

  // 5. Peers: the same interpreter, cold, then under bubblewrap. (After every zeroboot instance is closed.)
  const peers: PeerResult[] = [];
  log(`peers: python3 -c, ${it.peers} runs`);
  peers.push(timeCommand(`python3 -c (${python.version}, cold)`, [python.executable, '-c', CODE], it.peers));
  // The floor of a cold interpreter: no site module, so no .pth hooks or site-packages scan (host-dependent).
  log(`peers: python3 -I -S -c, ${it.peers} runs`);
  peers.push(timeCommand(`python3 -I -S -c (no site: cold floor)`, [python.executable, '-I', '-S', '-c', CODE], it.peers));
  if (hasCommand('bwrap')) {
    log(`peers: bwrap --unshare-all python3 -c, ${it.peers} runs`);
    peers.push(timeCommand(`bwrap --unshare-all + python3 -c`, bwrapArgv(python), it.peers));
    peers.push(timeCommand(`bwrap --unshare-all + python3 -I -S -c`, bwrapArgv(python, ['-I', '-S']), it.peers));
  } else {
    log('peers: bwrap not found (scripts/apt-deps.sh installs it); skipped');
  }
  log(`peers: node -e and sh -c, cold and under bwrap, ${it.peers} runs each`);
  const nodeArgv = [process.execPath, '-e', 'console.log(1+1)'];
  const shArgv = ['/bin/sh', '-c', 'echo 2'];
  peers.push(timeCommand('node -e (cold)', nodeArgv, it.peers));
  peers.push(timeCommand('/bin/sh -c (cold)', shArgv, it.peers));
  if (hasCommand('bwrap')) {
    peers.push(timeCommand('bwrap --unshare-all + node -e', bwrapCommand(nodeArgv), it.peers));
    peers.push(timeCommand('bwrap --unshare-all + /bin/sh -c', bwrapCommand(shArgv), it.peers));
  }
  log(`peers: isolated-vm, new isolate per run, ${it.peers} runs`);
  const isolatedVm = timeIsolatedVm('isolated-vm: new isolate + context per run (in-process, no OS isolation)', 'console.log(1+1)', it.peers);
  if (isolatedVm.unavailable !== undefined) log(`peers: isolated-vm unavailable (${isolatedVm.unavailable})`);
  peers.push(isolatedVm);

  const base = warm.summary.p50;
  const ratios: Record<string, number> = {
    paced: paced.summary.p50 / base,
    cold: cold.summary.p50 / base,
  };
  for (const peer of peers) if (peer.unavailable === undefined) ratios[peer.name] = peer.summary.p50 / base;
  for (const o of others) ratios[`${o.runtime} back to back`] = o.warm.summary.p50 / base;
  const bwrap = peers.find((p) => p.name === 'bwrap --unshare-all + python3 -c');
  const targetsOthers: Target[] = [];
  for (const o of others) {
    targetsOthers.push(target(`${o.runtime} \`${o.code}\` p50 (back to back)`, '≤ 1 ms', o.warm.summary.p50, 'ms', o.warm.summary.p50 <= 1));
    targetsOthers.push(target(`${o.runtime} \`${o.code}\` p50 (paced)`, '≤ 1 ms', o.paced.summary.p50, 'ms', o.paced.summary.p50 <= 1));
  }
  const concurrencies = [concurrencyFull, concurrency8];

  const targets: Target[] = [
    target('warm run p50 (back to back)', '≤ 0.5 ms', warm.summary.p50, 'ms', warm.summary.p50 <= 0.5),
    target('warm run p99 (back to back)', '≤ 2 ms', warm.summary.p99, 'ms', warm.summary.p99 <= 2),
    target(`warm run p50 (paced, ${PACE_GAP_MS} ms gaps)`, '≤ 0.5 ms', paced.summary.p50, 'ms', paced.summary.p50 <= 0.5),
    target(`warm run p99 (paced, ${PACE_GAP_MS} ms gaps)`, '≤ 2 ms', paced.summary.p99, 'ms', paced.summary.p99 <= 2),
  ];
  if (bwrap && bwrap.summary.n > 0) {
    targets.push(target('bwrap p50 / zeroboot p50 (back to back)', '≥ 30×', bwrap.summary.p50 / warm.summary.p50, '×', bwrap.summary.p50 / warm.summary.p50 >= 30));
    targets.push(target('bwrap p50 / zeroboot p50 (paced)', '≥ 30×', bwrap.summary.p50 / paced.summary.p50, '×', bwrap.summary.p50 / paced.summary.p50 >= 30));
  }
  for (const c of concurrencies) {
    const scaled = (c.wallMs * 1000) / c.runs; // quick mode runs fewer: scale to 1000
    targets.push(target(`1000 runs, ${c.inFlight} in flight, pool ${c.pool}${c.runs === 1000 ? '' : ` (scaled from ${c.runs})`}`, '≤ 800 ms', scaled, 'ms', scaled <= 800));
  }
  targets.push(target(`private memory (USS) per ready sandbox, mean of ${memory.sandboxes}`, '≤ 512 KiB', memory.ussKiB.mean, 'KiB', memory.ussKiB.mean <= 512));
  targets.push(...targetsOthers);

  // 5. The layered filesystem: branch and merge at 1 MB, 50 MB and 500 MB, a stack 100 deep.
  const layers = await benchLayers(options.quick === true, log);
  targets.push(target('branch of a 50 MB workspace, p50', '≤ 1 ms', layers.branch50MbP50, 'ms', layers.branch50MbP50 <= 1));

  const result: BenchResult = {
    quick: options.quick === true,
    environment: env,
    iterations: { ...it, paceGapMs: PACE_GAP_MS },
    zeroboot: { startMs, fillMs: fillMs!, warm, paced, cold, concurrency: concurrencies, memory, others, layers },
    peers,
    ratios,
    targets,
    table: '',
    totalMs: 0,
  };
  result.table = formatTable(result);
  result.totalMs = nowMs() - began;
  if (options.outFile !== false) {
    const path = resolve(options.outFile ?? 'bench-results.json');
    writeFileSync(path, `${JSON.stringify(result, null, 2)}\n`);
    log(`raw numbers: ${path}`);
  }
  return result;
}

function target(name: string, goal: string, value: number, unit: string, met: boolean): Target {
  return { name, goal, value, unit, met };
}

async function waitForPool(zb: Zeroboot, size: number, runtime = 'python', timeoutMs = 30_000): Promise<void> {
  const deadline = nowMs() + timeoutMs;
  while ((zb.stats().templates[runtime]?.ready ?? 0) < size) {
    if (nowMs() > deadline) throw new Error(`the ${runtime} pool did not fill to ${size} within ${timeoutMs} ms (ready: ${zb.stats().templates[runtime]?.ready})`);
    await sleep(2);
  }
}

async function warmup(zb: Zeroboot, runs: number, work: Workload = PYTHON): Promise<void> {
  for (let i = 0; i < runs; i++) await zb.run(work.runtime, work.code).catch(() => undefined);
}

function checkRun(stdout: string, exitCode: number | null): string | undefined {
  return stdout === '2\n' && exitCode === 0 ? undefined : `exit ${exitCode}, stdout ${JSON.stringify(stdout.slice(0, 200))}`;
}

/** `runs` runs one after the other, each timed from the call to the settled promise; `gapMs` of idle between runs. */
async function sequential(zb: Zeroboot, runs: number, gapMs: number, work: Workload = PYTHON): Promise<WarmSeries> {
  const samplesMs: number[] = [];
  const gaps: number[] = [];
  let failures = 0;
  let firstError: string | undefined;
  let startedOnEmptyPool = 0;
  let lastEnd: number | undefined;
  const serverPid = zb.forkServer(work.runtime)?.serverPid;
  const cpuBefore = cpuTimes(serverPid);
  for (let i = 0; i < runs; i++) {
    if (gapMs > 0 && i > 0) await sleep(gapMs);
    if ((zb.stats().templates[work.runtime]?.ready ?? 0) === 0) startedOnEmptyPool++;
    const start = nowMs();
    if (lastEnd !== undefined && gapMs > 0) gaps.push(start - lastEnd);
    try {
      const r = await zb.run(work.runtime, work.code);
      const elapsed = nowMs() - start;
      const error = checkRun(r.stdout, r.exitCode);
      if (error) {
        failures++;
        firstError ??= error;
      } else samplesMs.push(elapsed);
    } catch (error) {
      failures++;
      firstError ??= String((error as Error).message ?? error);
    }
    lastEnd = nowMs();
  }
  await sleep(20); // let the last sandboxes be reaped, so their CPU time is counted
  const cpuPerRunMs = cpuPerRun(cpuBefore, cpuTimes(serverPid), runs);
  return {
    cpuPerRunMs,
    summary: summarize(samplesMs),
    samplesMs: samplesMs.map(round),
    failures,
    ...(firstError === undefined ? {} : { firstError }),
    startedOnEmptyPool,
    ...(gapMs > 0 ? { gapMs: summarize(gaps) } : {}),
  };
}

/** `runs` runs with `inFlight` of them in flight at all times; wall time from the first call to the last result. */
async function concurrent(zb: Zeroboot, pool: number, runs: number, inFlight: number): Promise<ConcurrencyResult> {
  const samplesMs: number[] = [];
  let failures = 0;
  let firstError: string | undefined;
  let next = 0;
  const worker = async () => {
    while (next < runs) {
      next++;
      const start = nowMs();
      try {
        const r = await zb.run('python', CODE);
        const error = checkRun(r.stdout, r.exitCode);
        if (error) {
          failures++;
          firstError ??= error;
        } else samplesMs.push(nowMs() - start);
      } catch (error) {
        failures++;
        firstError ??= String((error as Error).message ?? error);
      }
    }
  };
  const serverPid = zb.forkServer('python')?.serverPid;
  const cpuBefore = cpuTimes(serverPid);
  const began = nowMs();
  await Promise.all(Array.from({ length: inFlight }, worker));
  const wallMs = nowMs() - began;
  await sleep(20);
  const cpuPerRunMs = cpuPerRun(cpuBefore, cpuTimes(serverPid), runs);
  return {
    cpuPerRunMs,
    pool,
    runs,
    inFlight,
    wallMs,
    runsPerSecond: (runs * 1000) / wallMs,
    summary: summarize(samplesMs),
    samplesMs: samplesMs.map(round),
    failures,
    ...(firstError === undefined ? {} : { firstError }),
  };
}

/** USS (Private_Clean + Private_Dirty) of each parked sandbox, with any processes below it. */
function measureMemory(zb: Zeroboot, pool: number): MemoryResult {
  const server = zb.forkServer('python')!;
  const perSandbox: ProcessMemory[] = [];
  for (const pid of server.readyPids) {
    try {
      const tree = [pid];
      for (let i = 0; i < tree.length; i++) tree.push(...childPids(tree[i]!));
      const parts = tree.map(processMemory);
      perSandbox.push({
        pid,
        rssKiB: sum(parts, 'rssKiB'),
        pssKiB: sum(parts, 'pssKiB'),
        ussKiB: sum(parts, 'ussKiB'),
        privateDirtyKiB: sum(parts, 'privateDirtyKiB'),
        pageTablesKiB: sum(parts, 'pageTablesKiB'),
      });
    } catch {
      // taken or gone meanwhile
    }
  }
  let forkServer: ProcessMemory | null = null;
  try {
    if (server.serverPid !== undefined) forkServer = processMemory(server.serverPid);
  } catch {
    // gone
  }
  const pick = (key: keyof ProcessMemory) => summarize(perSandbox.map((m) => m[key]));
  return {
    pool,
    sandboxes: perSandbox.length,
    ussKiB: pick('ussKiB'),
    pssKiB: pick('pssKiB'),
    rssKiB: pick('rssKiB'),
    privateDirtyKiB: pick('privateDirtyKiB'),
    pageTablesKiB: pick('pageTablesKiB'),
    perSandbox,
    forkServer,
  };
}

function sum(parts: ProcessMemory[], key: keyof ProcessMemory): number {
  return parts.reduce((total, m) => total + m[key], 0);
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}

const ms = (v: number) => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(3));
const times = (v: number) => (v >= 10 ? `${v.toFixed(0)}×` : `${v.toFixed(1)}×`);
const cpu = (s: LatencySeries) => (s.cpuPerRunMs ? `; CPU/run: node ${s.cpuPerRunMs.nodeMs.toFixed(2)}, fork-server ${s.cpuPerRunMs.serverMs.toFixed(2)}, sandbox ${s.cpuPerRunMs.sandboxesMs.toFixed(2)} ms` : '');
const fails = (s: LatencySeries) => (s.failures > 0 ? `, **${s.failures} failed** (${s.firstError})` : '');

export function formatTable(r: BenchResult): string {
  const z = r.zeroboot;
  const base = z.warm.summary.p50;
  const rows: string[][] = [];
  // Node and shell peers are compared with zeroboot's node and shell rows.
  const baseFor = (name: string) => z.others.find((o) => (o.runtime === 'node' ? /node -e|isolated-vm/ : /sh -c/).test(name))?.warm.summary.p50 ?? base;
  rows.push([
    `zeroboot python \`${CODE}\`, warm pool 8, back to back (n=${z.warm.summary.n})`,
    ms(z.warm.summary.p50),
    ms(z.warm.summary.p99),
    `p90 ${ms(z.warm.summary.p90)}, mean ${ms(z.warm.summary.mean)}, max ${ms(z.warm.summary.max)}; ${z.warm.startedOnEmptyPool} started on an empty pool${cpu(z.warm)}${fails(z.warm)}`,
    '1× (reference)',
  ]);
  rows.push([
    `zeroboot, warm pool 8, paced: ~${PACE_GAP_MS} ms idle between runs (n=${z.paced.summary.n})`,
    ms(z.paced.summary.p50),
    ms(z.paced.summary.p99),
    `p90 ${ms(z.paced.summary.p90)}, mean ${ms(z.paced.summary.mean)}, max ${ms(z.paced.summary.max)}; actual gap p50 ${ms(z.paced.gapMs?.p50 ?? 0)}${cpu(z.paced)}${fails(z.paced)}`,
    times(z.paced.summary.p50 / base),
  ]);
  rows.push([
    `zeroboot, empty pool (pool 0): fork on demand (n=${z.cold.summary.n})`,
    ms(z.cold.summary.p50),
    ms(z.cold.summary.p99),
    `p90 ${ms(z.cold.summary.p90)}, mean ${ms(z.cold.summary.mean)}; fork alone p50 ${ms(z.cold.forkP50Ms)} / p99 ${ms(z.cold.forkP99Ms)}${cpu(z.cold)}${fails(z.cold)}`,
    times(z.cold.summary.p50 / base),
  ]);
  for (const c of z.concurrency) {
    rows.push([
      `zeroboot, ${c.runs} runs, ${c.inFlight} in flight, pool ${c.pool} (per-run latency)`,
      ms(c.summary.p50),
      ms(c.summary.p99),
      `**wall ${ms(c.wallMs)} ms**, ${c.runsPerSecond.toFixed(0)} runs/s${cpu(c)}${fails(c)}`,
      '',
    ]);
  }
  const m = z.memory;
  rows.push([
    `zeroboot, memory per ready sandbox (pool ${m.pool}, ${m.sandboxes} parked)`,
    '',
    '',
    `**USS mean ${m.ussKiB.mean.toFixed(0)} KiB**, p50 ${m.ussKiB.p50} KiB (Private_Dirty ${m.privateDirtyKiB.p50}); PSS ${m.pssKiB.p50}, RSS ${m.rssKiB.p50}, page tables ${m.pageTablesKiB.p50} KiB; fork-server RSS ${m.forkServer ? `${(m.forkServer.rssKiB / 1024).toFixed(1)} MiB` : 'n/a'}`,
    '',
  ]);
  for (const o of z.others) {
    for (const [label, series] of [['back to back', o.warm], [`paced ${PACE_GAP_MS} ms`, o.paced]] as const) {
      rows.push([
        `zeroboot ${o.runtime} \`${o.code}\`, warm pool 8, ${label} (n=${series.summary.n})`,
        ms(series.summary.p50),
        ms(series.summary.p99),
        `p90 ${ms(series.summary.p90)}, mean ${ms(series.summary.mean)}; ${series.startedOnEmptyPool} started on an empty pool${cpu(series)}${fails(series)}`,
        '',
      ]);
    }
  }
  for (const p of r.peers) {
    if (p.unavailable !== undefined) {
      rows.push([p.name, '—', '—', `unavailable: ${p.unavailable}`, 'n/a']);
      continue;
    }
    rows.push([
      `${p.name} (n=${p.summary.n})`,
      ms(p.summary.p50),
      ms(p.summary.p99),
      `p90 ${ms(p.summary.p90)}, mean ${ms(p.summary.mean)}${p.failures > 0 ? `, **${p.failures} failed** (${p.firstError})` : ''}`,
      p.summary.n > 0 ? times(p.summary.p50 / baseFor(p.name)) : 'n/a',
    ]);
  }
  const header = ['what', 'p50 ms', 'p99 ms', 'other', 'vs zeroboot (same runtime, back to back)'];
  const lines = [
    `| ${header.join(' | ')} |`,
    '| --- | ---: | ---: | --- | ---: |',
    ...rows.map((row) => `| ${row.join(' | ')} |`),
  ];
  return lines.join('\n');
}

/** The table, the targets and the conditions, as printed by `pnpm bench`. */
export function formatReport(r: BenchResult): string {
  const e = r.environment;
  const out: string[] = [];
  out.push(`## zeroboot bench${r.quick ? ' (quick: too few runs for a real p99)' : ''}`);
  out.push('');
  out.push(`${e.date} · ${e.cpus} CPUs (${e.cpuModel}) · kernel ${e.kernel} · node ${e.node} · python ${e.python.version} (${e.python.executable}) · ${e.bwrap ?? 'no bwrap'} · cgroup ${e.cgroup} · load ${e.loadAverage.map((l) => l.toFixed(2)).join(' ')}`);
  out.push('');
  out.push(r.table);
  out.push('');
  out.push(formatLayerTable(r.zeroboot.layers));
  out.push('');
  out.push('All times are from TypeScript, call to result: zeroboot through `zb.run()`, peers through `spawnSync()` to exit, isolated-vm from `new Isolate()` to `dispose()` inside a child node. "vs zeroboot": p50 / the warm back-to-back p50.');
  out.push('');
  out.push('### Targets');
  out.push('');
  for (const t of r.targets) {
    const value = t.unit === '×' ? `${t.value.toFixed(1)}×` : t.unit === 'ms' ? `${ms(t.value)} ms` : `${t.value.toFixed(0)} ${t.unit}`;
    out.push(`- ${t.met ? '✅ met' : '❌ missed'}: ${t.name} ${t.goal}: ${value}`);
  }
  const met = r.targets.filter((t) => t.met).length;
  out.push('');
  out.push(`${met}/${r.targets.length} targets met · bench took ${(r.totalMs / 1000).toFixed(1)} s`);
  return out.join('\n');
}

/** One template's rows of the full run: back to back, then paced, from a pool of 8. */
export interface RuntimeRows extends Workload {
  warm: WarmSeries;
  paced: WarmSeries;
}

/**
 * Only the runtime rows (`pnpm bench --runtimes`): python, node and shell, each back to back and paced
 * from a pool of 8, as the full run measures them (python's back-to-back series is as long as there),
 * in ~30 s instead of ~2 min: for comparing changes to a runtime, run after run.
 */
export async function runRuntimeRows(options: Pick<BenchOptions, 'quick' | 'log'> = {}): Promise<RuntimeRows[]> {
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const it = options.quick ? QUICK : FULL;
  const rows: RuntimeRows[] = [];
  for (const work of [PYTHON, ...OTHERS]) {
    const zb = await Zeroboot.start({ templates: { [work.runtime]: { pool: 8 } } });
    try {
      await waitForPool(zb, 8, work.runtime);
      await warmup(zb, it.warmup, work);
      await waitForPool(zb, 8, work.runtime);
      log(`${work.runtime}, warm pool 8: back to back, then paced`);
      const warm = await sequential(zb, work === PYTHON ? it.warm : it.paced, 0, work);
      await waitForPool(zb, 8, work.runtime);
      rows.push({ ...work, warm, paced: await sequential(zb, it.paced, PACE_GAP_MS, work) });
    } finally {
      await zb.close();
    }
  }
  return rows;
}

export function formatRuntimeRows(rows: RuntimeRows[]): string {
  const lines = ['| what | p50 ms | p99 ms | other |', '| --- | ---: | ---: | --- |'];
  for (const o of rows) {
    for (const [label, series] of [['back to back', o.warm], [`paced ${PACE_GAP_MS} ms`, o.paced]] as const) {
      lines.push(`| zeroboot ${o.runtime} \`${o.code}\`, warm pool 8, ${label} (n=${series.summary.n}) | ${ms(series.summary.p50)} | ${ms(series.summary.p99)} | p90 ${ms(series.summary.p90)}, mean ${ms(series.summary.mean)}; ${series.startedOnEmptyPool} started on an empty pool${cpu(series)}${fails(series)} |`);
    }
  }
  return lines.join('\n');
}

async function main(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write('usage: bench [--quick] [--runtimes] [--out FILE | --no-json]\n');
    return 0;
  }
  if (argv.includes('--runtimes')) {
    process.stdout.write(`${formatRuntimeRows(await runRuntimeRows({ quick: argv.includes('--quick') }))}\n`);
    return 0;
  }
  const outIndex = argv.indexOf('--out');
  const outFile = argv.includes('--no-json') ? false : outIndex >= 0 ? argv[outIndex + 1] : undefined;
  const result = await runBench({ quick: argv.includes('--quick'), ...(outFile === undefined ? {} : { outFile }) });
  process.stdout.write(`${formatReport(result)}\n`);
  return 0;
}

function isMain(): boolean {
  const entry = process.argv[1];
  if (!entry) return false;
  try {
    return import.meta.url === pathToFileURL(realpathSync(entry)).href;
  } catch {
    return false;
  }
}

if (isMain()) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (error: unknown) => {
      process.stderr.write(`bench failed: ${(error as Error)?.stack ?? String(error)}\n`);
      process.exitCode = 1;
    },
  );
}
