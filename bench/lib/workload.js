// The workload every benchmark suite logs and inserts: one kind of activity (a user updating an
// order), its hand-built baseline, the table's columns, the raw multi-row INSERT it is compared
// against, and the per-call timing of log() against that baseline. It lives below bench/lib/ so
// that bench/run.js, which runs every top-level bench/*.js, does not take it for a suite.
import { median, percentile } from '../stats.js';

export const user = { type: 'User', id: 17 };
export const order = { type: 'Order', id: 4242 };
export const properties = {
  attributes: { total: 10.5, status: 'paid' },
  old: { total: 9.99, status: 'open' },
};

/** The log() input of activity `i`: the same activity each time but for the url. */
export function input(i) {
  return {
    description: 'updated order',
    logName: 'orders',
    event: 'updated',
    subject: order,
    causer: user,
    properties,
    ipAddress: '203.0.113.9',
    url: `https://shop.example/orders/${i}`,
    method: 'PATCH',
  };
}

/** Baseline: build the same row object by hand and serialize it — what any logger must at least do. */
export function baseline(i) {
  const row = {
    id: `0190a0b0-0000-7000-8000-${String(i).padStart(12, '0')}`,
    log_name: 'orders',
    description: 'updated order',
    subject_type: order.type,
    subject_id: String(order.id),
    event: 'updated',
    causer_type: user.type,
    causer_id: String(user.id),
    properties: JSON.stringify(properties),
    batch_uuid: null,
    ip_address: '203.0.113.9',
    url: `https://shop.example/orders/${i}`,
    method: 'PATCH',
    user_agent: null,
    created_at: new Date(),
  };
  return JSON.stringify(row);
}

/** The activity table's columns, in the order of {@link rowValues}. */
export const COLUMNS = [
  'id',
  'log_name',
  'description',
  'subject_type',
  'subject_id',
  'event',
  'causer_type',
  'causer_id',
  'properties',
  'batch_uuid',
  'ip_address',
  'url',
  'method',
  'user_agent',
  'created_at',
];

/** An activity's values in the order of {@link COLUMNS}, ready to bind to an INSERT. */
export function rowValues(activity) {
  return [
    activity.id,
    activity.logName,
    activity.description,
    activity.subjectType,
    activity.subjectId,
    activity.event,
    activity.causerType,
    activity.causerId,
    JSON.stringify(activity.properties),
    activity.batchUuid,
    activity.ipAddress,
    activity.url,
    activity.method,
    activity.userAgent,
    activity.createdAt,
  ];
}

/**
 * Rows of the same shape the logger makes (built by the library from {@link input}), as
 * {@link rowValues}; built before any timing starts.
 */
export async function sampleRows(count) {
  const { buildActivity } = await import('../../dist/core/build-activity.js');
  const { defaultModelResolver } = await import('../../dist/core/activity.js');
  const options = { resolveModel: defaultModelResolver, isSecretKey: () => false };
  return Array.from({ length: count }, (_, i) => rowValues(buildActivity(input(i), undefined, options)));
}

/**
 * The raw baseline: inserts `rows` (from {@link sampleRows}) into `table` through the mysql2
 * `connection` in multi-row INSERTs of `chunkSize` rows, one after another, and resolves to the
 * rows stored per second. Only the INSERTs are timed.
 */
export async function timeMultiRowInserts(connection, table, rows, chunkSize = 1000) {
  const columns = COLUMNS.join(', ');
  const placeholders = `(${COLUMNS.map(() => '?').join(', ')})`;
  const started = performance.now();
  for (let i = 0; i < rows.length; i += chunkSize) {
    const chunk = rows.slice(i, i + chunkSize);
    await connection.query(
      `INSERT INTO \`${table}\` (${columns}) VALUES ${chunk.map(() => placeholders).join(', ')}`,
      chunk.flat(),
    );
  }
  const seconds = (performance.now() - started) / 1000;
  return rows.length / seconds;
}

/**
 * Per-call cost of `activityLog.log()` and of {@link baseline}, interleaved call by call in blocks
 * of 1000, with a turn of the event loop between blocks so the logger's own work can run. Resolves
 * to the median and p99 of each, in nanoseconds.
 */
export async function logCostAgainstBaseline(activityLog, calls) {
  const ours = [];
  const base = [];
  let sink = 0;
  for (let block = 0; block < calls / 1000; block++) {
    for (let i = 0; i < 1000; i++) {
      const t0 = process.hrtime.bigint();
      sink += baseline(i).length;
      base.push(Number(process.hrtime.bigint() - t0));
      const t1 = process.hrtime.bigint();
      activityLog.log(input(i));
      ours.push(Number(process.hrtime.bigint() - t1));
    }
    await new Promise((resolve) => setImmediate(resolve));
  }
  if (sink === 0) throw new Error('unreachable');
  return {
    oursMedianNs: median(ours),
    oursP99Ns: percentile(ours, 99),
    baseMedianNs: median(base),
    baseP99Ns: percentile(base, 99),
  };
}
