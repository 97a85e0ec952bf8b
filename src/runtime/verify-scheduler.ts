import { stat } from 'node:fs/promises';
import type { Config } from '../config/config.js';
import type { ChainReport } from '../integrity/verify-chain.js';
import type { VerifyJson } from '../metrics/snapshot.js';
import type { LoadedCheckpoint } from './checkpoint-files.js';
import { loadAllCheckpoints, verifySealChain } from './seal-verification.js';
import { readVerificationKey } from './signing-key-files.js';

/** One finished verification. */
export interface VerifyOutcome {
  readonly report: ChainReport;
  readonly startedAtMs: number;
  readonly finishedAtMs: number;
  /** The status before this one (`never` for the first). */
  readonly previousStatus: VerifyJson['status'];
}

export interface VerifySchedulerOptions {
  /**
   * One verification of the whole chain; its progress is the caller's to report. `signal` is
   * aborted by {@link VerifyScheduler.stop}, so that a long verification does not hold up shutdown.
   */
  readonly verify: (signal: AbortSignal) => Promise<ChainReport>;
  /** Time from the end of one verification to the start of the next (`ACTIVITY_LOG_VERIFY_INTERVAL_S`). */
  readonly intervalMs: number;
  /** Time from `start()` to the first verification (default the interval, at most a minute). */
  readonly firstRunDelayMs?: number;
  /** After each verification that ran, intact or not. */
  readonly onResult?: (outcome: VerifyOutcome) => void;
  /** A verification that could not run (the database did not answer…); tried again at the next interval. */
  readonly onError?: (error: unknown) => void;
  readonly nowMs?: () => number;
}

/**
 * Verifies the seal chain on a timer and keeps the last result for the snapshot. Verifications
 * never overlap: the next is scheduled an interval after the previous one ends, and
 * {@link runOnce} during one joins it. A verification that cannot run keeps the last result and
 * records why in `error`.
 *
 * @example
 * const scheduler = new VerifyScheduler({ verify: () => verifySealChain(config.database), intervalMs: 3_600_000 });
 * scheduler.start();
 * console.log(scheduler.json().status);
 * await scheduler.stop();
 */
export class VerifyScheduler {
  readonly #options: VerifySchedulerOptions;
  readonly #nowMs: () => number;
  #timer: NodeJS.Timeout | null = null;
  #running: Promise<VerifyOutcome | null> | null = null;
  #stopped = false;
  readonly #abort = new AbortController();
  #last: VerifyOutcome | null = null;
  #error: string | null = null;

  constructor(options: VerifySchedulerOptions) {
    this.#options = options;
    this.#nowMs = options.nowMs ?? Date.now;
  }

  start(): void {
    if (this.#timer !== null || this.#stopped) return;
    this.#schedule(this.#options.firstRunDelayMs ?? Math.min(this.#options.intervalMs, 60_000));
  }

  /** A verification now, or the one in progress: resolves with its outcome, or null when it could not run. */
  runOnce(): Promise<VerifyOutcome | null> {
    if (this.#running === null) {
      this.#running = this.#run().finally(() => {
        this.#running = null;
      });
    }
    return this.#running;
  }

  /** Stops scheduling, stops a verification in progress and waits for it to end. */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    this.#abort.abort(new Error('stopped'));
    await this.#running;
  }

  /** The last result as the snapshot shows it (`integrity.verify`). */
  json(): VerifyJson {
    const last = this.#last;
    const report = last?.report;
    const problems = report === undefined ? 0 : report.problems.length + report.moreProblems;
    return {
      status: statusOf(report),
      at: last === null ? null : new Date(last.finishedAtMs).toISOString(),
      duration_ms: last === null ? null : last.finishedAtMs - last.startedAtMs,
      seals: report?.seals ?? 0,
      rows: report?.rows ?? 0,
      problems,
      first_problem: report?.problems[0]?.message ?? null,
      interval_seconds: Math.round(this.#options.intervalMs / 1000),
      running: this.#running !== null,
      error: this.#error,
    };
  }

  async #run(): Promise<VerifyOutcome | null> {
    if (this.#stopped) return null;
    const startedAtMs = this.#nowMs();
    let report: ChainReport;
    try {
      report = await this.#options.verify(this.#abort.signal);
    } catch (error) {
      if (this.#stopped) return null;
      this.#error = error instanceof Error ? error.message : String(error);
      this.#options.onError?.(error);
      return null;
    }
    const outcome: VerifyOutcome = {
      report,
      startedAtMs,
      finishedAtMs: this.#nowMs(),
      previousStatus: statusOf(this.#last?.report),
    };
    this.#last = outcome;
    this.#error = null;
    this.#options.onResult?.(outcome);
    return outcome;
  }

  #schedule(delayMs: number): void {
    this.#timer = setTimeout(() => {
      void this.runOnce().finally(() => {
        if (!this.#stopped) this.#schedule(this.#options.intervalMs);
      });
    }, delayMs);
    // A pending verification never keeps the process alive on its own.
    this.#timer.unref();
  }
}

