import { ActivityLogError } from '../core/errors.js';

/**
 * Tells when a write has gone unanswered for longer than `slowWriteMs`
 * (`ACTIVITY_LOG_SLOW_WRITE_MS`), and counts the writes outstanding past it, so a `ResilientSink`
 * sends new batches to the spool while its destination hangs. Off (never slow) when
 * `slowWriteMs` is null.
 *
 * @example
 * const watch = new SlowWriteWatch(2000);
 * if (await watch.isSlow(attempt)) watch.holdSlow(); // released once `attempt` is settled
 */
export class SlowWriteWatch {
  readonly slowWriteMs: number | null;
  #slowWrites = 0;

  constructor(slowWriteMs: number | null) {
    this.slowWriteMs = slowWriteMs;
  }

  /** True while some write (live or replayed) has been outstanding for longer than `slowWriteMs`. */
  get anySlow(): boolean {
    return this.#slowWrites > 0;
  }

  /**
   * Resolves with true once `work` has been outstanding for `slowWriteMs`, with false once it
   * settles first; null when the watch is off. Counts nothing: see {@link holdSlow}.
   */
  isSlow(work: Promise<unknown>): Promise<boolean> | null {
    return this.slowWriteMs === null ? null : whenSlow(work, this.slowWriteMs).isSlow;
  }

  /**
   * Counts one write as slow until the returned function is called, which says whether no write
   * is slow any more.
   */
  holdSlow(): () => boolean {
    this.#slowWrites++;
    return () => {
      this.#slowWrites--;
      return this.#slowWrites === 0;
    };
  }

  /**
   * Counts `work` as slow from the moment it has been outstanding for `slowWriteMs` until the
   * returned function is called (once `work` has settled).
   */
  countWhileSlow(work: Promise<unknown>): () => void {
    if (this.slowWriteMs === null) return () => undefined;
    const slow = whenSlow(work, this.slowWriteMs);
    let release: (() => boolean) | null = null;
    void slow.isSlow.then((isSlow) => {
      if (isSlow) release = this.holdSlow();
    });
    return () => {
      slow.cancel();
      release?.();
    };
  }
}

/** Resolves `isSlow` with true once `slowMs` has passed and `work` has not settled, else with false. */
function whenSlow(
  work: Promise<unknown>,
  slowMs: number,
): { readonly isSlow: Promise<boolean>; cancel(): void } {
  let timer: NodeJS.Timeout | undefined;
  let settle: (slow: boolean) => void = () => undefined;
  const isSlow = new Promise<boolean>((resolve) => {
    settle = resolve;
    timer = setTimeout(() => resolve(true), slowMs);
  });
  const cancel = () => {
    clearTimeout(timer);
    settle(false);
  };
  work.then(cancel, cancel);
  return { isSlow, cancel };
}

/** The `WRITE_SLOW` error a batch is spooled with when the write of it has become slow. */
export function slowWriteError(name: string, slowWriteMs: number): ActivityLogError {
  return new ActivityLogError(
    'WRITE_SLOW',
    `the ${name} has not answered a write for ${slowWriteMs} ms (ACTIVITY_LOG_SLOW_WRITE_MS)`,
    { details: { slowWriteMs } },
  );
}
