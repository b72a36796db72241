// Runs the run request's libFuzzer harness (request-fuzzer.c, built by scripts/fuzz.sh) for a fixed number
// of inputs, from seeds the SDK's own encoder makes: every kind of field, as zeroboot.ts and sandbox.ts send
// them. A crash, a sanitizer report or a broken promise fails the test, with the input that did it.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { expect, test } from 'vitest';

import { FileOp, encodeRequest, memfdRequestHeader, type RequestParts } from '../../packages/core/src/native-protocol.js';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));

/** How many inputs CI runs: ~10 s on one core of the CI machines. */
const RUNS = 1_000_000;

const SEEDS: Record<string, RequestParts> = {
  'run-code': { code: 'print(1 + 1)\n' },
  'run-everything': {
    code: 'import sys\nprint(sys.stdin.read())',
    env: { A: '1', QUOTED: "it's 'quoted' \\ $HOME `x`", EMPTY: '' },
    stdin: new Uint8Array([0, 1, 2, 255]),
    files: { 'data.csv': 'a,b\n1,2\n', '/tmp/abs': new Uint8Array([0, 0, 10]), 'dir/sub/x': '' },
  },
  'sandbox-run': { code: 'echo hi', layers: { names: ['top-1', 'frozen-2', 'base'], diskBytes: 256 << 20 } },
  'file-write': { fileOp: { op: FileOp.WRITE, path: '/workspace/a.txt' }, files: { '/workspace/a.txt': 'text' }, layers: { names: ['l1', 'base'], diskBytes: 1 << 20 } },
  'file-read': { fileOp: { op: FileOp.READ, path: '/workspace/dir/a' }, layers: { names: ['l1', 'base'], diskBytes: 0 } },
  'file-list': { fileOp: { op: FileOp.LIST, path: '/' }, layers: { names: ['base'], diskBytes: 0 } },
  'file-remove': { fileOp: { op: FileOp.REMOVE, path: '/tmp/x' }, layers: { names: ['l', 'base'], diskBytes: 0 } },
  'file-stat': { fileOp: { op: FileOp.STAT, path: '/workspace' }, layers: { names: ['base'], diskBytes: 0 } },
};

test(`the request decoders survive ${RUNS.toLocaleString('en')} fuzzed requests (libFuzzer, ASan, UBSan)`, () => {
  const work = mkdtempSync(join(tmpdir(), 'zb-fuzz-'));
  try {
    const corpus = join(work, 'corpus');
    const artifacts = join(work, 'artifacts');
    for (const dir of [corpus, artifacts]) spawnSync('mkdir', ['-p', dir]);
    for (const [name, parts] of Object.entries(SEEDS)) {
      const request = encodeRequest(parts);
      writeFileSync(join(corpus, name), request);
      writeFileSync(join(corpus, `${name}.memfd-header`), memfdRequestHeader(request));
    }
    const fuzz = spawnSync(
      'bash',
      ['scripts/fuzz.sh', `-runs=${RUNS}`, '-seed=1', '-max_len=4096', '-print_final_stats=1', `-artifact_prefix=${artifacts}/`, corpus],
      { cwd: repoRoot, encoding: 'utf8', timeout: 240_000, maxBuffer: 64 << 20 },
    );
    const output = `${fuzz.stdout}${fuzz.stderr}`;
    const crashes = readdirSync(artifacts).map((name) => `${name}: ${readFileHex(join(artifacts, name))}`);
    const executed = Number(/stat::number_of_executed_units:\s*(\d+)/.exec(output)?.[1] ?? 0);
    console.log(`request fuzzer: ${executed} inputs, ${/cov: \d+ ft: \d+/.exec(output.split('\n').filter((l) => l.includes('DONE')).at(-1) ?? '')?.[0] ?? 'no coverage line'}`);
    expect(crashes, output.slice(-6000)).toEqual([]);
    expect(fuzz.status, output.slice(-6000)).toBe(0);
    expect(executed).toBeGreaterThanOrEqual(RUNS);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}, 300_000);

function readFileHex(path: string): string {
  return spawnSync('xxd', ['-p', path], { encoding: 'utf8' }).stdout.replaceAll('\n', '').slice(0, 2000);
}
