import type { Activity } from '../core/activity.js';
import type { Spool } from './spool.js';
import type { WriteAcknowledgement, WriteFate } from './write-acknowledgement.js';

export interface UnconfirmedSegmentsOptions {
  readonly acknowledgement: WriteAcknowledgement;
  /** The spool holding the segments until they are released or rewound. */
  readonly spool: Pick<Spool, 'release' | 'rewind'>;
  /** How often the destination is asked about the keys not yet confirmed. */
  readonly pollMs: number;
  /** The destination lost something of `segment`, which was rewound to be written again. */
  readonly onLost: (segment: string) => void;
  /** The destination could not be asked, or a confirmed segment could not be released. */
  readonly onFailed: (error: unknown) => void;
  /** A check rewound at least one segment: a replay pass should write it again. */
  readonly onRewound: () => void;
}

/**
 * The replayed spool segments a destination that stores later (the queue) has yet to confirm,
 * with the keys it knows their activities by. Every `pollMs` while some are waiting, asks the
 * destination their fate: a segment whose every key is stored (or failed there for good) is
 * released from the spool, one with a lost key is rewound so the next replay writes it again.
 *
 * @example
 * const unconfirmed = new UnconfirmedSegments({ acknowledgement, spool, pollMs: 1000, onLost, onFailed, onRewound });
 * unconfirmed.add(segment, result.stored);
 */
export class UnconfirmedSegments {
  readonly #acknowledgement: WriteAcknowledgement;
  readonly #spool: Pick<Spool, 'release' | 'rewind'>;
  readonly #pollMs: number;
  readonly #onLost: (segment: string) => void;
  readonly #onFailed: (error: unknown) => void;
  readonly #onRewound: () => void;
  readonly #keysBySegment = new Map<string, Set<string>>();
  #timer: NodeJS.Timeout | null = null;
  #closed = false;

  constructor(options: UnconfirmedSegmentsOptions) {
    this.#acknowledgement = options.acknowledgement;
    this.#spool = options.spool;
    this.#pollMs = options.pollMs;
    this.#onLost = options.onLost;
    this.#onFailed = options.onFailed;
    this.#onRewound = options.onRewound;
  }

  /** Waits for the destination to confirm the parts of `segment` a replayed batch stored. */
  add(segment: string, stored: readonly (readonly Activity[])[]): void {
    let keys = this.#keysBySegment.get(segment);
    if (keys === undefined) {
      keys = new Set();
      this.#keysBySegment.set(segment, keys);
    }
    for (const part of stored) for (const key of this.#acknowledgement.keysOf(part)) keys.add(key);
    this.#timer ??= setTimeout(() => void this.#check(), this.#pollMs);
    this.#timer.unref();
  }

  /** Stops polling; the segments still waiting stay held in the spool. */
  close(): void {
    this.#closed = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
  }

  /**
   * Releases the held segments whose every key the destination confirms stored, and rewinds those
   * it lost a key of, so the next replay pass writes them again (idempotently).
   */
  async #check(): Promise<void> {
    this.#timer = null;
    if (this.#closed) return;
    const fates = await this.#fates();
    let rewound = false;
    for (const [segment, keys] of this.#keysBySegment) {
      for (const key of keys) {
        const fate = fates.get(key);
        if (fate === 'stored' || fate === 'failed') keys.delete(key);
      }
      if ([...keys].some((key) => fates.get(key) === 'lost')) {
        this.#keysBySegment.delete(segment);
        this.#spool.rewind(segment);
        rewound = true;
        this.#onLost(segment);
      } else if (keys.size === 0) {
        this.#keysBySegment.delete(segment);
        await this.#spool.release(segment).catch(this.#onFailed);
      }
    }
    if (rewound) this.#onRewound();
    if (this.#keysBySegment.size > 0 && !this.#closed) {
      this.#timer = setTimeout(() => void this.#check(), this.#pollMs);
      this.#timer.unref();
    }
  }

  /** The fate of every key waiting; none known when the destination cannot be asked now. */
  async #fates(): Promise<ReadonlyMap<string, WriteFate>> {
    const keys = [...this.#keysBySegment.values()].flatMap((set) => [...set]);
    try {
      return await this.#acknowledgement.check(keys);
    } catch (error) {
      this.#onFailed(error);
      return new Map();
    }
  }
}
