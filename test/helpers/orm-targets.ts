import type { Activity } from '../../src/core/activity.js';
import { type ActivityLog, createActivityLog } from '../../src/runtime/create-activity-log.js';
import { MemoryStore } from './memory-sink.js';
import { MARIADB_TARGET, POSTGRES_TARGET, type SqlTarget } from './services.js';

/** A SQL target with the name one ORM gives its driver (Sequelize's `dialect`, TypeORM's `type`). */
export interface OrmTarget<Driver extends string> extends SqlTarget {
  readonly driver: Driver;
}

/**
 * MariaDB and PostgreSQL, each with the driver name an ORM uses for it.
 *
 * @example
 * const TARGETS = ormTargets({ mariadb: 'mysql', postgres: 'postgres' });
 */
export function ormTargets<Driver extends string>(drivers: {
  readonly mariadb: Driver;
  readonly postgres: Driver;
}): readonly OrmTarget<Driver>[] {
  return [
    { ...MARIADB_TARGET, driver: drivers.mariadb },
    { ...POSTGRES_TARGET, driver: drivers.postgres },
  ];
}

/** The causer the model-change suites act as. */
export const ADMIN_CAUSER = { type: 'User', id: 7 };

/** The columns of the soft-delete `Post` model each ORM suite defines on a table of its own. */
export interface PostColumns {
  id: number;
  title: string;
  body: string;
  secretNote: string | null;
}

/** An activity log that writes synchronously to an in-memory store. */
export interface MemoryActivityLog {
  readonly store: MemoryStore;
  readonly activityLog: ActivityLog;
  /** Every activity stored so far, in id (that is, logging) order. */
  readonly activities: () => Activity[];
}

/** A fresh {@link MemoryActivityLog}, for a suite to hand to the ORM integration it tests. */
export function memoryActivityLog(): MemoryActivityLog {
  const store = new MemoryStore();
  const activityLog = createActivityLog({ env: {}, store, config: { method: 'sync' } });
  const activities = (): Activity[] =>
    [...store.rows.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return { store, activityLog, activities };
}
