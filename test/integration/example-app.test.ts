import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

interface RunningDemo {
  readonly child: ChildProcess;
  readonly appUrl: string;
  readonly serveUrl: string;
  readonly adminToken: string;
  output(): string;
}

/** Starts `npm run demo` on free ports, with the embedded default store in a temporary directory. */
function startDemo(dir: string): Promise<RunningDemo> {
  const child = spawn('npm', ['run', 'demo', '--', '--port', '0', '--app-port', '0', '--duration', '120'], {
    cwd: ROOT,
    detached: true,
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? dir,
      DATABASE_URL: `sqlite:${join(dir, 'activity-log.sqlite')}`,
      ACTIVITY_LOG_SPOOL_DIR: join(dir, 'spool'),
      DEMO_APP_DATABASE: join(dir, 'app.sqlite'),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  return new Promise((resolve, reject) => {
    const onData = (chunk: string) => {
      output += chunk;
      const app = /Back-office demo app:\s+(http:\/\/\S+?)\/?\s/.exec(output);
      const serve = /activity-log serve:\s+(http:\/\/\S+)/.exec(output);
      const token = /admin token:\s+(\S+)/.exec(output);
      if (app && serve && token) {
        resolve({ child, appUrl: app[1]!, serveUrl: serve[1]!, adminToken: token[1]!, output: () => output });
      }
    };
    child.stdout!.setEncoding('utf8').on('data', onData);
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      output += chunk;
    });
    child.once('exit', (code) =>
      reject(new Error(`npm run demo exited with ${code} before it was ready:\n${output}`)),
    );
  });
}

/** Stops npm, its shell and the demo (one process group); resolves once their output pipes close. */
async function stopDemo(demo: RunningDemo): Promise<void> {
  const closed = new Promise<void>((resolve) => {
    if (demo.child.stdout!.closed) resolve();
    else demo.child.once('close', () => resolve());
  });
  try {
    process.kill(-demo.child.pid!, 'SIGTERM');
  } catch {
    // The group has already exited.
  }
  await closed;
}

describe('the example back-office app (npm run demo)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'activity-log-demo-'));
  let demo: RunningDemo | undefined;

  afterAll(async () => {
    if (demo !== undefined) await stopDemo(demo);
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves its page, and a change made through it shows up in the activity log served next to it', async () => {
    demo = await startDemo(dir);

    const page = await fetch(`${demo.appUrl}/`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<h1>Back-office demo</h1>');

    const created = await fetch(`${demo.appUrl}/api/posts`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-demo-user': '2', 'user-agent': 'demo-test/1.0' },
      body: JSON.stringify({ title: 'From the test' }),
    });
    expect(created.status).toBe(201);
    const post = (await created.json()) as { id: number };

    let rows: Record<string, unknown>[] = [];
    for (let attempt = 0; attempt < 100 && rows.length === 0; attempt++) {
      const response = await fetch(
        `${demo.serveUrl}/api/backoffice/activity-logs?subject_type=Post&subject_id=${post.id}`,
        { headers: { authorization: `Bearer ${demo.adminToken}` } },
      );
      expect(response.status).toBe(200);
      rows = ((await response.json()) as { data: Record<string, unknown>[] }).data;
      if (rows.length === 0) await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(rows).toEqual([
      expect.objectContaining({
        log_name: 'posts',
        event: 'created',
        causer_type: 'User',
        causer_id: '2',
        url: '/api/posts',
        method: 'POST',
        user_agent: 'demo-test/1.0',
        ip_address: '127.0.0.1',
        properties: { attributes: expect.objectContaining({ title: 'From the test', authorId: 2 }) },
      }),
    ]);

    const user = await fetch(`${demo.appUrl}/api/users`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-demo-user': '1' },
      body: JSON.stringify({ name: 'Cy', email: 'cy@example.test', password: 'hunter2' }),
    });
    expect(user.status).toBe(201);
    const { id: userId } = (await user.json()) as { id: number };
    let userRows: Record<string, unknown>[] = [];
    for (let attempt = 0; attempt < 100 && userRows.length === 0; attempt++) {
      const response = await fetch(
        `${demo.serveUrl}/api/backoffice/activity-logs?subject_type=User&subject_id=${userId}`,
        { headers: { authorization: `Bearer ${demo.adminToken}` } },
      );
      userRows = ((await response.json()) as { data: Record<string, unknown>[] }).data;
      if (userRows.length === 0) await new Promise((resolve) => setTimeout(resolve, 50));
    }
    // The demo logs users with logExcept: ['password'].
    expect(userRows.map((row) => [row.log_name, row.event, row.causer_id, row.properties])).toEqual([
      ['users', 'created', '1', { attributes: { id: userId, name: 'Cy', email: 'cy@example.test' } }],
    ]);

    await stopDemo(demo);
    expect(demo.output()).not.toMatch(/Error|exited \(code/);
  });
});
