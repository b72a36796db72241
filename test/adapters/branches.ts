// Which branches a code tool made of a workspace, so a test can check from outside (through the public API)
// that every one of them was closed.
import type { Sandbox } from '@zeroboot/core';
import { expect } from 'vitest';

import { zerobootError } from '../helpers.js';

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
