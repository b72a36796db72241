import { existsSync } from 'node:fs';
import { addonPath } from '@zeroboot/native';
import { expect, test } from 'vitest';

test('the native build produced the addon that @zeroboot/native points at', () => {
  expect(addonPath).toMatch(/\.node$/);
  expect(existsSync(addonPath)).toBe(true);
});
