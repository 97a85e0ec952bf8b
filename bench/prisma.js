// Per-operation cost of the Prisma integration on PostgreSQL (driver adapter `@prisma/adapter-pg`):
// the same client with and without `withActivityLog`, taking turns in one run. `update` by primary
// key (the extension adds a read of the recorded fields and makes the update conditional on them),
// and `updateMany` of 2,000 rows (the extension reads the rows before and after in a transaction). Activities go to an in-memory store in `batch`
// mode, so the figures are the integration's cost, not the activity store's.
// Usage: npm run bench -- prisma (or node bench/prisma.js after a build).
import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { PrismaPg } from '@prisma/adapter-pg';
import pg from 'pg';
import { createActivityLog } from '../dist/index.js';
import { withActivityLog } from '../dist/integrations/prisma.js';
import { generatePrismaClients } from '../scripts/generate-prisma-clients.js';
import { machine, median, printTable, ratio } from './stats.js';

const URL = process.env.BENCH_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const UPDATES = Number(process.env.BENCH_UPDATES ?? 3_000);
const BLOCK = 250;
const BULK_ROWS = 2_000;
const BULK_ROUNDS = 5;

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

/** The generated client is TypeScript; compile it once to plain JavaScript for Node to import. */
async function loadClient() {
  generatePrismaClients();
  const out = join(root, 'test', 'prisma', 'generated', 'js-postgresql');
  execFileSync(process.execPath, [
    join(root, 'node_modules', 'typescript', 'bin', 'tsc'),
    ...['--outDir', out, '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2023'],
    ...['--skipLibCheck', '--declaration', 'false'],
    join(root, 'test', 'prisma', 'generated', 'postgresql', 'client.ts'),
  ]);
  return (await import(pathToFileURL(join(out, 'client.js')).href)).PrismaClient;
}

const memoryStore = {
  capabilities: { dialect: 'sqlite', maxRowsPerInsert: 1000 },
  async migrate() {
    return { from: 1, to: 1 };
  },
  async insertMany(activities) {
    return activities.length;
  },
  async query() {
    return { data: [], nextCursor: null };
  },
  async prune() {
    return 0;
  },
  async ping() {},
  async close() {},
};

export async function run() {
  const PrismaClient = await loadClient();
  const schema = `bench_prisma_${process.pid}`;
  const admin = new pg.Client({ connectionString: URL });
  await admin.connect();
  await admin.query(`CREATE SCHEMA "${schema}"`);
  await admin.query(
    `CREATE TABLE "${schema}".posts (id serial PRIMARY KEY, title varchar(100) NOT NULL, body varchar(500) NOT NULL DEFAULT '', secret_note varchar(100), deleted_at timestamp(3))`,
  );
  await admin.query(
    `CREATE TABLE "${schema}".comments (id serial PRIMARY KEY, text varchar(200) NOT NULL, post_id int)`,
  );
  const activityLog = createActivityLog({
    env: {},
    store: memoryStore,
    config: { method: 'batch', batchSize: 1000 },
  });
  const plain = new PrismaClient({ adapter: new PrismaPg({ connectionString: URL, max: 4 }, { schema }) });
  const logged = withActivityLog(plain, activityLog, {
    models: { Post: { logAll: true, logOnlyDirty: true } },
  });
  try {
    await plain.post.createMany({
      data: Array.from({ length: BULK_ROWS }, (_, i) => ({ title: `post ${i}` })),
    });
    const ids = (await plain.post.findMany({ select: { id: true }, take: 100 })).map((row) => row.id);
    let n = 0;
    const updateBlock = async (client) => {
      const began = process.hrtime.bigint();
      for (let i = 0; i < BLOCK; i++) {
        n++;
        await client.post.update({ where: { id: ids[n % ids.length] }, data: { body: `body ${n}` } });
      }
      return Number(process.hrtime.bigint() - began) / 1000 / BLOCK;
    };
    await updateBlock(plain);
    await updateBlock(logged);
    const update = { without: [], with: [] };
    for (let done = 0; done < UPDATES; done += BLOCK) {
      update.without.push(await updateBlock(plain));
      update.with.push(await updateBlock(logged));
    }
    const bulkRound = async (client) => {
      const began = process.hrtime.bigint();
      const { count } = await client.post.updateMany({ where: {}, data: { body: `bulk ${++n}` } });
      if (count !== BULK_ROWS) throw new Error(`updateMany changed ${count} rows, expected ${BULK_ROWS}`);
      return Number(process.hrtime.bigint() - began) / 1e6;
    };
    await bulkRound(plain);
    await bulkRound(logged);
    const bulk = { without: [], with: [] };
    for (let round = 0; round < BULK_ROUNDS; round++) {
      bulk.without.push(await bulkRound(plain));
      bulk.with.push(await bulkRound(logged));
    }
    await activityLog.flush?.();
    const summary = (samples, unit) => ({
      [`without${unit}`]: Math.round(median(samples.without) * 10) / 10,
      [`with${unit}`]: Math.round(median(samples.with) * 10) / 10,
      ratio: ratio(median(samples.with), median(samples.without)),
      samplesWithout: samples.without.map((v) => Math.round(v * 10) / 10),
      samplesWith: samples.with.map((v) => Math.round(v * 10) / 10),
    });
    const results = {
      machine: machine(),
      update: summary(update, 'MicrosPerOp'),
      updateMany2000: summary(bulk, 'Ms'),
    };
    printTable('Prisma on PostgreSQL: with and without withActivityLog (medians)', [
      ['update by id, µs/op', JSON.stringify(results.update)],
      ['updateMany of 2,000 rows, ms', JSON.stringify(results.updateMany2000)],
    ]);
    return results;
  } finally {
    await plain.$disconnect();
    await activityLog.close();
    await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await admin.end();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await run();
