import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.js';
import { DB_CONNECTIONS } from '../../src/config/database-connections.js';
import { createStore } from '../../src/store/create-store.js';
import { DIALECT_REGISTRY } from '../../src/store/dialect-registry.js';

describe('the dialect registry', () => {
  it('has an entry for every DB_CONNECTION the configuration accepts', () => {
    expect(Object.keys(DIALECT_REGISTRY)).toEqual([...DB_CONNECTIONS]);
  });

  it.each(DB_CONNECTIONS)('%s: each of its URL schemes selects it, with its default port', (connection) => {
    const entry = DIALECT_REGISTRY[connection];
    for (const scheme of entry.schemes) {
      const url = entry.embedded ? `${scheme}:memory:` : `${scheme}//db.example/app`;
      const { database } = loadConfig({ env: { DATABASE_URL: url } });
      expect(database.connection, scheme).toBe(connection);
      if (!entry.embedded) expect(database.port, scheme).toBe(entry.defaultPort);
    }
  });

  it.each(DB_CONNECTIONS)('%s: a store reports the capabilities registered for it', async (connection) => {
    const { database } = loadConfig({
      env: {
        DB_CONNECTION: connection,
        ...(DIALECT_REGISTRY[connection].embedded ? { DB_DATABASE: ':memory:' } : {}),
      },
    });
    // Nothing connects until the first query, so no server is needed.
    const store = createStore(database);
    expect(store.capabilities).toEqual(DIALECT_REGISTRY[connection].capabilities);
    await store.close();
  });
});
