/**
 * A count per wall-clock second over the last `seconds` seconds, in a fixed ring: adding is O(1)
 * and memory never grows, whatever the rate. Sums over any trailing span up to `seconds`.
 *
 * @example
 * const stored = new SecondBuckets(300);
 * stored.add(500, Date.now());
 * const perSecond = stored.sum(60, Date.now()) / 60;
 */
export class SecondBuckets {
  readonly seconds: number;
  readonly #counts: Float64Array;
  readonly #stamps: Float64Array;

  constructor(seconds: number) {
    this.seconds = seconds;
    this.#counts = new Float64Array(seconds);
    this.#stamps = new Float64Array(seconds).fill(-1);
  }

  add(value: number, nowMs: number): void {
    const second = Math.floor(nowMs / 1000);
    const slot = second % this.seconds;
    if (this.#stamps[slot] !== second) {
      this.#stamps[slot] = second;
      this.#counts[slot] = 0;
    }
    this.#counts[slot]! += value;
  }

  /** Total over the last `lastSeconds` seconds, the current (partial) second included. */
  sum(lastSeconds: number, nowMs: number): number {
    const second = Math.floor(nowMs / 1000);
    const oldest = second - Math.min(lastSeconds, this.seconds) + 1;
    let total = 0;
    for (let slot = 0; slot < this.seconds; slot++) {
      const stamp = this.#stamps[slot]!;
      if (stamp >= oldest && stamp <= second) total += this.#counts[slot]!;
    }
    return total;
  }
}
