export { createCodeTool, type CodeToolArtifact, type CodeToolErrorArtifact, type CodeToolOptions } from './code-tool.js';
export { ZerobootSandbox, type ZerobootSandboxOptions } from './zeroboot-sandbox.js';
