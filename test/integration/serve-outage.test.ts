import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import { describe, expect } from 'vitest';
import { newActivityId } from '../../src/core/ids.js';
import { FaultProxy } from '../helpers/fault-proxy.js';
import { waitFor } from '../helpers/queue.js';
import { type CliProcess, runCli, spawnCli } from '../helpers/queue-cli.js';
import { MARIADB, MYSQL_URL, serviceAvailable, uniqueSuffix } from '../helpers/services.js';
import { temporaryDirectory } from '../helpers/temporary-directory.js';
import { test as it } from '../helpers/test-context.js';

const mariadbUp = await serviceAvailable(MARIADB);
const INGEST_TOKEN = 'ingest-token-serve-outage';
const ADMIN_TOKEN = 'admin-token-serve-outage';

describe.skipIf(!mariadbUp)('serve while the database is unreachable (MariaDB behind a fault proxy)', () => {
  async function listening(served: CliProcess): Promise<string> {
    let url = '';
    await waitFor(
      () => {
        if (served.child.exitCode !== null) throw new Error(`serve exited early: ${served.stderr()}`);
        url = /listening on (http:\/\/\S+)/.exec(served.stdout())?.[1] ?? '';
        return url !== '';
      },
      20_000,
      'serve to listen',
    );
    return url;
  }

  it('starts, answers /health naming the store, accepts ingest into the spool, and stores it all once the database is back', async ({
    deferQuietly,
  }) => {
    const table = `serve_outage_${uniqueSuffix()}`;
    const db = await mysql.createConnection(MYSQL_URL);
    deferQuietly(async () => {
      await db.query(`DROP TABLE IF EXISTS \`${table}\``);
      await db.query(
        `DROP TABLE IF EXISTS \`${table}_migrations\`, \`${table}_seals\`, \`${table}_seals_pruned\``,
      );
      await db.end();
    });
    const proxy = await FaultProxy.start(MARIADB);
    deferQuietly(() => proxy.close());
    await proxy.refuse();
    const spoolDir = await temporaryDirectory(deferQuietly, 'activity-log-serve-outage-');

    const served = spawnCli(['serve', '--port=0'], {
      DATABASE_URL: `mysql://root@127.0.0.1:${proxy.port}/test`,
      ACTIVITY_LOG_TABLE: table,
      ACTIVITY_LOG_METHOD: 'batch',
      ACTIVITY_LOG_SPOOL_DIR: spoolDir,
      ACTIVITY_LOG_INGEST_TOKEN: INGEST_TOKEN,
      ACTIVITY_LOG_ADMIN_TOKEN: ADMIN_TOKEN,
      ACTIVITY_LOG_BREAKER_COOLDOWN_MS: '1000',
      DB_CONNECT_TIMEOUT_MS: '500',
    });
    deferQuietly(async () => {
      served.child.kill('SIGKILL');
      await served.exited;
    });
    const url = await listening(served);
    expect(served.stderr()).toMatch(/could not migrate .* serving anyway/);

    const health = await fetch(`${url}/health`);
    expect(health.status).toBe(503);
    const body = (await health.json()) as { failing: string[]; store: { ok: boolean } };
    expect(body.failing).toContain('store');
    expect(body.store.ok).toBe(false);

    const ids = Array.from({ length: 50 }, () => newActivityId());
    const ingested = await fetch(`${url}/api/activities`, {
      method: 'POST',
      headers: { authorization: `Bearer ${INGEST_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify(ids.map((id, i) => ({ id, description: `during the outage ${i}` }))),
    });
    expect(ingested.status).toBe(202);

    await proxy.pass();
    await waitFor(() => /migrated serve_outage_/.test(served.stdout()), 40_000, 'the background migration');
    await waitFor(
      async () => {
        const [rows] = await db.query(`SELECT COUNT(*) AS n FROM \`${table}\``);
        return Number((rows as { n: number }[])[0]!.n) === ids.length;
      },
      20_000,
      'the spooled activities to be stored',
    );
    await waitFor(async () => (await fetch(`${url}/health`)).status === 200, 10_000, '/health to be ok');

    served.child.kill('SIGTERM');
    expect((await served.exited).code).toBe(0);
    const [rows] = await db.query(`SELECT COUNT(*) AS n, COUNT(DISTINCT id) AS d FROM \`${table}\``);
    expect(rows).toEqual([{ n: ids.length, d: ids.length }]);
  });
});

describe('serve with a spool directory it cannot write', () => {
  it('refuses to start with one line naming ACTIVITY_LOG_SPOOL_DIR', async () => {
    const parent = await mkdtemp(join(tmpdir(), 'activity-log-unwritable-'));
    try {
      // A regular file where the spool's parent directory should be: not writable, even for root.
      const file = join(parent, 'not-a-directory');
      await writeFile(file, 'x');
      const { code, stderr } = await runCli(['serve', '--port=0'], {
        DATABASE_URL: 'sqlite::memory:',
        ACTIVITY_LOG_SPOOL_DIR: join(file, 'spool'),
      });
      expect(code).toBe(1);
      expect(stderr.trim().split('\n')).toHaveLength(1);
      expect(stderr).toMatch(
        /^activity-log: the spool directory .* cannot be written .*ACTIVITY_LOG_SPOOL_DIR/,
      );
    } finally {
      await rm(parent, { recursive: true, force: true });
    }
  });
});
