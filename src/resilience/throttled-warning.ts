/**
 * One warning line per interval for something that can happen thousands of times a second (drops,
 * refused activities): the first occurrence is said at once, later ones are counted and said
 * together when the interval is over, so nothing is silent and the log is not flooded.
 *
 * @example
 * const refused = new ThrottledWarning(warn, 10_000, (count, total, sample) =>
 *   `${count} activities refused (${total} in all): ${sample}`);
 * refused.add(1, error.message);
 */
export class ThrottledWarning {
  readonly #warn: (message: string) => void;
  readonly #intervalMs: number;
  readonly #format: (count: number, total: number, sample: string) => string;
  #total = 0;
  #unsaid = 0;
  #sample = '';
  #lastSaidMs = Number.NEGATIVE_INFINITY;
  #timer: NodeJS.Timeout | null = null;

  constructor(
    warn: (message: string) => void,
    intervalMs: number,
    format: (count: number, total: number, sample: string) => string,
  ) {
    this.#warn = warn;
    this.#intervalMs = intervalMs;
    this.#format = format;
  }

  /** Occurrences so far. */
  get total(): number {
    return this.#total;
  }

  add(count: number, sample = ''): void {
    if (count <= 0) return;
    this.#total += count;
    this.#unsaid += count;
    if (this.#unsaid === count) this.#sample = sample;
    const waitMs = this.#lastSaidMs + this.#intervalMs - Date.now();
    if (waitMs <= 0) {
      this.flush();
      return;
    }
    if (this.#timer === null) {
      this.#timer = setTimeout(() => this.flush(), waitMs);
      this.#timer.unref();
    }
  }

  /** Says what was counted and not said yet. */
  flush(): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    if (this.#unsaid === 0) return;
    this.#lastSaidMs = Date.now();
    const count = this.#unsaid;
    this.#unsaid = 0;
    this.#warn(this.#format(count, this.#total, this.#sample));
  }
}
