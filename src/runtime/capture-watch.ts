import type { DatabaseConfig } from '../config/config.js';
import { type CaptureReport, parseCaptureReport } from '../metrics/capture-figures.js';
import type { CaptureFiguresSource } from '../metrics/monitoring.js';
import { CapturePositionTable } from '../store/capture-positions.js';

/** The longest a snapshot waits for the capture figures. */
const READ_WAIT_MS = 1000;

/**
 * What `serve` (and `status`) show of change capture: the figures every `capture` process writes
 * to `activity_log_capture_stats` in the activity database, read over a connection of its own.
 * The activity database is what every capture process and every `serve` share, with or without
 * Redis; a process that stops writing shows as stale once its figures pass the staleness bound.
 *
 * @example
 * const watch = new CaptureWatch(config.database);
 * const monitoring = startMonitoring({ config, collector, capture: watch });
 */
export class CaptureWatch implements CaptureFiguresSource {
  readonly #table: CapturePositionTable;
  #last: readonly CaptureReport[] = [];
  #reading: Promise<void> | null = null;

  constructor(database: DatabaseConfig) {
    this.#table = new CapturePositionTable(database);
  }

  /** The last figures read; a database that does not answer within a second leaves the previous ones. */
  async reports(): Promise<readonly CaptureReport[]> {
    this.#reading ??= this.#read().finally(() => {
      this.#reading = null;
    });
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.#reading,
      new Promise((resolve) => {
        timer = setTimeout(resolve, READ_WAIT_MS);
      }),
    ]);
    clearTimeout(timer);
    return this.#last;
  }

  async close(): Promise<void> {
    await this.#reading;
    await this.#table.close();
  }

  async #read(): Promise<void> {
    try {
      const rows = await this.#table.readStats();
      this.#last = rows
        .map((row) => parseCaptureReport(row.report))
        .filter((report): report is CaptureReport => report !== null);
    } catch {
      // Shown as they were last read; their age makes them stale when this lasts.
    }
  }
}
