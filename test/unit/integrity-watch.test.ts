import { createServer, type Socket } from 'node:net';
import { describe, expect } from 'vitest';
import { loadConfig } from '../../src/config/config.js';
import { IntegrityWatch } from '../../src/runtime/integrity-watch.js';
import { test as it } from '../helpers/test-context.js';

describe('IntegrityWatch', () => {
  it('answers within a second with read_error while the database takes connections and never answers', async ({
    defer,
  }) => {
    const sockets: Socket[] = [];
    const silent = createServer((socket) => {
      sockets.push(socket);
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    defer(
      () =>
        new Promise<void>((resolve) => {
          for (const socket of sockets) socket.destroy();
          silent.close(() => resolve());
        }),
    );
    const { port } = silent.address() as { port: number };
    const config = loadConfig({
      env: {
        DATABASE_URL: `mysql://root@127.0.0.1:${port}/test`,
        ACTIVITY_LOG_SEAL: 'on',
        DB_CONNECT_TIMEOUT_MS: '3000',
      },
    });
    const watch = new IntegrityWatch({ config, verify: null, publishing: true });
    defer(() => watch.close());
    const started = Date.now();
    const figures = await watch.figures(Date.now());
    expect(Date.now() - started).toBeLessThan(2000);
    expect(figures).toMatchObject({
      seals_written: 0,
      rows_sealed: 0,
      read_error: 'the database did not answer within 1 s',
      checkpoint: null,
      checkpoint_behind_seconds: 0,
    });
  });
});
