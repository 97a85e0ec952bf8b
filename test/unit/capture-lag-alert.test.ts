import { describe, expect, it } from 'vitest';
import type { CaptureStats } from '../../src/capture/capture-runner.js';
import { captureLagVerdict } from '../../src/runtime/capture-lag-alert.js';

const stats: CaptureStats = {
  state: 'streaming',
  streamKey: 'postgres:1/shop/activity_log',
  slot: 'activity_log',
  position: '0/10',
  activities: 10,
  durableActivities: 5,
  lagSeconds: 0,
  lagBytes: 100,
  retainedBytes: 2048,
};

describe('the capture_lag alert', () => {
  it('fires once the oldest change not yet durable is older than ACTIVITY_LOG_ALERT_CAPTURE_LAG_S', () => {
    expect(captureLagVerdict({ ...stats, lagSeconds: 299 }, 300).firing).toBe(false);
    const verdict = captureLagVerdict({ ...stats, lagSeconds: 301.4 }, 300);
    expect(verdict).toEqual({
      firing: true,
      message:
        'capture of slot activity_log is 301 s behind (ACTIVITY_LOG_ALERT_CAPTURE_LAG_S=300), 2048 bytes of WAL kept for the slot',
    });
  });
});
