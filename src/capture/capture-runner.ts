import type { Activity, LogInput } from '../core/activity.js';
import { ActivityLogError } from '../core/errors.js';
import type { CaptureState } from '../metrics/capture-figures.js';
import { SecondBuckets } from '../metrics/second-buckets.js';
import type { CaptureSource, SourceLag } from './capture-source.js';
import type { CapturedTransaction } from './row-change.js';
import { activityInputsOf, type CaptureMapping } from './row-change-activity.js';

/** Where captured activities go: the activity log's one write pipeline (`logMany`, `flush`). */
export interface CaptureLogger {
  logMany(inputs: readonly LogInput[]): Promise<Activity[]>;
  flush(): Promise<void>;
}

/** Where the durable position of each stream is kept (`activity_log_capture_positions`). */
export interface CapturePositions {
  save(source: string, slot: string, position: string): Promise<void>;
}

export interface CaptureRunnerOptions {
  readonly source: CaptureSource;
  readonly logger: CaptureLogger;
  readonly positions: CapturePositions;
  readonly slot: string;
  readonly mapping: Omit<CaptureMapping, 'streamKey' | 'sourceKind' | 'defaultSchema'>;
  /** Longest a handed-over change waits before its position is made durable (default 200 ms). */
  readonly checkpointIntervalMs?: number;
  /** Activities handed over and not yet durable past which reading waits for them (default 5000). */
  readonly maxUndurableActivities?: number;
  readonly warn?: (line: string) => void;
  /** First wait before reading again after the stream broke (default 500 ms); doubles up to the cap. */
  readonly reconnectDelayMs?: number;
  /** Longest wait between two attempts to read again (default 30 s). */
  readonly maxReconnectDelayMs?: number;
}

export type { CaptureState };

/** Changes waiting this long without anything becoming durable make the capture `stalled`. */
export const STALLED_AFTER_MS = 30_000;

/** `events_per_second` is the mean over this many seconds. */
export const CAPTURE_RATE_WINDOW_SECONDS = 60;

/** What `capture` reports: where it is, how far behind, how fast. */
export interface CaptureStats {
  readonly state: CaptureState;
  /** `postgres` or `mariadb`. */
  readonly kind: string;
  readonly streamKey: string;
  readonly slot: string;
  /** The last position saved as durable. */
  readonly position: string | null;
  /** When {@link position} was saved (epoch ms); null before the first save. */
  readonly positionSavedAtMs: number | null;
  readonly startedAtMs: number;
  /** Row changes made into activities per second, mean of the last {@link CAPTURE_RATE_WINDOW_SECONDS} s. */
  readonly eventsPerSecond: number;
  /** Row changes made into activities and handed over since the start. */
  readonly activities: number;
  /** Of those, the ones known durable (stored, enqueued or spooled). */
  readonly durableActivities: number;
  /** Seconds since the commit of the oldest change not yet durable; 0 when caught up. */
  readonly lagSeconds: number;
  readonly lagBytes: number | null;
  readonly retainedBytes: number | null;
}

interface Handed {
  readonly position: string;
  readonly activities: number;
}

/**
 * Turns a source's committed transactions into activities and hands them to the activity log,
 * then — only once the activity log says they are durable (flushed: stored, enqueued or spooled)
 * — saves the position and confirms it to the source. A crash in between re-reads from the last
 * saved position; the ids are derived from the stream position, so nothing is stored twice.
 */
export class CaptureRunner {
  readonly #source: CaptureSource;
  readonly #logger: CaptureLogger;
  readonly #positions: CapturePositions;
  readonly #slot: string;
  readonly #mapping: CaptureMapping;
  readonly #intervalMs: number;
  readonly #maxUndurable: number;
  readonly #warn: (line: string) => void;
  readonly #reconnectDelayMs: number;
  readonly #maxReconnectDelayMs: number;
  #state: CaptureStats['state'] = 'starting';
  #handed: Handed | null = null;
  #durable: Handed | null = null;
  #activities = 0;
  #durableActivities = 0;
  /** Per transaction handed over and not yet durable: the activity count after it, its commit time. */
  #undurable: { readonly upTo: number; readonly commitMs: number }[] = [];
  #checkpointing: Promise<void> | null = null;
  #timer: NodeJS.Timeout | null = null;
  #lag: SourceLag | null = null;
  #saveFailing = false;
  /** Attempts to read again since the stream last worked (a transaction came through, a connection held). */
  #reconnects = 0;
  /** From a broken stream until the next connection opens. */
  #reconnecting = false;
  #wakeFromBackoff: (() => void) | null = null;
  readonly #startedAtMs = Date.now();
  #savedAtMs: number | null = null;
  /** Last time nothing was waiting or something became durable. */
  #progressAtMs = Date.now();
  readonly #events = new SecondBuckets(CAPTURE_RATE_WINDOW_SECONDS);