function statusOf(report: ChainReport | undefined): VerifyJson['status'] {
  if (report === undefined) return 'never';
  return report.intact ? 'ok' : 'failed';
}

/** What `serve` is told while its scheduled verification runs. */
export interface ScheduledVerificationHandlers extends Pick<VerifySchedulerOptions, 'onResult' | 'onError'> {
  /** Rows and seals verified so far, during a long verification. */
  readonly onProgress?: (rows: number, seals: number) => void;
  /** One-line warnings about what the verification leaves out. */
  readonly onWarning?: (line: string) => void;
}

/**
 * What `serve` runs with `ACTIVITY_LOG_VERIFY_INTERVAL_S`: a started {@link VerifyScheduler} that
 * verifies the chain as `activity-log verify` does — against the checkpoints in
 * `ACTIVITY_LOG_CHECKPOINT_DIR` (read afresh each time) when that and `ACTIVITY_LOG_SIGNING_KEY`
 * are set; null without the setting. The key is read first, so a key that cannot be used stops
 * start-up.
 *
 * @throws ActivityLogError `CONFIG_INVALID` when the key file cannot be read or is not Ed25519.
 */
export async function startScheduledVerification(
  config: Config,
  handlers: ScheduledVerificationHandlers = {},
): Promise<VerifyScheduler | null> {
  if (config.verifyIntervalSeconds === null) return null;
  const dir = config.checkpointDir;
  let publicKeyPem: string | null = null;
  if (dir !== null && config.signingKeyPath !== null) {
    publicKeyPem = await readVerificationKey(config.signingKeyPath, 'ACTIVITY_LOG_SIGNING_KEY');
  } else if (dir !== null) {
    handlers.onWarning?.(
      'ACTIVITY_LOG_CHECKPOINT_DIR is set but ACTIVITY_LOG_SIGNING_KEY is not: the scheduled verify does not check the checkpoints',
    );
  }
  const scheduler = new VerifyScheduler({
    verify: async (signal) => {
      const checkpoints: readonly LoadedCheckpoint[] =
        publicKeyPem !== null && dir !== null && (await isDirectory(dir))
          ? await loadAllCheckpoints([dir])
          : [];
      return verifySealChain(config.database, {
        checkpoints,
        publicKeyPem,
        signal,
        // One worker thread at most: the hashing leaves the server's event loop, and the other
        // CPUs stay the server's.
        maxThreads: 1,
        ...(handlers.onProgress === undefined ? {} : { onProgress: handlers.onProgress }),
      });
    },
    intervalMs: config.verifyIntervalSeconds * 1000,
    ...(handlers.onResult === undefined ? {} : { onResult: handlers.onResult }),
    ...(handlers.onError === undefined ? {} : { onError: handlers.onError }),
  });
  scheduler.start();
  return scheduler;
}

/** A checkpoint directory not made yet holds no checkpoints. */
async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}
