import type { DatabaseConfig } from '../config/config.js';
import type { ActivityStore } from './activity-store.js';
import { DIALECT_REGISTRY } from './dialect-registry.js';
import { KyselyStore, sealOptionsOf } from './kysely-store.js';

/**
 * The store for the configured database. Nothing connects until the first call; call
 * `migrate()` once before writing and `close()` to release the connections.
 *
 * @example
 * const store = createStore(loadConfig().database);
 * await store.migrate();
 * await store.insertMany(activities);
 * await store.close();
 */
export function createStore(config: DatabaseConfig): ActivityStore {
  return new KyselyStore(
    DIALECT_REGISTRY[config.connection].create(config),
    config.table,
    sealOptionsOf(config),
    { partition: config.partition, partitionsAhead: config.partitionsAhead },
  );
}
