import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect } from 'vitest';
import { ActivityLogError } from '../../src/core/errors.js';
import { Spool } from '../../src/resilience/spool.js';
import { encodeSpoolRecord, SEGMENT_MAGIC } from '../../src/resilience/spool-record.js';
import { builtActivity } from '../helpers/activity-factory.js';
import { migratedTable } from '../helpers/mariadb-table.js';
import { MARIADB, MYSQL_URL, serviceAvailable } from '../helpers/services.js';
import { temporaryDirectory } from '../helpers/temporary-directory.js';
import { test as it } from '../helpers/test-context.js';

const mariadbUp = await serviceAvailable(MARIADB);
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BIN = join(ROOT, 'bin', 'activity-log.js');
/** Above Linux's highest possible pid, so the segments' owner is certainly gone. */
const GONE = `${2 ** 22 + 1}-0badc0de`;

function cli(args: readonly string[], env: Record<string, string>, cwd: string) {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd,
      env: { PATH: process.env.PATH ?? '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    child.once('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

describe.skipIf(!mariadbUp)('activity-log spool status|replay (MariaDB)', () => {
  beforeAll(() => {
    if (!existsSync(join(ROOT, 'dist', 'cli', 'main.js'))) {
      throw new Error('dist/ is missing: run `npm run build` (npm test does) before the CLI tests');
    }
  });

  it('reports what a dead process left, replays it into the store with a summary, and then reports it empty', async ({
    deferQuietly,
  }) => {
    const { table, count, drop } = await migratedTable('resilience_cli');
    deferQuietly(drop);
    const cwd = await temporaryDirectory(deferQuietly, 'activity-log-spool-cli-');
    const spoolDir = join(cwd, 'spool');
    await mkdir(spoolDir);
    const activities = Array.from({ length: 120 }, (_, i) =>
      builtActivity({ description: `left behind ${i}` }),
    );
    for (const [n, part] of [activities.slice(0, 70), activities.slice(70)].entries()) {
      await writeFile(
        join(
          spoolDir,
          `${String(Date.now() - 60_000 + n).padStart(13, '0')}-00000${n + 1}-${GONE}@${GONE}.seg`,
        ),
        Buffer.concat([SEGMENT_MAGIC, ...part.map(encodeSpoolRecord)]),
      );
    }
    const env = { DATABASE_URL: MYSQL_URL, ACTIVITY_LOG_TABLE: table, ACTIVITY_LOG_SPOOL_DIR: spoolDir };

    const status = await cli(['spool', 'status', '--json'], env, cwd);
    expect(status.stderr).toBe('');
    expect(status.code).toBe(0);
    expect(JSON.parse(status.stdout)).toMatchObject({
      dir: spoolDir,
      segments: 2,
      activities: 120,
      rejected: 0,
      owners: [{ owner: GONE, alive: false, segments: 2, activities: 120 }],
    });
    expect(JSON.parse(status.stdout).oldest_age_seconds).toBeGreaterThanOrEqual(59);
    const human = await cli(['spool'], env, cwd);
    expect(human.stdout).toMatch(/activities waiting\s+120/);

    const replay = await cli(['spool', 'replay'], env, cwd);
    expect(replay.code).toBe(0);
    expect(replay.stdout).toMatch(/^replayed 120 activities from 2 segment\(s\) in [\d.]+ s/);
    expect(replay.stderr.match(/^replayed .*\.seg/gm)).toHaveLength(2);
    expect((await count()).n).toBe(120);
    expect((await readdir(spoolDir)).filter((name) => name.endsWith('.seg'))).toEqual([]);

    const again = await cli(['spool', 'replay'], env, cwd);
    expect(again.stdout).toBe('the spool holds nothing to replay\n');
  });

  it('exits 1 with one line when the store cannot take the replay, keeping the spool', async ({
    deferQuietly,
  }) => {
    const cwd = await temporaryDirectory(deferQuietly, 'activity-log-spool-cli-');
    const spoolDir = join(cwd, 'spool');
    await mkdir(spoolDir);
    const activity = builtActivity({ description: 'kept' });
    const segment = `${String(Date.now()).padStart(13, '0')}-000001-${GONE}@${GONE}.seg`;
    await writeFile(join(spoolDir, segment), Buffer.concat([SEGMENT_MAGIC, encodeSpoolRecord(activity)]));
    const env = {
      DATABASE_URL: 'mysql://root@127.0.0.1:1/test',
      DB_CONNECT_TIMEOUT_MS: '500',
      ACTIVITY_LOG_SPOOL_DIR: spoolDir,
    };
    const replay = await cli(['spool', 'replay'], env, cwd);
    expect(replay.code).toBe(1);
    expect(replay.stderr).toMatch(/^activity-log: replay stopped with 1 activity still spooled: /m);
    expect((await readdir(spoolDir)).filter((name) => name.endsWith('.seg'))).toHaveLength(1);
  });

  it('rejects an unknown action as a usage error', async ({ deferQuietly }) => {
    const cwd = await temporaryDirectory(deferQuietly, 'activity-log-spool-cli-');
    const result = await cli(['spool', 'purge'], { ACTIVITY_LOG_SPOOL_DIR: join(cwd, 'spool') }, cwd);
    expect(result.code).toBe(2);
    expect(result.stderr).toBe(
      'activity-log: spool: unknown action "purge"; expected status, replay or rejected\n',
    );
  });

  it('spool rejected lists the refused activities, exports them as NDJSON ready to send again, and purges them', async ({
    deferQuietly,
  }) => {
    const cwd = await temporaryDirectory(deferQuietly, 'activity-log-spool-cli-');
    const spoolDir = join(cwd, 'spool');
    const refused = Array.from({ length: 3 }, (_, i) =>
      builtActivity({ description: `refused ${i}`, logName: 'cli' }),
    );
    const spool = new Spool({ dir: spoolDir, maxBytes: 1024 * 1024, warn: () => undefined });
    await spool.reject(
      refused.map((activity) => ({
        activity,
        error: new ActivityLogError('STORE_DATA_INVALID', 'CONSTRAINT `refuses` failed'),
      })),
    );
    await spool.close();
    const env = { ACTIVITY_LOG_SPOOL_DIR: spoolDir };

    const listed = await cli(['spool', 'rejected'], env, cwd);
    expect(listed.code).toBe(0);
    expect(listed.stdout).toMatch(/^3 activities refused as data in .*rejected\.ndjson, the oldest at /);
    for (const activity of refused) expect(listed.stdout).toContain(`${activity.id}  STORE_DATA_INVALID`);

    const exported = await cli(['spool', 'rejected', '--export'], env, cwd);
    expect(exported.code).toBe(0);
    const lines = exported.stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(lines.map((line) => line.id)).toEqual(refused.map((activity) => activity.id));
    expect(lines[0]).toMatchObject({ description: 'refused 0', log_name: 'cli' });

    const status = await cli(['spool', 'status', '--json'], env, cwd);
    expect(JSON.parse(status.stdout)).toMatchObject({ rejected: 3 });

    const misuse = await cli(['spool', 'status', '--purge'], env, cwd);
    expect(misuse.code).toBe(2);
    expect(misuse.stderr).toBe('activity-log: --purge goes with spool rejected, not spool status\n');

    const purged = await cli(['spool', 'rejected', '--purge'], env, cwd);
    expect(purged.code).toBe(0);
    expect(purged.stdout).toMatch(/^purged 3 activities from /);
    expect((await cli(['spool', 'rejected'], env, cwd)).stdout).toMatch(/^no refused activities in /);
  });
});
