// Every pair of edits two sides can make from one base (adds, edits, deletions, a directory replaced, emptied,
// turned into a file or a symlink, moved, modes changed, nested changes), merged with onConflict 'fail', against a
// 3-way reference: a path both sides changed differently, or a change below a directory the other side took away,
// must be reported and leave this sandbox untouched; otherwise the result is, path by path, whichever side changed it.
// Reporting a conflict the reference does not see is allowed (conflicts are found per directory, so they are
// coarser); anything else (a file lost, a deleted directory back) fails.
import { isDeepStrictEqual } from 'node:util';

import { expect, test } from 'vitest';

import { sharedZeroboot } from '../../../test/helpers.js';
import type { Sandbox } from '../src/index.js';

const zb = sharedZeroboot({ templates: { python: { pool: 1 }, shell: { pool: 1 } }, limits: { diskMb: 16 } });

type Snapshot = Record<string, string>;

const SNAPSHOT = `
import os, json, stat
out = {}
for root, dirs, files in os.walk('.', followlinks=False):
    for n in dirs + files:
        p = os.path.join(root, n)[2:]
        st = os.lstat(p)
        m = stat.S_IMODE(st.st_mode)
        if stat.S_ISDIR(st.st_mode): out[p] = 'd:%o' % m
        elif stat.S_ISLNK(st.st_mode): out[p] = 'l:' + os.readlink(p)
        elif stat.S_ISREG(st.st_mode): out[p] = 'f:%o:' % m + open(p).read().strip()
        else: out[p] = 'o'
print(json.dumps(out, sort_keys=True))
`;

const BASE = 'echo base > f; echo g > g; mkdir -p d/sub e; echo a > d/a; echo b > d/sub/b; echo x > e/x; ln -s f l';
const EDITS: Record<string, (side: string) => string> = {
  nothing: () => 'true',
  'add in d': (s) => `echo ${s} > d/new_${s}`,
  'add d/same': (s) => `echo ${s} > d/same`,
  'edit d/a': (s) => `echo ${s} > d/a`,
  'rm d/a': () => 'rm d/a',
  'rm -r d': () => 'rm -rf d',
  'replace d': (s) => `rm -rf d; mkdir d; echo ${s} > d/r`,
  'empty d (rm -r, mkdir)': () => 'rm -rf d; mkdir d',
  'd becomes a file': (s) => `rm -rf d; echo ${s} > d`,
  'd becomes a symlink': () => 'rm -rf d; ln -s /etc d',
  'f becomes a directory': (s) => `rm f; mkdir f; echo ${s} > f/in`,
  'relink l': () => 'ln -sfn g l',
  'chmod d/a': () => 'chmod 600 d/a',
  'chmod d': () => 'chmod 700 d',
  'add deep in d/sub': (s) => `mkdir -p d/sub/deep; echo ${s} > d/sub/deep/n`,
  'edit d/sub/b': (s) => `echo ${s} > d/sub/b`,
  'rm -r d/sub': () => 'rm -rf d/sub',
  'replace d/sub': (s) => `rm -rf d/sub; mkdir d/sub; echo ${s} > d/sub/q`,
  'mv d d2': () => 'mv d d2',
};

async function snapshot(sb: Sandbox): Promise<Snapshot> {
  const r = await sb.run('python', SNAPSHOT);
  expect(r.exitCode, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as Snapshot;
}

async function edit(sb: Sandbox, code: string): Promise<void> {
  const r = await sb.run('shell', `set -e; ${code}`);
  expect(r.exitCode, `${code}: ${r.stderr}`).toBe(0);
}

/** The 3-way result path by path, and whether the reference sees a conflict (a path or a parent that is gone). */
function reference(base: Snapshot, ours: Snapshot, theirs: Snapshot): { result: Snapshot; conflict: boolean } {
  const result: Snapshot = {};
  let conflict = false;
  for (const path of new Set([...Object.keys(base), ...Object.keys(ours), ...Object.keys(theirs)])) {
    const [b, o, t] = [base[path], ours[path], theirs[path]];
    const value = o === t || t === b ? o : o === b ? t : undefined;
    if (o !== t && t !== b && o !== b) conflict = true;
    if (value !== undefined) result[path] = value;
  }
  for (const path of Object.keys(result)) {
    const parent = path.includes('/') ? path.slice(0, path.lastIndexOf('/')) : undefined;
    if (parent !== undefined && !result[parent]?.startsWith('d:')) conflict = true;
  }
  return { result, conflict };
}

test('merge against a 3-way reference: every pair of edits of two sides, nothing lost or brought back', async () => {
  const root = await zb().sandbox();
  try {
    await edit(root, BASE);
    const base = await snapshot(root);
    const wrong: string[] = [];
    for (const [oursName, oursEdit] of Object.entries(EDITS)) {
      for (const [theirsName, theirsEdit] of Object.entries(EDITS)) {
        const ours = await root.branch();
        const theirs = await ours.branch();
        try {
          await edit(ours, oursEdit('ours'));
          await edit(theirs, theirsEdit('theirs'));
          const [o, t] = [await snapshot(ours), await snapshot(theirs)];
          const expected = reference(base, o, t);
          const merged = await ours.merge(theirs);
          const now = await snapshot(ours);
          const pair = `ours ${oursName} / theirs ${theirsName}`;
          if (merged.conflicts.length > 0) {
            if (!isDeepStrictEqual(now, o)) wrong.push(`${pair}: a conflict was reported, but this side changed`);
          } else if (expected.conflict) wrong.push(`${pair}: no conflict reported`);
          else if (!isDeepStrictEqual(now, expected.result)) {
            wrong.push(`${pair}: got ${JSON.stringify(now)}, want ${JSON.stringify(expected.result)}`);
          }
        } finally {
          await theirs.close();
          await ours.close();
        }
      }
    }
    expect(wrong).toEqual([]);
  } finally {
    await root.close();
  }
}, 180_000);
