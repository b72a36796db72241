// A workspace sandbox, O(1) branches, diff and merge, the way an agent should try things: a step's changes go
// back only if it succeeded, and two steps that touch the same file conflict instead of silently overwriting.
// runStep is the same step the LangChain and AI SDK code tools run. Run: `node examples/branch-merge.ts`.
import { Zeroboot, describeStep, runStep } from '@zeroboot/core';

import { modelSees, ms } from './lib/report.ts';

await using zb = await Zeroboot.start({ templates: { python: { pool: 4 }, shell: { pool: 2 } }, limits: { timeoutMs: 5_000 } });
await using workspace = await zb.sandbox();
await workspace.files.write('config.json', '{"retries": 1}\n');
await workspace.files.write('data/big.bin', new Uint8Array(20 << 20)); // 20 MB: branching does not copy it

// 1. A branch by hand: O(1), whatever the workspace holds. (A write is folded into the workspace's layer at its
//    next call; list once so the timing below is the branch alone.)
await workspace.files.list('.');
let t = performance.now();
const trial = await workspace.branch();
console.log(`branch of a 20 MB workspace: ${ms(performance.now() - t)}`);
await trial.run('python', 'import json; c = json.load(open("config.json")); c["retries"] = 3; json.dump(c, open("config.json", "w"))');
await trial.files.write('notes.md', 'tried 3 retries\n');
console.log('diff of the branch:', JSON.stringify(await trial.diff()));
t = performance.now();
const merged = await workspace.merge(trial);
console.log(`merged ${merged.applied.length} changes in ${ms(performance.now() - t)}; config.json is now ${(await workspace.files.read('config.json', 'utf8')).trim()}`);
await trial.close();

// 2. Two branches that edit the same file: the first merge wins, the second conflicts and applies nothing
//    (onConflict 'fail', the default), or settles it with 'ours' / 'theirs'.
const [left, right] = [await workspace.branch(), await workspace.branch()];
await left.files.write('notes.md', 'left was here\n');
await right.files.write('notes.md', 'right was here\n');
await right.files.write('right-only.txt', 'also from right\n');
console.log('\nmerge left:', JSON.stringify(await workspace.merge(left)));
console.log('merge right:', JSON.stringify(await workspace.merge(right)), '-> nothing applied');
console.log("merge right with onConflict 'theirs':", JSON.stringify(await workspace.merge(right, { onConflict: 'theirs' })));
console.log(`notes.md: ${JSON.stringify(await workspace.files.read('notes.md', 'utf8'))}`);
await left.close();
await right.close();

// 3. runStep: branch, run, diff, merge per policy, close; what the adapters' tools do for each call.
for (const [label, code] of [
  ['a step that succeeds', 'open("notes.md", "a").write("step ok\\n"); print("appended")'],
  ['a step that fails', 'open("notes.md", "w").write("clobbered"); raise SystemExit("failed after writing")'],
] as const) {
  t = performance.now();
  const step = await runStep(zb, { runtime: 'python', code, workspace, merge: 'on-success' });
  console.log(`\n${label}: ${ms(performance.now() - t)} (branch, run, diff, merge, close); the model would read:`);
  console.log(modelSees(describeStep(step)));
}
console.log(`\nnotes.md: ${JSON.stringify(await workspace.files.read('notes.md', 'utf8'))}`);
