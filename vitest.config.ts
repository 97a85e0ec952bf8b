import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The Prisma suites import clients generated from test/prisma/*.prisma.
    globalSetup: ['test/prisma/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Integration suites share three real servers; files run in parallel, each in its own namespace.
    pool: 'forks',
    fileParallelism: true,
    maxWorkers: 2,
  },
});
