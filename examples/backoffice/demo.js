// `npm run demo [-- --load] [-- --port 3000 --app-port 3100 --concurrency 8 --duration 60]`
//
// Starts `activity-log serve` (dashboards, query API) and the back-office example app on the
// configured store (the embedded SQLite default needs no set-up), wired with the Fastify plugin
// and the TypeORM subscriber. With --load, a load generator creates, edits and deletes posts as
// different users, so the log and the live metrics fill up.
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

const { values: flags } = parseArgs({
  options: {
    load: { type: 'boolean', default: false },
    host: { type: 'string', default: process.env.HOST ?? '127.0.0.1' },
    port: { type: 'string', default: process.env.PORT ?? '3000' },
    'app-port': { type: 'string', default: process.env.DEMO_APP_PORT ?? '3100' },
    concurrency: { type: 'string', default: '8' },
    duration: { type: 'string' },
  },
});

if (!existsSync(`${ROOT}dist/integrations/fastify.js`)) {
  process.stdout.write('dist/ is missing or predates the integrations: building it first (npm run build)\n');
  const build = spawnSync('npm', ['run', 'build'], { cwd: ROOT, stdio: 'inherit' });
  if (build.status !== 0) process.exit(build.status ?? 1);
}

const { composeActivityLog, readEnv } = await import('activity-log');
const { ActivityLogSubscriber } = await import('activity-log/typeorm');
const { openDataSource, PostSchema, UserSchema } = await import('./data-source.js');
const { buildApp } = await import('./app.js');

// `.env` of the project counts here as in the `serve` child, so both use the same database.
const env = {
  ...readEnv(process.env, ROOT),
  ACTIVITY_LOG_ADMIN_TOKEN: process.env.ACTIVITY_LOG_ADMIN_TOKEN ?? randomBytes(18).toString('base64url'),
  ACTIVITY_LOG_INGEST_TOKEN: process.env.ACTIVITY_LOG_INGEST_TOKEN ?? randomBytes(18).toString('base64url'),
};
const adminToken = env.ACTIVITY_LOG_ADMIN_TOKEN;

const serve = await startServe();
const { activityLog, config } = composeActivityLog({ env });
const dataSource = await openDataSource(
  process.env.DEMO_APP_DATABASE ?? `${ROOT}storage/demo-backoffice.sqlite`,
);
dataSource.subscribers.push(
  new ActivityLogSubscriber(activityLog, {
    exceptAttributes: ['createdAt', 'updatedAt'],
    models: [
      [PostSchema, { logAll: true, logOnlyDirty: true, dontSubmitEmptyLogs: true, useLogName: 'posts' }],
      [UserSchema, { logAll: true, logExcept: ['password'], useLogName: 'users' }],
    ],
  }),
);
const app = await buildApp({
  activityLog,
  dataSource,
  dashboardUrl: `${serve.url}/backoffice/activity-logs/performance`,
});
const appUrl = await app.listen({ host: flags.host, port: Number(flags['app-port']) });

process.stdout.write(
  [
    '',
    `Back-office demo app:  ${appUrl}/   (method ${config.method})`,
    `activity-log serve:    ${serve.url}`,
    `  performance:  ${serve.url}/backoffice/activity-logs/performance`,
    `  log browser:  ${serve.url}/backoffice/activity-logs`,
    `  admin token:  ${adminToken}`,
    `  JSON:         curl -H "Authorization: Bearer ${adminToken}" ${serve.url}/api/backoffice/activity-logs`,
    `Try:  curl -X POST -H 'content-type: application/json' -H 'x-demo-user: 2' -d '{"title":"Hello"}' ${appUrl}/api/posts`,
    flags.load ? `Load generator: ${flags.concurrency} concurrent clients against ${appUrl}` : '',
    'Press Ctrl+C to stop.',
    '',
  ].join('\n'),
);

let stopping = false;
const load = flags.load ? startLoad(appUrl) : null;

process.once('SIGINT', () => void stop(0));
process.once('SIGTERM', () => void stop(0));
serve.child.once('exit', (code) => {
  if (!stopping) {
    process.stderr.write(`activity-log serve exited (code ${code}); stopping the demo\n`);
    void stop(1);
  }
});
if (flags.duration !== undefined) setTimeout(() => void stop(0), Number(flags.duration) * 1000).unref();

async function stop(code) {
  if (stopping) return;
  stopping = true;
  await load?.stop();
  await app.close();
  await activityLog.close();
  await dataSource.destroy();
  if (serve.child.exitCode === null) {
    const exited = new Promise((resolve) => serve.child.once('exit', resolve));
    serve.child.kill('SIGTERM');
    await exited;
  }
  process.exit(code);
}

/** Runs `activity-log serve` (which migrates the table) and resolves with its URL once it listens. */
function startServe() {
  const args = [`${ROOT}bin/activity-log.js`, 'serve', '--host', flags.host, '--port', flags.port];
  if ((env.ACTIVITY_LOG_METHOD ?? 'batch') === 'queue') args.push('--worker');
  const child = spawn(process.execPath, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stderr.pipe(process.stderr);
  return new Promise((resolve, reject) => {
    let output = '';
    const onData = (chunk) => {
      output += chunk;
      const match = /listening on (http:\/\/\S+)/.exec(output);
      if (match) {
        child.stdout.off('data', onData);
        child.stdout.resume();
        resolve({ child, url: match[1] });
      }
    };
    child.stdout.setEncoding('utf8').on('data', onData);
    child.once('exit', (code) => reject(new Error(`activity-log serve exited with code ${code}\n${output}`)));
  });
}

/** Clients that create, edit and delete posts as random users until stopped; prints a rate every 5 s. */
function startLoad(baseUrl) {
  const concurrency = Math.max(1, Number(flags.concurrency) || 8);
  let running = true;
  let requests = 0;
  let failures = 0;
  const call = async (method, path, user, body) => {
    const response = await fetch(`${baseUrl}${path}`, {
      method,
      headers: {
        'x-demo-user': String(user),
        'user-agent': 'activity-log-demo-load/1.0',
        ...(body ? { 'content-type': 'application/json' } : {}),
      },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
    requests++;
    if (!response.ok) failures++;
    return response.status === 204 ? null : response.json();
  };
  const client = async (n) => {
    while (running) {
      const user = 1 + (n % 2);
      try {
        const post = await call('POST', '/api/posts', user, {
          title: `Load post ${n}-${requests}`,
          body: 'x'.repeat(200),
        });
        await call('PATCH', `/api/posts/${post.id}`, user, { status: 'published' });
        await call('DELETE', `/api/posts/${post.id}`, user);
      } catch {
        failures++;
      }
    }
  };
  const clients = Array.from({ length: concurrency }, (_, n) => client(n));
  let last = 0;
  const timer = setInterval(() => {
    process.stdout.write(
      `load: ${((requests - last) / 5).toFixed(0)} requests/s, ${requests} total, ${failures} failed\n`,
    );
    last = requests;
  }, 5000);
  return {
    async stop() {
      running = false;
      clearInterval(timer);
      await Promise.allSettled(clients);
    },
  };
}
