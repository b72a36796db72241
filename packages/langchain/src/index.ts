export { createCodeTool, type CodeToolArtifact, type CodeToolErrorArtifact, type CodeToolOptions } from './code-tool.js';
// ZerobootSandbox, the Deep Agents backend, is imported from '@zeroboot/langchain/deep-agents'.
