#!/usr/bin/env node
// Generates the Prisma clients of the Prisma integration's tests (one per provider) into
// test/prisma/generated, offline: Prisma 7 needs no query engine, and generation never runs the
// schema engine, so any existing file stands in for its binary. Skips a client newer than its schema.
import { execFileSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dir = join(root, 'test', 'prisma');

export function generatePrismaClients() {
  for (const provider of ['postgresql', 'mysql', 'sqlite']) {
    const schema = join(dir, `schema.${provider}.prisma`);
    const client = join(dir, 'generated', provider, 'client.ts');
    if (existsSync(client) && statSync(client).mtimeMs > statSync(schema).mtimeMs) continue;
    execFileSync(
      process.execPath,
      [join(root, 'node_modules', 'prisma', 'build', 'index.js'), 'generate', '--schema', schema],
      {
        cwd: root,
        env: {
          ...process.env,
          PRISMA_SCHEMA_ENGINE_BINARY: process.env.PRISMA_SCHEMA_ENGINE_BINARY ?? process.execPath,
          PRISMA_HIDE_UPDATE_MESSAGE: '1',
        },
        stdio: ['ignore', 'ignore', 'inherit'],
      },
    );
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) generatePrismaClients();
