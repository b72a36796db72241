// zeroboot in a LangChain agent: createAgent with the code tool over a workspace. A failing step never reaches
// the workspace; two parallel calls edit the same file, one merges and the other is told it conflicted.
// Run: `node examples/langchain-agent.ts` (offline: LangChain's scripted fakeModel plays the model; with
// OPENAI_API_KEY or ANTHROPIC_API_KEY set, a real model does).
import { AIMessage, ToolMessage } from '@langchain/core/messages';
import { fakeModel } from '@langchain/core/testing';
import { Zeroboot } from '@zeroboot/core';
import { createCodeTool, type CodeToolArtifact } from '@zeroboot/langchain';
import { createAgent } from 'langchain';

import { modelSees, ms, realModelChoice } from './lib/report.ts';

const startedAt = performance.now();
await using zb = await Zeroboot.start({ templates: { python: { pool: 4 }, shell: { pool: 2 } }, limits: { timeoutMs: 5_000 } });
await using workspace = await zb.sandbox();
await workspace.files.write('todo.txt', 'write tests\nship it\n');
console.log(`zeroboot started in ${ms(performance.now() - startedAt)}; workspace holds todo.txt`);

const runCode = createCodeTool({ zeroboot: zb, runtimes: ['python', 'shell'], workspace });

// The scripted model: one response per model call, in order.
const scripted = fakeModel()
  .respondWithTools([{ name: 'run_code', id: 'count', args: { runtime: 'shell', code: 'wc -l < todo.txt; sort todo.txt > sorted.txt' } }])
  .respondWithTools([{ name: 'run_code', id: 'oops', args: { runtime: 'python', code: "open('todo.txt', 'w').write('')\nimport sys; sys.exit('gave up halfway')" } }])
  .respondWithTools([{ name: 'run_code', id: 'bad-input', args: { runtime: 'ruby', code: 'puts 1' } }])
  .respondWithTools([
    { name: 'run_code', id: 'done-1', args: { runtime: 'python', code: "open('sorted.txt', 'a').write('celebrate\\n')" } },
    { name: 'run_code', id: 'done-2', args: { runtime: 'shell', code: 'echo "rest" >> sorted.txt' } },
  ])
  // Which of the two parallel edits merges first is a race: the answer does not claim either.
  .respond(new AIMessage('sorted.txt has the sorted list plus one of the two new items; the other parallel edit conflicted and was not applied.'));

const choice = realModelChoice({ openai: 'gpt-4.1-mini', anthropic: 'claude-sonnet-4-5' });
const model = choice ? `${choice.provider}:${choice.model}` : scripted;
console.log(`model: ${choice ? `${choice.provider} ${choice.model}` : "scripted (fakeModel from @langchain/core/testing; set OPENAI_API_KEY or ANTHROPIC_API_KEY for a real one)"}\n`);

const agent = createAgent({ model, tools: [runCode] });
const agentStartedAt = performance.now();
const { messages } = await agent.invoke({
  messages: [{ role: 'user', content: 'Count the items in todo.txt, write them sorted to sorted.txt, then add two more items with two parallel calls.' }],
});

for (const message of messages) {
  if (ToolMessage.isInstance(message)) {
    // An error ToolMessage (bad input, or a call that failed on the host) has no StepResult as its artifact.
    const step = message.status === 'error' ? undefined : (message.artifact as CodeToolArtifact);
    const outcome = !step ? 'no result' : step.conflicts.length > 0 ? 'conflict, not applied' : step.merged ? 'merged' : step.changes.length > 0 ? 'discarded' : 'no changes';
    console.log(`${message.name} ${message.tool_call_id}: ${message.status ?? 'success'}${step ? `, exit ${step.result.exitCode}, run ${ms(step.result.durationMs)}` : ''}, ${outcome}`);
    console.log(modelSees(String(message.content)));
  } else if (AIMessage.isInstance(message) && !message.tool_calls?.length) {
    console.log(`model: ${message.content}`);
  }
}
console.log(`\nagent finished in ${ms(performance.now() - agentStartedAt)} (${messages.length} messages)`);
console.log(`workspace sorted.txt:\n${modelSees(await workspace.files.read('sorted.txt', 'utf8'))}`);
console.log(`workspace todo.txt: ${JSON.stringify(await workspace.files.read('todo.txt', 'utf8'))}`);
