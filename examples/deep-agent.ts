// zeroboot as a Deep Agents backend: createDeepAgent with ZerobootSandbox, so the agent's ls, read_file,
// write_file, edit_file, glob, grep and execute tools all work inside one zeroboot sandbox, whose files persist
// across the agent's calls. Run: `node examples/deep-agent.ts` (offline: LangChain's scripted fakeModel plays the
// model; with OPENAI_API_KEY or ANTHROPIC_API_KEY set, a real model does).
import { AIMessage, ToolMessage } from '@langchain/core/messages';
import { fakeModel } from '@langchain/core/testing';
import { Zeroboot } from '@zeroboot/core';
import { ZerobootSandbox } from '@zeroboot/langchain/deep-agents';
import { createDeepAgent } from 'deepagents';

import { modelSees, ms, realModelChoice } from './lib/report.ts';

const startedAt = performance.now();
await using zb = await Zeroboot.start({ templates: { python: { pool: 2 }, shell: { pool: 4 } }, limits: { timeoutMs: 10_000 } });
await using sandbox = await zb.sandbox();
const backend = new ZerobootSandbox(sandbox);
console.log(`zeroboot started in ${ms(performance.now() - startedAt)}; the agent's backend is ${backend.id}`);

const app = 'def greet(name):\n    return "hello " + name\n\nprint(greet("zeroboot"))\n';
const scripted = fakeModel()
  .respondWithTools([{ name: 'write_file', args: { file_path: '/workspace/app.py', content: app } }])
  .respondWithTools([{ name: 'execute', args: { command: 'python3 /workspace/app.py' } }])
  .respondWithTools([{ name: 'edit_file', args: { file_path: '/workspace/app.py', old_string: '"hello "', new_string: '"hi, "' } }])
  .respondWithTools([
    { name: 'ls', args: { path: '/workspace' } },
    { name: 'glob', args: { pattern: '**/*.py', path: '/workspace' } },
    { name: 'grep', args: { pattern: 'def ', path: '/workspace' } },
  ])
  .respondWithTools([{ name: 'read_file', args: { file_path: '/workspace/app.py' } }])
  .respondWithTools([{ name: 'execute', args: { command: 'cd /workspace && python3 app.py' } }])
  .respond(new AIMessage('app.py now greets with "hi, zeroboot".'));

const choice = realModelChoice({ openai: 'gpt-4.1-mini', anthropic: 'claude-sonnet-4-5' });
console.log(`model: ${choice ? `${choice.provider} ${choice.model}` : 'scripted (fakeModel from @langchain/core/testing)'}\n`);
const agent = createDeepAgent({
  model: choice ? `${choice.provider}:${choice.model}` : scripted,
  backend,
  systemPrompt: 'You work in a sandbox: keep your files under /workspace (the rest of the filesystem is read-only) and use execute to run them.',
});

const agentStartedAt = performance.now();
const { messages } = await agent.invoke({ messages: [{ role: 'user', content: 'Write app.py that greets zeroboot, run it, then change the greeting to "hi, " and run it again.' }] });
for (const message of messages) {
  if (ToolMessage.isInstance(message)) {
    console.log(`${message.name}: ${message.status ?? 'success'}`);
    console.log(modelSees(message.text));
  } else if (AIMessage.isInstance(message) && !message.tool_calls?.length) {
    console.log(`model: ${message.content}`);
  }
}
console.log(`\nagent finished in ${ms(performance.now() - agentStartedAt)}`);
console.log(`sandbox /workspace/app.py:\n${modelSees(await sandbox.files.read('app.py', 'utf8'))}`);
