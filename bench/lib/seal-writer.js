// One writer process of `npm run bench -- seal`'s writers part: builds its batches, says
// `ready`, inserts them through a store when told `go`, and sends the rows it stored.
// Environment: DATABASE_URL, ACTIVITY_LOG_TABLE, ACTIVITY_LOG_SEAL, BENCH_WRITER_OFFSET,
// BENCH_WRITER_BATCHES, BENCH_WRITER_BATCH_SIZE, BENCH_WRITER_HEAD_FIRST=1 to keep the chain head
// taken before every INSERT (the dialect's overlapping of inserts switched off).
import { buildActivity } from '../../dist/core/build-activity.js';
import { loadConfig } from '../../dist/index.js';
import { DIALECT_REGISTRY } from '../../dist/store/dialect-registry.js';
import { KyselyStore, sealOptionsOf } from '../../dist/store/kysely-store.js';
import { input } from './workload.js';

const options = { resolveModel: (model) => model, isSecretKey: () => false };
const offset = Number(process.env.BENCH_WRITER_OFFSET);
const batchSize = Number(process.env.BENCH_WRITER_BATCH_SIZE);
const batches = Array.from({ length: Number(process.env.BENCH_WRITER_BATCHES) }, (_, b) =>
  Array.from({ length: batchSize }, (_, i) =>
    buildActivity(input(offset + b * batchSize + i), undefined, options),
  ),
);
const { database } = loadConfig({ env: process.env });
const dialect = DIALECT_REGISTRY[database.connection].create(database);
const store = new KyselyStore(
  process.env.BENCH_WRITER_HEAD_FIRST === '1'
    ? { ...dialect, overlapSealedInserts: async () => false }
    : dialect,
  database.table,
  sealOptionsOf(database),
);
process.send({ ready: true });
process.once('message', async () => {
  let stored = 0;
  for (const batch of batches) stored += await store.insertMany(batch);
  await store.close();
  process.send({ stored });
  process.disconnect();
});
