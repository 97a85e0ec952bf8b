import { hostname } from 'node:os';
import { captureReportOf } from '../capture/capture-report.js';
import type { CaptureRunner, CaptureStats } from '../capture/capture-runner.js';
import { CAPTURE_REPORT_INTERVAL_MS } from '../metrics/capture-figures.js';
import type { CapturePositionTable } from '../store/capture-positions.js';

export interface CaptureReportingOptions {
  /** How often (default {@link CAPTURE_REPORT_INTERVAL_MS}). */
  readonly intervalMs?: number;
  /** Each measurement, after it was written (the `capture_lag` alert). */
  readonly onMeasured?: (stats: CaptureStats) => Promise<void> | void;
  readonly warn: (line: string) => void;
}

/** Started reporting; `close()` writes the last figures (state `stopped`) and stops. */
export interface CaptureReporting {
  /** Measures and writes now. */
  report(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Every few seconds: asks the source how far behind the slot is, then writes the runner's figures
 * to `activity_log_capture_stats` (where `serve`, `status` and `capture --status` read them) and
 * hands them to `onMeasured`. A write that fails is said once, until one succeeds again.
 */
export function startCaptureReporting(
  runner: CaptureRunner,
  positions: CapturePositionTable,
  options: CaptureReportingOptions,
): CaptureReporting {
  const where = { host: hostname(), pid: process.pid };
  let failing = false;
  let running: Promise<void> | null = null;
  const once = async () => {
    await runner.refreshLag().catch(() => undefined);
    const stats = runner.stats();
    try {
      const report = captureReportOf(stats, where, Date.now());
      await positions.saveStats(stats.streamKey, stats.slot, JSON.stringify(report));
      failing = false;
    } catch (error) {
      if (!failing) {
        options.warn(`capture: the figures could not be written, retrying: ${(error as Error).message}`);
      }
      failing = true;
    }
    await options.onMeasured?.(stats);
  };
  const report = () => {
    running ??= once().finally(() => {
      running = null;
    });
    return running;
  };
  const timer = setInterval(() => {
    report().catch(() => undefined);
  }, options.intervalMs ?? CAPTURE_REPORT_INTERVAL_MS);
  timer.unref();
  void report().catch(() => undefined);
  return {
    report,
    close: async () => {
      clearInterval(timer);
      await running?.catch(() => undefined);
      const stats = runner.stats();
      await positions
        .saveStats(stats.streamKey, stats.slot, JSON.stringify(captureReportOf(stats, where, Date.now())))
        .catch(() => undefined);
    },
  };
}
