/** What this process knows about one segment it wrote or claimed. */
export interface SegmentProgress {
  /** Records written to it (own segments) or found in it (claimed ones). */
  records: number;
  /** Records confirmed written by replay, so a retried pass resumes after them. */
  replayed: number;
  corruptReported: boolean;
  /**
   * A write to it failed part-way (a full disk) and its tail could not be cut off again: replay
   * finds a damaged record there whose activities were never reported as spooled.
   */
  failedWriteTail: boolean;
  /** Written in full by a holding replay, kept until it is released or rewound. */
  held: boolean;
}

/** The segments this process is responsible for, and how far replay got in each. */
export class SpoolSegmentLedger {
  readonly #segments = new Map<string, SegmentProgress>();

  get(name: string): SegmentProgress | undefined {
    return this.#segments.get(name);
  }

  /** Starts tracking `name`, holding `records` none of which are replayed yet. */
  track(name: string, records: number): SegmentProgress {
    const progress: SegmentProgress = {
      records,
      replayed: 0,
      corruptReported: false,
      failedWriteTail: false,
      held: false,
    };
    this.#segments.set(name, progress);
    return progress;
  }

  forget(name: string): void {
    this.#segments.delete(name);
  }

  names(): string[] {
    return [...this.#segments.keys()];
  }

  /** Records written or claimed and not yet replayed. */
  pending(): number {
    let pending = 0;
    for (const progress of this.#segments.values())
      pending += Math.max(0, progress.records - progress.replayed);
    return pending;
  }

  /** Segments a holding replay wrote in full. */
  held(): string[] {
    return [...this.#segments].filter(([, progress]) => progress.held).map(([name]) => name);
  }

  /**
   * Segments of ours that are no longer in the directory were claimed by another process (this one
   * stalled past the owner timeout) or removed by hand: they are no longer ours to replay, and
   * counting them as pending would keep replay running for nothing. Only segments `known` before
   * the directory was read are forgotten: one made while it was read is not `present`.
   */
  forgetVanished(
    known: readonly string[],
    present: ReadonlySet<string>,
    activeName: string | undefined,
  ): void {
    for (const name of known) {
      if (name !== activeName && !present.has(name)) this.#segments.delete(name);
    }
  }
}
