import { test as base } from 'vitest';

/** Fixtures every integration test can ask for. */
export interface TestScope {
  /**
   * Registers teardown work, run after the test in reverse order of registration, each step
   * whether or not an earlier one failed (a failing step fails the test after the rest ran).
   */
  readonly defer: (cleanup: () => unknown) => void;
  /**
   * `defer` for teardown that may fail because the test broke the thing on purpose (a refused
   * connection, a killed process, a table never migrated): a failing step is ignored. Shares
   * `defer`'s order.
   */
  readonly deferQuietly: (cleanup: () => unknown) => void;
}

/** `it` with a `defer` fixture: cleanup registered next to what it cleans up. */
export const test = base.extend<TestScope>({
  // biome-ignore lint/correctness/noEmptyPattern: vitest reads fixture dependencies from the pattern
  defer: async ({}, use) => {
    const cleanups: (() => unknown)[] = [];
    await use((cleanup) => {
      cleanups.push(cleanup);
    });
    const errors: unknown[] = [];
    for (const cleanup of cleanups.reverse()) {
      try {
        await cleanup();
      } catch (error) {
        errors.push(error);
      }
    }
    if (errors.length === 1) throw errors[0];
    if (errors.length > 1) throw new AggregateError(errors, `${errors.length} cleanup steps failed`);
  },
  deferQuietly: async ({ defer }, use) => {
    await use((cleanup) => {
      defer(async () => {
        try {
          await cleanup();
        } catch {
          // The test left it broken on purpose.
        }
      });
    });
  },
});
