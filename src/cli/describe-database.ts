import type { DatabaseConfig } from '../config/config.js';
import { DATABASE_CONNECTIONS } from '../config/database-connections.js';

/**
 * Where the activities live, for humans and without the password:
 * `sqlite ./storage/activity-log.sqlite`, `mysql root@127.0.0.1:3306/app`.
 */
export function describeDatabase(database: DatabaseConfig): string {
  if (DATABASE_CONNECTIONS[database.connection].embedded)
    return `${database.connection} ${database.filename}`;
  const user = database.user === '' ? '' : `${database.user}@`;
  return `${database.connection} ${user}${database.host}:${database.port}/${database.database}`;
}
