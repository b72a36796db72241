// The layered filesystem's costs: branch and merge of a sandbox whose workspace holds 1 MB, 50 MB or
// 500 MB, a stack 100 branches deep, and a run on a sandbox beside a one-shot run.
import { Zeroboot } from '../zeroboot.js';
import type { Sandbox } from '../sandbox.js';
import { nowMs, summarize, type Summary } from './measure.js';

export interface LayerRow {
  what: string;
  n: number;
  summary: Summary;
}

export interface LayerBench {
  rows: LayerRow[];
  /** Branch of a 50 MB workspace, p50 (ms): the target is at most 1 ms. */
  branch50MbP50: number;
}

/** [label, files, bytes per file]: many files, as a real workspace has. */
const SIZES: Array<[string, number, number]> = [
  ['1 MB', 100, 10_000],
  ['50 MB', 1000, 50_000],
  ['500 MB', 2000, 250_000],
];

async function fill(sb: Sandbox, files: number, bytes: number): Promise<void> {
  const r = await sb.run('shell', `mkdir -p src && i=0; while [ $i -lt ${files} ]; do head -c ${bytes} /dev/urandom > src/f$i; i=$((i+1)); done`, { timeoutMs: 600_000 });
  if (r.exitCode !== 0) throw new Error(`filling the workspace failed: ${r.stderr}`);
}

async function timed<T>(samples: number[], f: () => Promise<T>): Promise<T> {
  const started = nowMs();
  const value = await f();
  samples.push(nowMs() - started);
  return value;
}

export async function benchLayers(quick: boolean, log: (line: string) => void = () => {}): Promise<LayerBench> {
  const n = quick ? 5 : 30;
  const rows: LayerRow[] = [];
  let branch50MbP50 = Number.NaN;
  const zb = await Zeroboot.start({ templates: { shell: { pool: 4 } }, limits: { diskMb: 1024, memoryMb: 1024, timeoutMs: 600_000 }, maxLimits: { timeoutMs: 600_000 } });
  try {
    for (const [label, files, bytes] of SIZES) {
      if (quick && label === '500 MB') continue;
      log(`layers: filling a ${label} workspace`);
      await using sb = await zb.sandbox();
      await fill(sb, files, bytes);
      await sb.diff(); // the fill's writes are kept in the layer after its result: wait for that
      const branch: number[] = [];
      const merge: number[] = [];
      const step: number[] = [];
      for (let i = 0; i < n; i++) {
        // An agent thinks between steps: the last step's layers are folded meanwhile (the close schedules
        // it). diff() waits for that here, so that branch is timed alone; the step row times it all.
        await sb.diff();
        const started = nowMs();
        const br = await timed(branch, () => sb.branch());
        await br.run('shell', `echo ${i} > src/f${i % files}; echo ${i} > new-${i}`);
        await timed(merge, () => sb.merge(br));
        await br.close();
        step.push(nowMs() - started);
      }
      const b = summarize(branch);
      if (label === '50 MB') branch50MbP50 = b.p50;
      rows.push({ what: `branch, ${label} workspace (${files} files)`, n, summary: b });
      rows.push({ what: `merge of a one-file edit + one new file, ${label} workspace`, n, summary: summarize(merge) });
      rows.push({ what: `agent step: branch + shell run + merge + close, ${label} workspace`, n, summary: summarize(step) });
    }

    log('layers: a stack 100 branches deep');
    await using root = await zb.sandbox();
    await root.files.write('base.txt', 'base');
    const chain: Sandbox[] = [root];
    for (let depth = 1; depth <= 100; depth++) {
      const br = await chain[depth - 1]!.branch();
      await br.files.write(`level-${depth}`, String(depth));
      chain.push(br);
    }
    const deepest = chain[100]!;
    const deepBranch: number[] = [];
    const deepRun: number[] = [];
    for (let i = 0; i < n; i++) {
      const br = await timed(deepBranch, () => deepest.branch());
      await timed(deepRun, () => br.run('shell', 'cat level-100 > /dev/null'));
      await br.close();
    }
    rows.push({ what: 'branch, 100 branches deep', n, summary: summarize(deepBranch) });
    rows.push({ what: 'shell run on a sandbox 101 layers deep', n, summary: summarize(deepRun) });
    const mergeUp: number[] = [];
    for (let depth = 100; depth >= 1; depth--) await timed(mergeUp, () => chain[depth - 1]!.merge(chain[depth]!));
    rows.push({ what: 'merge up a chain 100 deep, one level at a time', n: mergeUp.length, summary: summarize(mergeUp) });
    for (const br of chain.slice(1)) await br.close();

    log('layers: a run on a sandbox beside a one-shot run');
    await using sb = await zb.sandbox();
    const oneShot: number[] = [];
    const onSandbox: number[] = [];
    for (let i = 0; i < n * 4; i++) {
      await timed(oneShot, () => zb.run('shell', 'echo 2'));
      await timed(onSandbox, () => sb.run('shell', 'echo 2'));
    }
    rows.push({ what: 'shell `echo 2`, one-shot (zb.run)', n: oneShot.length, summary: summarize(oneShot) });
    rows.push({ what: 'shell `echo 2` on a sandbox (sb.run: overlay, then its writes kept)', n: onSandbox.length, summary: summarize(onSandbox) });
  } finally {
    await zb.close();
  }
  return { rows, branch50MbP50 };
}

const ms = (v: number) => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(3));

export function formatLayerTable(bench: LayerBench): string {
  const lines = ['| layered filesystem | p50 ms | p99 ms | |', '|---|---:|---:|---|'];
  for (const row of bench.rows) lines.push(`| ${row.what} (n=${row.n}) | ${ms(row.summary.p50)} | ${ms(row.summary.p99)} | p90 ${ms(row.summary.p90)}, mean ${ms(row.summary.mean)} |`);
  return lines.join('\n');
}
