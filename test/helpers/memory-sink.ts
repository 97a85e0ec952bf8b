import type { Activity } from '../../src/core/activity.js';
import type { ActivitySink } from '../../src/core/activity-sink.js';
import type { ActivityPage, ActivityStore, PruneOptions } from '../../src/store/activity-store.js';

/** Unit-test sink: records every write; can be told to fail the next N writes. */
export class MemorySink implements ActivitySink {
  readonly name = 'memory';
  readonly writes: Activity[][] = [];
  failNext = 0;
  closed = false;

  get stored(): Activity[] {
    return this.writes.flat();
  }

  async write(activities: readonly Activity[]): Promise<void> {
    if (this.failNext > 0) {
      this.failNext--;
      throw new Error('injected write failure');
    }
    this.writes.push([...activities]);
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}

/** Unit-test store: keeps rows in an array, idempotent on id like the SQL stores. */
export class MemoryStore implements ActivityStore {
  readonly capabilities = { dialect: 'sqlite', maxRowsPerInsert: 1000 } as const;
  readonly rows = new Map<string, Activity>();
  inserts = 0;
  failNext = 0;

  async migrate() {
    return { from: 1, to: 1 };
  }

  async insertMany(activities: readonly Activity[]): Promise<number> {
    if (this.failNext > 0) {
      this.failNext--;
      throw new Error('injected insert failure');
    }
    this.inserts++;
    let added = 0;
    for (const activity of activities) {
      if (!this.rows.has(activity.id)) {
        this.rows.set(activity.id, activity);
        added++;
      }
    }
    return added;
  }

  async query(): Promise<ActivityPage> {
    const data = [...this.rows.values()].sort((a, b) => b.createdAt.getTime() - a.createdAt.getTime());
    return { data, nextCursor: null };
  }

  async prune(_options: PruneOptions): Promise<number> {
    return 0;
  }

  async ping(): Promise<void> {}

  async close(): Promise<void> {}
}
