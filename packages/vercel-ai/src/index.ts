export { codeTool, type CodeToolOptions, type CodeToolOutput } from './code-tool.js';
export { createSandboxSession, type SandboxSessionOptions } from './sandbox-session.js';
