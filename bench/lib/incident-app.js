// The application of the incident benchmark (bench/incident.js), run as a child process so that
// its CPU time and event-loop delay are its own: a Fastify app with one Sequelize model on
// MariaDB (a pool of 10 connections). `PATCH /orders/:id` reads the order and updates it; the
// update is one model event, watched by three loggers as an application watches one model for
// three audiences (the order's history, billing, a full audit trail), so every request makes
// three activities through the model hooks:
//
//   none    no activity logging;
//   naive   the incident's design: three `afterUpdate` hooks, each one awaited INSERT through the
//           app's own Sequelize pool;
//   sync    `logSequelizeModels` three times, ACTIVITY_LOG_METHOD=sync;
//   batch   the same with `batch`;
//   queue   the same with `queue` (a `work` process stores the jobs);
//   outage  `batch`, while the parent cuts the activity database for part of the run.
//
// Settings arrive as JSON in BENCH_INCIDENT_APP; the parent drives it over IPC: `measure` starts
// the counters (CPU, event-loop utilisation and delay, and the CPU profile when asked), `report`
// ends them and answers with the figures, `close` flushes the activity log and exits.
import { AsyncLocalStorage } from 'node:async_hooks';
import { randomUUID } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { Session } from 'node:inspector/promises';
import { join } from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import Fastify from 'fastify';
import { DataTypes, Sequelize } from 'sequelize';
import { createActivityLog } from '../../dist/index.js';
import { activityLogPlugin } from '../../dist/integrations/fastify.js';
import { logSequelizeModels } from '../../dist/integrations/sequelize.js';
import { COLUMNS } from './workload.js';

const settings = JSON.parse(process.env.BENCH_INCIDENT_APP ?? '{}');
const { variant, database, ordersTable, activityTable } = settings;

const sequelize = new Sequelize(database, 'root', '', {
  host: '127.0.0.1',
  port: settings.appDbPort,
  dialect: 'mysql',
  logging: false,
  // The incident's pool: 10 connections; a request that waits longer than this for one fails.
  pool: { max: 10, min: 0, acquire: settings.acquireTimeoutMs, idle: 30_000 },
});

const Order = sequelize.define(
  'Order',
  {
    id: { type: DataTypes.INTEGER, primaryKey: true },
    status: { type: DataTypes.STRING(20), allowNull: false },
    total: { type: DataTypes.DOUBLE, allowNull: false },
    version: { type: DataTypes.INTEGER, allowNull: false },
  },
  { tableName: ordersTable, timestamps: false },
);

const STATUSES = ['open', 'paid', 'packed', 'shipped'];
let logged = 0;
let logErrors = 0;
const warnings = [];
let activityLog = null;

/** The three audiences of one model event (the same for the naive hooks and ours). */
const WATCHERS = [
  { logName: 'orders', options: { logOnly: ['status', 'total'], logOnlyDirty: true } },
  { logName: 'billing', options: { logOnly: ['total'] } },
  { logName: 'audit', options: { logAll: true } },
];

const app = Fastify({ logger: false });
// Requests being handled: the parent waits for none before it counts what was logged.
let inFlight = 0;
app.addHook('onRequest', (_req, _reply, next) => {
  inFlight++;
  next();
});
app.addHook('onResponse', (_req, _reply, next) => {
  inFlight--;
  next();
});
const request = new AsyncLocalStorage();
const causerOf = (req) => ({ type: 'User', id: Number(req.headers['x-user-id'] ?? 1) });

