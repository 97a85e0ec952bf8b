import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { captureReportOf } from '../../src/capture/capture-report.js';
import type { CaptureStats } from '../../src/capture/capture-runner.js';
import { loadConfig } from '../../src/config/config.js';
import type { Activity } from '../../src/core/activity.js';
import { newActivityId, newBatchUuid } from '../../src/core/ids.js';
import { createActivityLogServer } from '../../src/http/create-activity-log-server.js';
import { generateSigningKeyPair } from '../../src/integrity/checkpoint.js';
import type { Monitoring } from '../../src/metrics/monitoring.js';
import { CaptureWatch } from '../../src/runtime/capture-watch.js';
import { publishCheckpoint } from '../../src/runtime/checkpoint-publisher.js';
import { type ActivityLog, composeActivityLog } from '../../src/runtime/create-activity-log.js';
import { startMonitoring } from '../../src/runtime/start-monitoring.js';
import { CapturePositionTable } from '../../src/store/capture-positions.js';
import { ChainHeadReader } from '../../src/store/seal-head.js';
import { storedActivity } from '../helpers/activity-factory.js';
import { FaultProxy } from '../helpers/fault-proxy.js';
import { type MigratedTable, migratedTable } from '../helpers/mariadb-table.js';
import { MARIADB, MYSQL_URL, serviceAvailable } from '../helpers/services.js';

/**
 * Debian's Chromium; playwright-core never downloads a browser here. Under `CI=true` a missing
 * browser fails the run; elsewhere the suite is skipped with one line saying what to install.
 */
const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'];
const ARTIFACTS_DIR = join(process.cwd(), 'test-artifacts', 'backoffice');
const ADMIN_TOKEN = 'admin-token-for-browser-tests';
const XSS = '<img src=x onerror=alert(1)>';
const SNAPSHOT_PATH = '/api/backoffice/activity-logs/performance';
/** Run in the page (as text: the test is compiled without the DOM library). */
const HORIZONTAL_OVERFLOW = 'document.documentElement.scrollWidth - window.innerWidth';

function chromiumAvailable(): boolean {
  if (existsSync(CHROMIUM_PATH)) return true;
  const message = `Chromium is not at ${CHROMIUM_PATH}; install it with: apt-get install -y chromium`;
  if (process.env.CI === 'true') throw new Error(`${message} (required under CI=true)`);
  console.warn(`skipping backoffice browser tests: ${message}`);
  return false;
}

function activity(index: number, overrides: Partial<Activity> = {}): Activity {
  return storedActivity({
    id: newActivityId(Date.UTC(2026, 0, 1) + index * 1000),
    logName: 'orders',
    description: `updated order ${index}`,
    subjectType: 'Order',
    subjectId: String(100 + (index % 5)),
    event: 'updated',
    causerType: 'User',
    causerId: index % 3 === 0 ? '8' : '7',
    ipAddress: '203.0.113.9',
    url: 'https://shop.example/orders',
    method: 'PATCH',
    userAgent: 'browser-test',
    createdAt: new Date(Date.UTC(2026, 0, 1) + index * 1000),
    ...overrides,
  });
}

// MariaDB behind the fault proxy, so the test can take the database away and watch the breaker open.
const run = chromiumAvailable() && (await serviceAvailable(MARIADB));

