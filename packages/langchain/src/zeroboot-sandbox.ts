// A Deep Agents backend over a zeroboot Sandbox. BaseSandbox builds ls, read, write, edit, glob and grep
// from execute, uploadFiles and downloadFiles; here they are a shell run and the files API over the
// sandbox's persistent filesystem. Its own entry point, @zeroboot/langchain/deep-agents: deepagents is an
// optional peer dependency and takes ~500 ms to load, which the code tool's users should not pay.
import { constants } from 'node:os';

import { ZerobootError, assertSandbox, shellExitCode, timeoutNote, type Sandbox } from '@zeroboot/core';
import { BaseSandbox, type ExecuteResponse, type FileDownloadResponse, type FileOperationError, type FileUploadResponse } from 'deepagents';

export interface ZerobootSandboxOptions {
  /** The template commands run in: a shell template (bash where the system has it, else sh). Default: 'shell'. */
  runtime?: string;
  /** Each command's wall-clock limit. Default: the instance's `limits.timeoutMs`. */
  timeoutMs?: number;
}

/**
 * `createDeepAgent({ backend: new ZerobootSandbox(await zb.sandbox()) })`, from `@zeroboot/langchain/deep-agents`:
 * the agent's file tools and its `execute` tool work inside the sandbox. Paths are absolute inside it;
 * /workspace and /tmp are writable. Closing the Sandbox is the caller's job.
 */
export class ZerobootSandbox extends BaseSandbox {
  readonly id: string;
  readonly sandbox: Sandbox;
  readonly #runtime: string;
  readonly #timeoutMs: number | undefined;

  constructor(sandbox: Sandbox, options: ZerobootSandboxOptions = {}) {
    super();
    assertSandbox(sandbox);
    this.sandbox = sandbox;
    this.id = `zeroboot-${sandbox.id}`;
    this.#runtime = options.runtime ?? 'shell';
    this.#timeoutMs = options.timeoutMs;
  }

  async execute(command: string): Promise<ExecuteResponse> {
    // One buffer for both streams, in the order they arrive: what a terminal would show.
    const output: string[] = [];
    const result = await this.sandbox.run(this.#runtime, command, {
      ...(this.#timeoutMs === undefined ? {} : { timeoutMs: this.#timeoutMs }),
      onStdout: (chunk) => output.push(chunk),
      onStderr: (chunk) => output.push(chunk),
    });
    output.push(timeoutNote(result));
    return { output: output.join(''), exitCode: shellExitCode(result), truncated: result.truncated };
  }

  async uploadFiles(files: Array<[string, Uint8Array]>): Promise<FileUploadResponse[]> {
    const responses: FileUploadResponse[] = [];
    for (const [path, content] of files) {
      try {
        await this.sandbox.files.write(path, content);
        responses.push({ path, error: null });
      } catch (error) {
        responses.push({ path, error: fileError(error) });
      }
    }
    return responses;
  }

  async downloadFiles(paths: string[]): Promise<FileDownloadResponse[]> {
    const responses: FileDownloadResponse[] = [];
    for (const path of paths) {
      try {
        responses.push({ path, content: await this.sandbox.files.read(path), error: null });
      } catch (error) {
        responses.push({ path, content: null, error: fileError(error) });
      }
    }
    return responses;
  }
}

/**
 * Deep Agents' per-file error codes. A full disk is one too (the closest of the four: that file was refused), so
 * one file past the quota does not lose the answers for the files already written. Anything else (a closed
 * sandbox, a fork-server gone) is about the sandbox, not a file: thrown.
 */
function fileError(error: unknown): FileOperationError {
  if (!ZerobootError.isInstance(error)) throw error;
  switch (error.code) {
    case 'DISK_QUOTA_EXCEEDED':
      return 'permission_denied';
    case 'FILE_NOT_FOUND':
      return 'file_not_found';
    case 'PATH_OUTSIDE_SANDBOX':
      return 'invalid_path';
    case 'INVALID_ARGUMENT':
      if (error.errno === constants.errno.EISDIR) return 'is_directory';
      if (error.errno !== undefined && [constants.errno.EROFS, constants.errno.EACCES, constants.errno.EPERM].includes(error.errno)) return 'permission_denied';
      return 'invalid_path';
    default:
      throw error;
  }
}