if (variant === 'naive') {
  // The incident's application: its own request context and one INSERT per model event, awaited
  // in the hook, through the pool the application's own queries use.
  app.addHook('onRequest', (req, _reply, next) => request.run(req, next));
  const placeholders = COLUMNS.map(() => '?').join(', ');
  const sql = `INSERT INTO \`${activityTable}\` (${COLUMNS.join(', ')}) VALUES (${placeholders})`;
  for (const { logName, options } of WATCHERS) {
    Order.addHook('afterUpdate', `naive-${logName}`, async (order) => {
      logged++;
      const req = request.getStore();
      const causer = req === undefined ? null : causerOf(req);
      const keys = options.logAll ? Object.keys(order.dataValues) : options.logOnly;
      const changed = new Set(order.changed() || []);
      const attributes = {};
      const old = {};
      for (const key of keys) {
        if (options.logOnlyDirty && !changed.has(key)) continue;
        attributes[key] = order.getDataValue(key);
        old[key] = order.previous(key);
      }
      const row = [
        randomUUID(),
        logName,
        'updated',
        'Order',
        String(order.id),
        'updated',
        causer?.type ?? null,
        causer === null ? null : String(causer.id),
        JSON.stringify({ attributes, old }),
        null,
        req?.ip ?? null,
        req?.url ?? null,
        req?.method ?? null,
        req?.headers['user-agent'] ?? null,
        new Date(),
      ];
      try {
        await sequelize.query(sql, { replacements: row });
      } catch (error) {
        logErrors++;
        throw error;
      }
    });
  }
} else if (variant !== 'none') {
  const method = variant === 'outage' ? 'batch' : variant;
  activityLog = createActivityLog({
    env: {
      DATABASE_URL: `mysql://root@127.0.0.1:${settings.activityDbPort}/${database}`,
      ACTIVITY_LOG_TABLE: activityTable,
      ACTIVITY_LOG_METHOD: method,
      ACTIVITY_LOG_SPOOL_DIR: settings.spoolDir,
      ...(settings.flushIntervalMs === undefined
        ? {}
        : { ACTIVITY_LOG_FLUSH_INTERVAL_MS: String(settings.flushIntervalMs) }),
      ...(method === 'queue'
        ? {
            QUEUE_CONNECTION: 'redis',
            REDIS_URL: `redis://127.0.0.1:${settings.redisPort}`,
            ACTIVITY_LOG_QUEUE_NAME: settings.queueName,
          }
        : {}),
    },
    warn: (line) => warnings.push(line),
  });
  const counted = {
    ...activityLog,
    log(input) {
      logged++;
      return activityLog.log(input);
    },
  };
  await app.register(activityLogPlugin, { causer: causerOf });
  for (const { logName, options } of WATCHERS) {
    logSequelizeModels(counted, {
      models: [[Order, { ...options, useLogName: logName, recordEvents: ['updated'] }]],
      onDeliveryError: () => {
        logErrors++;
      },
    });
  }
}

app.patch('/orders/:id', async (req, reply) => {
  try {
    const order = await Order.findByPk(Number(req.params.id));
    if (order === null) return reply.code(404).send({ error: 'no such order' });
    const next = STATUSES[(STATUSES.indexOf(order.status) + 1) % STATUSES.length];
    await order.update({
      status: next,
      total: Math.round((order.total + 0.5) * 100) / 100,
      version: order.version + 1,
    });
    return { id: order.id, version: order.version };
  } catch (error) {
    // Pool exhausted (no connection within the acquire timeout) or the database failed.
    return reply.code(503).send({ error: error.name });
  }
});

await sequelize.authenticate();
await app.listen({ port: 0, host: '127.0.0.1' });

const delay = monitorEventLoopDelay({ resolution: 1 });
let window = null;
let session = null;

process.on('message', async (message) => {
  if (message.type === 'measure') {
    if (settings.profileDir !== undefined) {
      session = new Session();
      session.connect();
      await session.post('Profiler.enable');
      await session.post('Profiler.setSamplingInterval', { interval: 200 });
      await session.post('Profiler.start');
    }
    delay.reset();
    delay.enable();
    window = { cpu: process.cpuUsage(), elu: performance.eventLoopUtilization(), logged, logErrors };
    process.send({ type: 'measuring' });
  } else if (message.type === 'report') {
    delay.disable();
    const cpu = process.cpuUsage(window.cpu);
    const elu = performance.eventLoopUtilization(window.elu);
    let profile = null;
    if (session !== null) {
      const { profile: taken } = await session.post('Profiler.stop');
      profile = join(settings.profileDir, `incident-${settings.step}-${variant}-${settings.rate}.cpuprofile`);
      await writeFile(profile, JSON.stringify(taken));
      session.disconnect();
      session = null;
    }
    process.send({
      type: 'report',
      cpuUs: cpu.user + cpu.system,
      eluActiveMs: elu.active,
      eluUtilization: elu.utilization,
      delayP99Ms: delay.percentile(99) / 1e6,
      delayMaxMs: delay.max / 1e6,
      logged: logged - window.logged,
      logErrors: logErrors - window.logErrors,
      profile,
    });
  } else if (message.type === 'count') {
    process.send({ type: 'count', logged, inFlight });
  } else if (message.type === 'close') {
    let closeError = null;
    await app.close();
    try {
      await activityLog?.close();
    } catch (error) {
      closeError = error.message;
    }
    await sequelize.close();
    process.send({ type: 'closed', logged, logErrors, closeError, warnings: warnings.slice(-20) });
    process.disconnect();
  }
});

process.send({ type: 'ready', port: app.server.address().port });
