import { hostname } from 'node:os';
import type { CaptureStats } from '../capture/capture-runner.js';
import type { Config } from '../config/config.js';

/** What the capture lag rule says about one measurement. */
export interface CaptureLagVerdict {
  readonly firing: boolean;
  readonly message: string;
}

/** The thresholds of `capture_lag`. */
export interface CaptureLagThresholds {
  /** `ACTIVITY_LOG_ALERT_CAPTURE_LAG_S`. */
  readonly lagSeconds: number;
  /** `ACTIVITY_LOG_ALERT_CAPTURE_RETAINED_MB`. */
  readonly retainedMb: number;
}

/** The thresholds of a configuration. */
export function captureLagThresholdsOf(config: Config): CaptureLagThresholds {
  return { lagSeconds: config.alertCaptureLagSeconds, retainedMb: config.alertCaptureRetainedMb };
}

/**
 * `capture_lag`: fires when the oldest change not yet durable is older than
 * `ACTIVITY_LOG_ALERT_CAPTURE_LAG_S`, or when the source keeps more than
 * `ACTIVITY_LOG_ALERT_CAPTURE_RETAINED_MB` of WAL / binary log behind the slot.
 */
export function captureLagVerdict(stats: CaptureStats, thresholds: CaptureLagThresholds): CaptureLagVerdict {
  const seconds = Math.round(stats.lagSeconds);
  const log = stats.kind === 'postgres' ? 'WAL' : 'binary log';
  const retainedMb = stats.retainedBytes === null ? null : stats.retainedBytes / (1024 * 1024);
  const retained =
    stats.retainedBytes === null
      ? ''
      : `, ${stats.retainedBytes} bytes of ${log} kept for the slot (ACTIVITY_LOG_ALERT_CAPTURE_RETAINED_MB=${thresholds.retainedMb})`;
  return {
    firing:
      stats.lagSeconds > thresholds.lagSeconds || (retainedMb !== null && retainedMb > thresholds.retainedMb),
    message: `capture of slot ${stats.slot} is ${seconds} s behind (ACTIVITY_LOG_ALERT_CAPTURE_LAG_S=${thresholds.lagSeconds})${retained}`,
  };
}

/**
 * The `capture_lag` alert of a capture process: given each measurement, warns with one line and
 * POSTs `capture_lag` to `ACTIVITY_LOG_ALERT_WEBHOOK` when it starts firing (again after the
 * cooldown while it lasts), and once when it is resolved.
 *
 * @example
 * const alert = new CaptureLagAlert(config, warn);
 * await alert.check(runner.stats());
 */
export class CaptureLagAlert {
  readonly #config: Config;
  readonly #warn: (line: string) => void;
  #firingSince: number | null = null;
  #notifiedAt = 0;

  constructor(config: Config, warn: (line: string) => void) {
    this.#config = config;
    this.#warn = warn;
  }

  async check(stats: CaptureStats): Promise<void> {
    const config = this.#config;
    const verdict = captureLagVerdict(stats, captureLagThresholdsOf(config));
    const now = Date.now();
    if (verdict.firing) {
      const repeat = this.#firingSince !== null;
      this.#firingSince ??= now;
      if (!repeat || now - this.#notifiedAt >= config.alertCooldownSeconds * 1000) {
        this.#notifiedAt = now;
        this.#warn(`alert capture_lag firing: ${verdict.message}`);
        await post(config, 'firing', repeat, verdict.message);
      }
    } else if (this.#firingSince !== null) {
      this.#firingSince = null;
      this.#warn(`alert capture_lag resolved: ${verdict.message}`);
      await post(config, 'resolved', false, verdict.message);
    }
  }
}

async function post(config: Config, status: 'firing' | 'resolved', repeat: boolean, message: string) {
  if (config.alertWebhook === null) return;
  const payload = {
    text: `[activity-log] capture_lag ${status}: ${message}`,
    rule: 'capture_lag',
    status,
    repeat,
    message,
    host: hostname(),
    at: new Date().toISOString(),
  };
  await fetch(config.alertWebhook, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(payload),
    signal: AbortSignal.timeout(5000),
  }).catch(() => undefined);
}
