// zeroboot in a Vercel AI SDK agent loop: generateText with stopWhen, the code tool over a workspace, a failing
// step that never reaches the workspace, and two parallel tool calls that edit the same file (one merges, the
// other is told it conflicted). Run: `node examples/vercel-ai-agent.ts` (offline: a scripted MockLanguageModelV4
// from ai/test plays the model; with OPENAI_API_KEY or ANTHROPIC_API_KEY set, a real model does).
import { Zeroboot, describeStep } from '@zeroboot/core';
import { codeTool } from '@zeroboot/vercel-ai';
import { generateText, isStepCount, type LanguageModel } from 'ai';
import { MockLanguageModelV4 } from 'ai/test';

import { modelSees, ms, realModelChoice } from './lib/report.ts';

const startedAt = performance.now();
await using zb = await Zeroboot.start({ templates: { python: { preload: ['csv', 'json'], pool: 4 }, shell: { pool: 2 } }, limits: { timeoutMs: 5_000 } });
await using workspace = await zb.sandbox();
await workspace.files.write('sales.csv', 'region,amount\nnorth,120\nsouth,80\nnorth,45\n');
console.log(`zeroboot started in ${ms(performance.now() - startedAt)}; workspace holds sales.csv`);

const tools = { run_code: codeTool({ zeroboot: zb, runtimes: ['python', 'shell'], workspace }) };

// The scripted model: one response per step, in order, as a real model would answer.
const call = (id: string, runtime: string, code: string) => ({ type: 'tool-call' as const, toolCallId: id, toolName: 'run_code', input: JSON.stringify({ runtime, code }) });
const usage = { inputTokens: { total: 0, noCache: 0, cacheRead: 0, cacheWrite: 0 }, outputTokens: { total: 0, text: 0, reasoning: 0 } };
const respond = (...content: Array<ReturnType<typeof call> | { type: 'text'; text: string }>) => ({
  content,
  finishReason: { unified: content.some((c) => c.type === 'tool-call') ? ('tool-calls' as const) : ('stop' as const), raw: undefined },
  usage,
  warnings: [],
});
const scripted = new MockLanguageModelV4({
  doGenerate: [
    respond(call('totals', 'python', `
import csv, json
totals = {}
for row in csv.DictReader(open('sales.csv')):
    totals[row['region']] = totals.get(row['region'], 0) + int(row['amount'])
open('report.md', 'w').write('# Sales\\n' + ''.join(f'- {r}: {t}\\n' for r, t in sorted(totals.items())))
print(json.dumps(totals))`)),
    respond(call('bad-cleanup', 'python', "open('sales.csv', 'w').write('')  # truncate the data...\nraise ValueError('...then fail halfway')")),
    respond(
      call('add-total', 'python', "rows = open('report.md').read()\nopen('report.md', 'a').write('- total: 245\\n')\nprint('added the total')"),
      call('add-note', 'shell', "echo '(amounts in EUR)' >> report.md && echo added a note"),
    ),
    respond({ type: 'text', text: 'report.md has the totals per region; one of the two parallel edits was applied, the other conflicted; the failed cleanup left sales.csv untouched.' }),
  ],
});

const choice = realModelChoice({ openai: 'gpt-4.1-mini', anthropic: 'claude-sonnet-4-5' });
let model: LanguageModel = scripted;
if (choice?.provider === 'openai') model = (await import('@ai-sdk/openai')).openai(choice.model);
if (choice?.provider === 'anthropic') model = (await import('@ai-sdk/anthropic')).anthropic(choice.model);
console.log(`model: ${choice ? `${choice.provider} ${choice.model}` : 'scripted (MockLanguageModelV4; set OPENAI_API_KEY or ANTHROPIC_API_KEY for a real one)'}\n`);

let stepStartedAt = performance.now();
const result = await generateText({
  model,
  tools,
  stopWhen: isStepCount(6),
  prompt:
    'sales.csv in the workspace has region,amount rows. Write report.md with the total per region, then in one turn, ' +
    'with two parallel tool calls, add a total line and a note on the currency to report.md.',
  onStepEnd: (step) => {
    console.log(`step ${step.stepNumber + 1} (${ms(performance.now() - stepStartedAt)}):`);
    for (const part of step.content) {
      if (part.type === 'tool-result' && !part.dynamic) {
        const { result: run, changes, merged, conflicts } = part.output;
        const outcome = conflicts.length > 0 ? 'conflict, not applied' : merged ? 'merged' : changes.length > 0 ? 'discarded' : 'no changes';
        console.log(`  ${part.toolName}(${part.input.runtime}) ${part.toolCallId}: exit ${run.exitCode}, run ${ms(run.durationMs)}, ${outcome}`);
        console.log(modelSees(describeStep(part.output))); // what the tool's toModelOutput gives the model
      } else if (part.type === 'tool-error') {
        console.log(`  ${part.toolName} ${part.toolCallId}: error ${String(part.error)}`);
      } else if (part.type === 'text' && part.text) {
        console.log(`  model: ${part.text}`);
      }
    }
    stepStartedAt = performance.now();
  },
});

console.log(`\n${result.steps.length} steps in ${ms(performance.now() - startedAt)} since start`);
console.log(`workspace report.md:\n${modelSees(await workspace.files.read('report.md', 'utf8').catch(() => '(none)'))}`);
console.log(`workspace sales.csv still has ${(await workspace.files.read('sales.csv', 'utf8')).trim().split('\n').length - 1} rows`);
