/** A fixed-size ring of recent measurements, with percentiles. */
export class Samples {
  #values: number[] = [];
  #next = 0;
  readonly #capacity: number;

  constructor(capacity: number) {
    this.#capacity = capacity;
  }

  add(value: number): void {
    if (this.#values.length < this.#capacity) this.#values.push(value);
    else this.#values[this.#next] = value;
    this.#next = (this.#next + 1) % this.#capacity;
  }

  get count(): number {
    return this.#values.length;
  }

  /** The p-th percentile (0-100), nearest rank; 0 when empty. */
  percentile(p: number): number {
    return percentile(this.#values, p);
  }
}

export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}
