import type { Activity } from '../core/activity.js';
import type { ActivitySink } from '../core/activity-sink.js';
import type { ActivityStore } from '../store/activity-store.js';

/** The plain write step: one idempotent multi-row insert per batch. */
export function createStoreSink(store: ActivityStore): ActivitySink {
  return {
    name: 'store',
    async write(activities: readonly Activity[]): Promise<void> {
      await store.insertMany(activities);
    },
    close: () => store.close(),
  };
}