describe.runIf(run)('backoffice in a real browser', () => {
  let dir = '';
  let app: FastifyInstance;
  let activityLog: ActivityLog;
  let proxy: FaultProxy;
  let table: MigratedTable;
  let baseUrl = '';
  let browser: Browser;
  let page: Page;
  let monitoring: Monitoring | undefined;
  const consoleErrors: string[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'activity-log-browser-'));
    mkdirSync(ARTIFACTS_DIR, { recursive: true });
    table = await migratedTable('browser');
    proxy = await FaultProxy.start(MARIADB);
    const config = {
      database: { connectTimeoutMs: 500, queryTimeoutMs: 1000 },
      method: 'batch' as const,
      flushIntervalMs: 20,
      breakerFailures: 2,
      breakerCooldownMs: 120_000,
      adminToken: ADMIN_TOKEN,
      ingestToken: 'ingest-token',
      spoolDir: join(dir, 'spool'),
    };
    // Sealed, with a signing key and a checkpoint directory, so rows have inclusion proofs.
    const keys = generateSigningKeyPair();
    const signingKey = join(dir, 'signing-key.pem');
    writeFileSync(signingKey, keys.privateKeyPem, { mode: 0o600 });
    const checkpointDir = join(dir, 'checkpoints');
    const composed = composeActivityLog({
      env: {
        DATABASE_URL: `mysql://root@127.0.0.1:${proxy.port}/test`,
        ACTIVITY_LOG_TABLE: table.table,
        ACTIVITY_LOG_SEAL: 'on',
        ACTIVITY_LOG_SIGNING_KEY: signingKey,
        ACTIVITY_LOG_CHECKPOINT_DIR: checkpointDir,
      },
      config,
    });
    activityLog = composed.activityLog;
    const seeded: Activity[] = Array.from({ length: 45 }, (_, i) => activity(i));
    const batch = newBatchUuid();
    seeded.push(
      activity(50, {
        description: 'changed the total of order 42',
        subjectId: '42',
        causerId: '9',
        batchUuid: batch,
        properties: { attributes: { total: 10.5, status: 'paid' }, old: { total: 9.99, status: 'paid' } },
      }),
      activity(51, { description: XSS, subjectId: '42', causerId: '9', batchUuid: batch }),
    );
    await composed.store.insertMany(seeded);
    const heads = new ChainHeadReader({
      ...loadConfig({ env: { DATABASE_URL: MYSQL_URL, ACTIVITY_LOG_TABLE: table.table } }).database,
      poolMax: 1,
    });
    const head = await heads.read().finally(() => heads.close());
    const published = await publishCheckpoint(head!, {
      privateKeyPem: keys.privateKeyPem,
      dir: checkpointDir,
      webhookUrl: null,
    });
    expect(published.failures).toEqual([]);

    // Capture figures come from the activity database, read here without the fault proxy.
    monitoring = startMonitoring({
      config: composed.config,
      collector: composed.collector,
      alerts: false,
      capture: new CaptureWatch(loadConfig({ env: { DATABASE_URL: MYSQL_URL } }).database),
    });
    app = createActivityLogServer(composed, { monitoring });
    await app.listen({ host: '127.0.0.1', port: 0 });
    baseUrl = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    const probe = await fetch(`${baseUrl}${SNAPSHOT_PATH}`, {
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    });
    expect(probe.status).toBe(200);

    browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS });
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.on('pageerror', (error) => consoleErrors.push(`pageerror: ${error.message}`));
    page.on('dialog', (dialog) => {
      consoleErrors.push(`dialog: ${dialog.message()}`);
      void dialog.dismiss();
    });
    page.on('console', (message) => {
      if (message.type() !== 'error') return;
      const url = message.location().url;
      // The deliberately wrong sign-in answers 401, which Chromium reports for the document.
      if (url.endsWith('/backoffice/login') && message.text().includes('401')) return;
      consoleErrors.push(`${message.text()} (${url})`);
    });
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await app?.close();
    await monitoring?.close();
    await activityLog?.close();
    await proxy?.close();
    await table?.drop();
    if (dir !== '') rmSync(dir, { recursive: true, force: true });
  });

  async function visibleIds(): Promise<string[]> {
    return page
      .locator('#activities tbody tr.activity')
      .evaluateAll((rows) => rows.map((row) => row.dataset.id ?? ''));
  }

  it('sends an anonymous visitor to sign in, and back to the page after it', async () => {
    await page.goto(`${baseUrl}/backoffice/activity-logs?limit=25`);
    expect(new URL(page.url()).pathname).toBe('/backoffice/login');
    await page.fill('input[name="token"]', 'not-the-token');
    await page.click('button[type="submit"]');
    await expect.poll(() => page.locator('#message').textContent()).toContain('not the admin token');
    await page.fill('input[name="token"]', ADMIN_TOKEN);
    await page.click('button[type="submit"]');
    await page.waitForURL(/\/backoffice\/activity-logs\?/);
    await page.waitForSelector('#activities tbody tr.activity');
    const cookies = await page.context().cookies();
    expect(cookies.find((cookie) => cookie.name === 'activity_log_session')).toMatchObject({
      httpOnly: true,
      sameSite: 'Strict',
    });
  });

  it('filters by causer and pages older and newer without repeats', async () => {
    await page.fill('input[name="causer_type"]', 'User');
    await page.fill('input[name="causer_id"]', '7');
    await page.click('#filters button[type="submit"]');
    await page.waitForURL(/causer_id=7/);
    // 30 of the 45 seeded activities are by User #7: a page of 25, then one of 5.
    await expect.poll(async () => (await visibleIds()).length).toBe(25);
    const first = await visibleIds();
    expect(first).toHaveLength(25);
    const causers = await page.locator('#activities tbody tr.activity td:nth-child(6)').allTextContents();
    expect(new Set(causers)).toEqual(new Set(['User #7']));
    await page.click('#older');
    await expect.poll(async () => (await visibleIds())[0]).not.toBe(first[0]);
    const second = await visibleIds();
    expect(second).toHaveLength(5);
    expect(second.filter((id) => first.includes(id))).toEqual([]);
    expect(await page.locator('#older').isDisabled()).toBe(true);
    await page.click('#newer');
    await expect.poll(visibleIds).toEqual(first);
    expect(await page.locator('#newer').isDisabled()).toBe(true);
    await page.screenshot({ path: join(ARTIFACTS_DIR, 'activity-logs.png'), fullPage: true });
  });

  it('shows the change set as old → new, and batch and record links', async () => {
    await page.goto(`${baseUrl}/backoffice/activity-logs?subject_type=Order&subject_id=42`);
    await page.waitForSelector('#activities tbody tr.batch-head');
    expect(await page.locator('#activities tbody tr.batch-head').textContent()).toContain('2 activities');
    await page.locator('#activities tbody tr.activity', { hasText: 'changed the total' }).click();
    await page.waitForSelector('#detail:not([hidden])');
    const diff = await Promise.all(
      (await page.locator('#diff-rows tr').all()).map(async (row) => [
        (await row.getAttribute('class')) ?? '',
        ...(await row.locator('td').allTextContents()),
      ]),
    );
    expect(diff).toEqual([
      ['unchanged', 'status', '"paid"', '"paid"'],
      ['changed', 'total', '9.99', '10.5'],
    ]);
    const causerHref = await page.locator('#detail-fields a', { hasText: 'User #9' }).getAttribute('href');
    expect(causerHref).toBe('?causer_type=User&causer_id=9');
    await page.screenshot({ path: join(ARTIFACTS_DIR, 'activity-detail.png'), fullPage: true });
  });

  it('renders a description that looks like HTML as text', async () => {
    const cell = page.locator('#activities tbody td.description', { hasText: 'onerror' });
    expect(await cell.textContent()).toBe(XSS);
    expect(await page.locator('#activities tbody img').count()).toBe(0);
  });

  it('verifies shown rows in the browser, and says "not verified" once a row was changed with SQL', async () => {
    await page.goto(`${baseUrl}/backoffice/activity-logs?subject_type=Order&subject_id=42`);
    await page.waitForSelector('#activities tbody tr.activity');
    const row = page.locator('#activities tbody tr.activity', { hasText: 'changed the total' });
    const badge = row.locator('.proof-badge');
    await page.click('#verify-shown');
    const badges = page.locator('#activities tbody .proof-badge');
    await expect.poll(() => badges.allTextContents(), { timeout: 10_000 }).toEqual(['verified', 'verified']);
    // Chromium's WebCrypto checks Ed25519 itself: the badge does not lean on the server's check.
    expect(await badge.getAttribute('data-state')).toBe('verified');
    expect(await badge.getAttribute('title')).toMatch(/checkpoint of seal \d+ .*checked in this browser$/);
    // Clicking the button verifies; it does not open the row's detail.
    expect(await page.locator('#detail').isHidden()).toBe(true);
    await page.screenshot({ path: join(ARTIFACTS_DIR, 'activity-logs-verified.png'), fullPage: true });

    const id = await row.getAttribute('data-id');
    await table.db.query(`UPDATE \`${table.table}\` SET description = ? WHERE id = ?`, [
      'changed the total of order 43',
      id,
    ]);
    await page.reload();
    const changed = page.locator('#activities tbody tr.activity', { hasText: 'order 43' });
    await changed.locator('button.verify').click();
    await expect
      .poll(() => changed.locator('.proof-badge').textContent(), { timeout: 10_000 })
      .toBe('not verified');
    expect(await changed.locator('.proof-badge').getAttribute('title')).toMatch(
      /^the Merkle path does not reach the root of seal \d+ \(the row or its seal changed\)$/,
    );
    // The row's detail says what failed, not only the badge's title.
    await changed.locator('td.description').click();
    await expect
      .poll(() => page.locator('#detail-fields dd.proof-detail').textContent())
      .toMatch(/^not verified: the Merkle path does not reach the root of seal \d+/);
    await page.screenshot({ path: join(ARTIFACTS_DIR, 'activity-logs-not-verified.png'), fullPage: true });
  });

  it('shows a from/to of the URL in UTC, so filtering again keeps the same instants', async () => {
    await page.goto(
      `${baseUrl}/backoffice/activity-logs?from=${encodeURIComponent('2025-11-28T09:30:00+02:00')}&to=2025-11-29`,
    );
    // Chromium shows whole minutes without `:00`.
    const instant = (value: string | null) => Date.parse(`${value}Z`);
    await expect
      .poll(async () => instant(await page.inputValue('input[name="from"]')))
      .toBe(Date.parse('2025-11-28T07:30:00Z'));
    expect(instant(await page.inputValue('input[name="to"]'))).toBe(Date.parse('2025-11-29T00:00:00Z'));
    await page.click('#filters button[type="submit"]');
    await page.waitForURL(/from=2025-11-28T07%3A30/);
    const params = new URL(page.url()).searchParams;
    expect(instant(params.get('from'))).toBe(Date.parse('2025-11-28T07:30:00Z'));
    expect(instant(params.get('to'))).toBe(Date.parse('2025-11-29T00:00:00Z'));
  });

  it('fits a phone-width screen', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    await page.goto(`${baseUrl}/backoffice/activity-logs`);
    await page.waitForSelector('#activities tbody tr.activity');
    const overflow = await page.evaluate<number>(HORIZONTAL_OVERFLOW);
    expect(overflow).toBeLessThanOrEqual(0);
    await page.screenshot({ path: join(ARTIFACTS_DIR, 'activity-logs-phone.png'), fullPage: true });
    await page.setViewportSize({ width: 1280, height: 900 });
  });

  it('shows the snapshot live on the dashboard, and the breaker opening when the database goes away', async () => {
    await page.goto(`${baseUrl}/backoffice/activity-logs/performance`);
    await page.evaluate('window.loadedOnce = true');
    await expect.poll(() => page.locator('#connection').textContent(), { timeout: 10_000 }).toContain('Live');
    const api = async () =>
      (
        (await (
          await fetch(`${baseUrl}${SNAPSHOT_PATH}`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })
        ).json()) as { data: Record<string, number> }
      ).data;
    const tile = (field: string) => page.locator(`.tile[data-field="${field}"] .value`).textContent();
    const snapshot = await api();
    for (const field of ['total_processed', 'pending_jobs', 'failed_jobs', 'dropped_total']) {
      await expect
        .poll(() => tile(field), { timeout: 10_000 })
        .toBe((snapshot[field] ?? 0).toLocaleString('en-US'));
    }
    expect(await page.locator('#breaker-state').textContent()).toBe('Closed');

    const rateBefore = await tile('processing_rate');
    const chart = page.locator('#chart-live-rate');
    let producing = true;
    const producer = (async () => {
      for (let i = 0; producing; i++) {
        await activityLog.log({ description: `background ${i}`, logName: 'load' });
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    })();
    try {
      await expect.poll(() => tile('processing_rate'), { timeout: 15_000 }).not.toBe(rateBefore);
      await expect.poll(() => chart.getAttribute('data-last'), { timeout: 15_000 }).not.toBe('0');
    } finally {
      producing = false;
      await producer;
    }
    // Set on the page before the producer started: still there, so nothing reloaded the page.
    expect(await page.evaluate<boolean>('window.loadedOnce === true')).toBe(true);
    await page.screenshot({ path: join(ARTIFACTS_DIR, 'performance.png'), fullPage: true });

    await proxy.refuse();
    for (let i = 0; i < 6; i++) {
      await activityLog.log({ description: `while failing ${i}`, logName: 'load' }).catch(() => undefined);
      await new Promise((resolve) => setTimeout(resolve, 60));
    }
    await expect.poll(() => page.locator('#breaker-state').textContent(), { timeout: 10_000 }).toBe('Open');
    await page.screenshot({ path: join(ARTIFACTS_DIR, 'performance-breaker-open.png'), fullPage: true });
    await proxy.pass();
  });

  it('shows each captured stream on the dashboard: streaming while its figures are fresh, stale once they are old', async () => {
    const positions = new CapturePositionTable(loadConfig({ env: { DATABASE_URL: MYSQL_URL } }).database);
    const slot = `al_browser_${process.pid}`;
    const stats: CaptureStats = {
      state: 'streaming',
      kind: 'mariadb',
      streamKey: `mariadb:1@db/shop/${slot}`,
      slot,
      position: 'gtid:0-1-4242',
      positionSavedAtMs: Date.now(),
      startedAtMs: Date.now() - 60_000,
      eventsPerSecond: 37.5,
      activities: 1200,
      durableActivities: 1200,
      lagSeconds: 0.2,
      lagBytes: 512,
      retainedBytes: 2 * 1024 * 1024,
    };
    const where = { host: 'db-worker-1', pid: 5120 };
    try {
      await positions.ensure();
      await positions.saveStats(
        stats.streamKey,
        slot,
        JSON.stringify(captureReportOf(stats, where, Date.now())),
      );
      await page.goto(`${baseUrl}/backoffice/activity-logs/performance`);
      const row = page.locator('#capture tr', { hasText: slot });
      await expect.poll(() => row.textContent(), { timeout: 10_000 }).toContain('streaming');
      expect(await row.textContent()).toContain('37.5/s');
      expect(await row.textContent()).toContain('gtid:0-1-4242');
      await page.screenshot({ path: join(ARTIFACTS_DIR, 'performance-capture.png'), fullPage: true });
      const old = captureReportOf(stats, where, Date.now() - 60_000);
      await positions.saveStats(stats.streamKey, slot, JSON.stringify(old));
      await expect.poll(() => row.textContent(), { timeout: 10_000 }).toContain('stale');
      expect(await row.getAttribute('class')).toContain('stale');
    } finally {
      await positions.remove(stats.streamKey, slot).catch(() => undefined);
      await positions.close();
    }
  });

  it('fits the dashboard on a phone-width screen', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    await page.waitForTimeout(300);
    const overflow = await page.evaluate<number>(HORIZONTAL_OVERFLOW);
    expect(overflow).toBeLessThanOrEqual(0);
    await page.screenshot({ path: join(ARTIFACTS_DIR, 'performance-phone.png'), fullPage: true });
    await page.setViewportSize({ width: 1280, height: 900 });
  });

  it('had no console errors and ran no injected script', () => {
    expect(consoleErrors).toEqual([]);
  });

  it('shows "connection lost" when the server goes away', async () => {
    await app.close();
    await expect
      .poll(() => page.locator('#connection').textContent(), { timeout: 15_000 })
      .toContain('Connection lost');
    expect(await page.locator('#banner').isVisible()).toBe(true);
    await page.screenshot({ path: join(ARTIFACTS_DIR, 'performance-connection-lost.png'), fullPage: true });
  });
});
