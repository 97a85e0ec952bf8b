import { hostname } from 'node:os';
import type { CaptureRunner, CaptureStats } from '../capture/capture-runner.js';
import type { Config } from '../config/config.js';

/** How often the capture process measures its lag. */
const LAG_CHECK_INTERVAL_MS = 5000;

/** What the capture lag rule says about one measurement. */
export interface CaptureLagVerdict {
  readonly firing: boolean;
  readonly message: string;
}

/** `capture_lag`: fires when the oldest change not yet durable is older than the threshold. */
export function captureLagVerdict(stats: CaptureStats, thresholdSeconds: number): CaptureLagVerdict {
  const seconds = Math.round(stats.lagSeconds);
  const retained =
    stats.retainedBytes === null ? '' : `, ${stats.retainedBytes} bytes of WAL kept for the slot`;
  return {
    firing: stats.lagSeconds > thresholdSeconds,
    message: `capture of slot ${stats.slot} is ${seconds} s behind (ACTIVITY_LOG_ALERT_CAPTURE_LAG_S=${thresholdSeconds})${retained}`,
  };
}

/**
 * Measures the lag every few seconds; when `ACTIVITY_LOG_ALERT_CAPTURE_LAG_S` is passed, warns
 * with one line and POSTs `capture_lag` to `ACTIVITY_LOG_ALERT_WEBHOOK` (again after the cooldown,
 * and once resolved). Returns the function that stops it.
 */
export function watchLag(runner: CaptureRunner, config: Config, warn: (line: string) => void): () => void {
  let firingSince: number | null = null;
  let notifiedAt = 0;
  const check = async () => {
    await runner.refreshLag().catch(() => undefined);
    const verdict = captureLagVerdict(runner.stats(), config.alertCaptureLagSeconds);
    const now = Date.now();
    if (verdict.firing) {
      const repeat = firingSince !== null;
      firingSince ??= now;
      if (!repeat || now - notifiedAt >= config.alertCooldownSeconds * 1000) {
        notifiedAt = now;
        warn(`alert capture_lag firing: ${verdict.message}`);
        await post(config, 'firing', repeat, verdict.message);
      }
    } else if (firingSince !== null) {
      firingSince = null;
      warn(`alert capture_lag resolved: ${verdict.message}`);
      await post(config, 'resolved', false, verdict.message);
    }
  };
  const timer = setInterval(() => {
    check().catch(() => undefined);
  }, LAG_CHECK_INTERVAL_MS);
  timer.unref();
  return () => clearInterval(timer);
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
