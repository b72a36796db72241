// Checks the agent-loop tests share, made from outside through the public API: which branches a code tool made
// of a workspace (and that each was closed), and that aborting an agent mid-call kills the call's processes.
import type { Sandbox } from '@zeroboot/core';
import { expect } from 'vitest';

import { eventually, zerobootError, type Marker } from '../helpers.js';

/** Starts the agent, aborts it once `sleeper` (started by the call's code) runs, and expects a prompt rejection with the sleeper gone. */
export async function expectAbortKillsCall(start: (signal: AbortSignal) => Promise<unknown>, sleeper: Marker): Promise<void> {
  const controller = new AbortController();
  const started = performance.now();
  const pending = start(controller.signal);
  pending.catch(() => {}); // awaited below; a failed wait must not leave it unhandled
  expect(await eventually(() => sleeper.find().length === 1, 5_000)).toBe(true);
  controller.abort();
  await expect(pending).rejects.toThrow();
  expect(performance.now() - started).toBeLessThan(5_000);
  expect(await eventually(() => sleeper.gone(), 2_000)).toBe(true);
}

export function trackBranches(workspace: Sandbox): { made: Sandbox[]; expectAllClosed(count: number): Promise<void> } {
  const made: Sandbox[] = [];
  const branch = workspace.branch.bind(workspace);
  workspace.branch = async () => {
    const made_ = await branch();
    made.push(made_);
    return made_;
  };
  return {
    made,
    async expectAllClosed(count) {
      expect(made).toHaveLength(count);
      for (const b of made) expect((await zerobootError(b.diff())).code).toBe('SANDBOX_CLOSED');
    },
  };
}
