import { join } from 'node:path';
import { describe, expect } from 'vitest';
import { captureReportOf } from '../../src/capture/capture-report.js';
import type { CaptureStats } from '../../src/capture/capture-runner.js';
import { loadConfig } from '../../src/config/config.js';
import { CaptureWatch } from '../../src/runtime/capture-watch.js';
import { CapturePositionTable } from '../../src/store/capture-positions.js';
import { temporaryDirectory } from '../helpers/temporary-directory.js';
import { test as it } from '../helpers/test-context.js';

const stats: CaptureStats = {
  state: 'streaming',
  kind: 'mariadb',
  streamKey: 'mariadb:1@db/shop/activity_log',
  slot: 'activity_log',
  position: 'gtid:0-1-42',
  positionSavedAtMs: Date.now(),
  startedAtMs: Date.now() - 60_000,
  eventsPerSecond: 3,
  activities: 7,
  durableActivities: 7,
  lagSeconds: 0,
  lagBytes: 0,
  retainedBytes: 0,
};

describe('the capture figures in the activity database', () => {
  it('reads nothing before any capture ran, then the last figures each stream wrote', async ({ defer }) => {
    const dir = await temporaryDirectory(defer, 'capture-watch-');
    const { database } = loadConfig({ env: { DATABASE_URL: `sqlite:${join(dir, 'activity.sqlite')}` } });
    const watch = new CaptureWatch(database);
    defer(() => watch.close());
    expect(await watch.reports()).toEqual([]);

    const positions = new CapturePositionTable(database);
    defer(() => positions.close());
    await positions.ensure();
    const where = { host: 'db-worker', pid: 7 };
    await positions.saveStats(
      stats.streamKey,
      stats.slot,
      JSON.stringify(captureReportOf(stats, where, Date.now())),
    );
    const later = captureReportOf({ ...stats, activities: 9 }, where, Date.now());
    await positions.saveStats(stats.streamKey, stats.slot, JSON.stringify(later));
    expect(await watch.reports()).toEqual([later]);

    await positions.remove(stats.streamKey, stats.slot);
    expect(await watch.reports()).toEqual([]);
  });
});