  constructor(options: CaptureRunnerOptions) {
    this.#source = options.source;
    this.#logger = options.logger;
    this.#positions = options.positions;
    this.#slot = options.slot;
    this.#mapping = {
      ...options.mapping,
      streamKey: options.source.streamKey,
      sourceKind: options.source.kind,
      defaultSchema: options.source.defaultSchema,
    };
    this.#intervalMs = options.checkpointIntervalMs ?? 200;
    this.#maxUndurable = options.maxUndurableActivities ?? 5000;
    this.#warn = options.warn ?? ((line) => process.stderr.write(`${line}\n`));
    this.#reconnectDelayMs = options.reconnectDelayMs ?? 500;
    this.#maxReconnectDelayMs = options.maxReconnectDelayMs ?? 30_000;
  }

  /**
   * Reads until {@link stop}. A stream that breaks (a lost connection, a server restart) is read
   * again from the last durable position after a wait that doubles up to a cap, and starts from
   * the first wait again once a transaction came through or a connection held; rejects (after saving what is durable) only on an
   * error that waiting cannot heal (the slot dropped, the settings wrong, the position purged).
   */
  async run(from: string | null): Promise<void> {
    if (this.#state !== 'starting') return;
    this.#state = 'streaming';
    try {
      let start = from;
      for (;;) {
        let openedAt: number | null = null;
        const opened = () => {
          openedAt = Date.now();
          this.#reconnecting = false;
          if (this.#reconnects > 0) {
            this.#warn(`capture: the change stream is read again, from ${start ?? 'where the slot stands'}`);
          }
        };
        try {
          await this.#source.run(start, (transaction) => this.#take(transaction), opened);
          return;
        } catch (error) {
          if (this.#state !== 'streaming' || !isRecoverable(error)) throw error;
          // A connection that held for a while was a success, even on a source with nothing to send.
          if (openedAt !== null && Date.now() - openedAt >= STABLE_CONNECTION_MS) this.#reconnects = 0;
          start = await this.#resumeAfter(error, from);
        }
        if (this.#state !== 'streaming') return;
      }
    } finally {
      if (this.#timer !== null) clearTimeout(this.#timer);
      this.#timer = null;
      await this.#checkpoint().catch((error: unknown) =>
        this.#warn(`capture: the last position could not be saved: ${(error as Error).message}`),
      );
      this.#state = 'stopped';
    }
  }

  /**
   * After the stream broke: makes what was handed over durable if it can, forgets what was handed
   * after the durable position (it is read again, with the same ids), says so in one line, and
   * waits before the next attempt. Returns where to read from.
   */
  async #resumeAfter(error: unknown, from: string | null): Promise<string | null> {
    await this.#checkpoint().catch(() => undefined);
    const resume = this.#durable;
    this.#handed = resume;
    this.#activities = resume?.activities ?? this.#durableActivities;
    this.#durableActivities = Math.min(this.#durableActivities, this.#activities);
    this.#undurable = [];
    const delayMs = Math.min(this.#maxReconnectDelayMs, this.#reconnectDelayMs * 2 ** this.#reconnects);
    this.#reconnects++;
    const start = resume?.position ?? from;
    this.#reconnecting = true;
    this.#warn(
      `capture: ${describeFailure(error)}; reconnecting in ${delayMs} ms (attempt ${this.#reconnects}), from ${start ?? 'where the slot stands'}`,
    );
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, delayMs);
      this.#wakeFromBackoff = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    this.#wakeFromBackoff = null;
    return start;
  }

  /** Makes everything handed over durable, confirms it, and stops reading. */
  async stop(): Promise<void> {
    if (this.#state === 'stopped') return;
    this.#state = 'stopping';
    this.#wakeFromBackoff?.();
    try {
      await this.#checkpoint();
    } finally {
      await this.#source.stop();
    }
  }

  stats(): CaptureStats {
    const nowMs = Date.now();
    return {
      state: this.#currentState(nowMs),
      kind: this.#mapping.sourceKind,
      streamKey: this.#mapping.streamKey,
      slot: this.#slot,
      position: this.#durable?.position ?? null,
      positionSavedAtMs: this.#savedAtMs,
      startedAtMs: this.#startedAtMs,
      eventsPerSecond:
        Math.round(
          (100 * this.#events.sum(CAPTURE_RATE_WINDOW_SECONDS, nowMs)) /
            Math.min(CAPTURE_RATE_WINDOW_SECONDS, Math.max(1, (nowMs - this.#startedAtMs) / 1000)),
        ) / 100,
      activities: this.#activities,
      durableActivities: this.#durableActivities,
      lagSeconds:
        this.#undurable.length === 0 ? 0 : Math.max(0, (Date.now() - this.#undurable[0]!.commitMs) / 1000),
      lagBytes: this.#lag?.bytes ?? null,
      retainedBytes: this.#lag?.retainedBytes ?? null,
    };
  }

  #currentState(nowMs: number): CaptureState {
    if (this.#state !== 'streaming') return this.#state;
    if (this.#reconnecting || this.#source.reconnecting?.() === true) return 'reconnecting';
    const waiting = this.#undurable.length > 0 || this.#handed !== this.#durable;
    if (!waiting) this.#progressAtMs = nowMs;
    return nowMs - this.#progressAtMs >= STALLED_AFTER_MS ? 'stalled' : 'streaming';
  }

  /** Asks the source how far behind the slot is (bytes); kept for {@link stats}. */
  async refreshLag(): Promise<SourceLag> {
    this.#lag = await this.#source.lag();
    return this.#lag;
  }

  async #take(transaction: CapturedTransaction): Promise<void> {
    if (this.#state !== 'streaming') return;
    this.#reconnects = 0;
    const inputs = activityInputsOf(transaction, this.#mapping);
    if (inputs.length > 0) {
      if (this.#undurable.length === 0 && this.#handed === this.#durable) this.#progressAtMs = Date.now();
      await this.#logger.logMany(inputs);
      this.#activities += inputs.length;
      this.#events.add(inputs.length, Date.now());
      this.#undurable.push({ upTo: this.#activities, commitMs: transaction.commitTime.getTime() });
    }
    if (transaction.resumePosition !== null) {
      this.#handed = { position: transaction.resumePosition, activities: this.#activities };
    }
    if (this.#activities - this.#durableActivities >= this.#maxUndurable) {
      // Reading waits for the flush; a position that cannot be saved yet (the activity database
      // down, the activities spooled) is tried again later rather than stopping the capture.
      await this.#checkpoint().catch((error: unknown) => this.#retryCheckpoint(error));
    } else {
      this.#scheduleCheckpoint(this.#intervalMs);
    }
  }

  /** A checkpoint soon; one that fails (the activity database down) is tried again until it succeeds. */
  #scheduleCheckpoint(delayMs: number): void {
    if (this.#timer !== null || this.#state !== 'streaming') return;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.#checkpoint().catch((error: unknown) => this.#retryCheckpoint(error));
    }, delayMs);
  }

  /** One line when saving starts failing (not one per retry), then a retry every second. */
  #retryCheckpoint(error: unknown): void {
    if (!this.#saveFailing) {
      this.#saveFailing = true;
      this.#warn(
        `capture: the position is not saved yet, retrying every second: ${(error as Error).message}`,
      );
    }
    this.#scheduleCheckpoint(Math.max(1000, this.#intervalMs));
  }

  /** One at a time: flush what was handed over, then save and confirm its position. */
  #checkpoint(): Promise<void> {
    const previous = this.#checkpointing ?? Promise.resolve();
    const next = previous
      .catch(() => undefined)
      .then(() => this.#checkpointOnce())
      .finally(() => {
        if (this.#checkpointing === next) this.#checkpointing = null;
      });
    this.#checkpointing = next;
    return next;
  }

  async #checkpointOnce(): Promise<void> {
    const target = this.#handed;
    const activities = this.#activities;
    await this.#logger.flush();
    if (activities > this.#durableActivities) this.#progressAtMs = Date.now();
    this.#durableActivities = Math.max(this.#durableActivities, activities);
    const stillPending = this.#undurable.findIndex((mark) => mark.upTo > this.#durableActivities);
    this.#undurable = stillPending === -1 ? [] : this.#undurable.slice(stillPending);
    if (target === null || target === this.#durable) return;
    await this.#positions.save(this.#mapping.streamKey, this.#slot, target.position);
    if (this.#saveFailing) this.#warn(`capture: the position is saved again (${target.position})`);
    this.#saveFailing = false;
    this.#durable = target;
    this.#savedAtMs = Date.now();
    this.#progressAtMs = this.#savedAtMs;
    this.#source.confirm(target.position);
  }
}

/** How long a connection must have held for the next wait to start again from the first. */
const STABLE_CONNECTION_MS = 10_000;

/** The source's own line for a stream that broke, else the driver's message as the reason. */
function describeFailure(error: unknown): string {
  if (error instanceof ActivityLogError) return error.message;
  return `the change stream failed: ${error instanceof Error ? error.message : String(error)}`;
}

/** Whether reading again may help: not for a source that is set up wrongly or lost what was asked. */
function isRecoverable(error: unknown): boolean {
  return !(error instanceof ActivityLogError && error.code === 'CAPTURE_SOURCE_UNSUITABLE');
}
