// What the agent examples print: each tool call with the text the model read back, and timings.
export const ms = (n: number) => `${n.toFixed(1)} ms`;

/** Indents the text the model reads, so it stands apart from the example's own lines. */
export function modelSees(text: string): string {
  return text
    .split('\n')
    .map((line) => `      | ${line}`)
    .join('\n');
}

/** `ZEROBOOT_MODEL` or the provider's default, when a provider key is set; undefined: the scripted model. */
export function realModelChoice(defaults: { openai: string; anthropic: string }): { provider: 'openai' | 'anthropic'; model: string } | undefined {
  if (process.env.OPENAI_API_KEY) return { provider: 'openai', model: process.env.ZEROBOOT_MODEL ?? defaults.openai };
  if (process.env.ANTHROPIC_API_KEY) return { provider: 'anthropic', model: process.env.ZEROBOOT_MODEL ?? defaults.anthropic };
  return undefined;
}
