import { describe, expect, it } from 'vitest';
import { CaptureRunner } from '../../src/capture/capture-runner.js';
import type { CaptureSource } from '../../src/capture/capture-source.js';
import type { CapturedTransaction } from '../../src/capture/row-change.js';
import { ActivityLogError } from '../../src/core/errors.js';

type Attempt = 'lost' | 'unsuitable' | { readonly transactions: number } | 'open-then-lost';

/** A source that plays one scripted attempt per run() call, recording where each started. */
function scriptedSource(script: Attempt[]): CaptureSource & { readonly starts: (string | null)[] } {
  const starts: (string | null)[] = [];
  let stopped: () => void = () => undefined;
  let next = 0;
  return {
    kind: 'test',
    streamKey: 'test:1/db/slot',
    defaultSchema: 'public',
    starts,
    async run(from, handle, opened) {
      starts.push(from);
      const attempt = script[next++];
      if (attempt === undefined) return new Promise<void>((resolve) => (stopped = resolve));
      if (attempt === 'lost') throw new Error('connection lost');
      if (attempt === 'unsuitable') throw new ActivityLogError('CAPTURE_SOURCE_UNSUITABLE', 'slot dropped');
      opened?.();
      if (attempt === 'open-then-lost') throw new Error('connection lost');
      for (let i = 0; i < attempt.transactions; i++) {
        const position = `${next}/${i}`;
        await handle(transaction(position));
      }
      throw new Error('connection lost after transactions');
    },
    confirm: () => undefined,
    caughtUp: () => true,
    lag: async () => ({ bytes: 0, retainedBytes: 0 }),
    async stop() {
      stopped();
    },
  };
}

function transaction(position: string): CapturedTransaction {
  return {
    position,
    resumePosition: position,
    commitTime: new Date(),
    tag: null,
    changes: [
      {
        schema: 'public',
        table: 't',
        event: 'created',
        old: null,
        new: { id: 1 },
        unchanged: [],
        keyColumns: ['id'],
      },
    ],
    firstIndex: 0,
  };
}

function runnerOptions(source: CaptureSource, warnings: string[] = []) {
  return {
    source,
    logger: { logMany: async () => [], flush: async () => undefined },
    positions: { save: async () => undefined },
    slot: 'slot',
    mapping: {
      logName: 'capture',
      subjectTypes: new Map(),
      excludedColumns: new Set<string>(),
      isSecretKey: () => false,
    },
    warn: (line: string) => warnings.push(line),
  };
}

function runnerFor(source: CaptureSource, warnings: string[]): CaptureRunner {
  return new CaptureRunner({
    ...runnerOptions(source, warnings),
    reconnectDelayMs: 5,
    maxReconnectDelayMs: 20,
  });
}

const delaysIn = (warnings: string[]) =>
  warnings.flatMap((line) => {
    const match = /reconnecting in (\d+) ms/.exec(line);
    return match === null ? [] : [Number(match[1])];
  });

describe('capture runner: reading again after the stream broke', () => {
  it('waits twice as long after each failed attempt up to the cap, and from the first wait again once a transaction came through', async () => {
    const source = scriptedSource(['lost', 'lost', 'lost', 'lost', { transactions: 2 }, 'lost']);
    const warnings: string[] = [];
    const runner = runnerFor(source, warnings);
    const running = runner.run('0/0');
    await new Promise((resolve) => setTimeout(resolve, 300));
    await runner.stop();
    await running;
    expect(delaysIn(warnings)).toEqual([5, 10, 20, 20, 5, 10]);
    // Read again from the last durable position: the saved one, then the last transaction's.
    expect(source.starts).toEqual(['0/0', '0/0', '0/0', '0/0', '0/0', '5/1', '5/1']);
    expect(warnings.filter((line) => line.includes('is read again'))).toHaveLength(1);
  });

  it('stops with the error when it cannot heal, without waiting', async () => {
    const source = scriptedSource(['lost', 'unsuitable']);
    const warnings: string[] = [];
    const runner = runnerFor(source, warnings);
    await expect(runner.run(null)).rejects.toThrow('slot dropped');
    expect(delaysIn(warnings)).toEqual([5]);
    expect(runner.stats().state).toBe('stopped');
  });

  it('reports reconnecting while it waits to read again', async () => {
    const source = scriptedSource(['lost']);
    const runner = new CaptureRunner({ ...runnerOptions(source), reconnectDelayMs: 60_000 });
    const running = runner.run(null);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(runner.stats().state).toBe('reconnecting');
    await runner.stop();
    await running;
    expect(runner.stats().state).toBe('stopped');
  });

  it('stops at once when asked to while it waits', async () => {
    const source = scriptedSource(['open-then-lost']);
    const warnings: string[] = [];
    const runner = new CaptureRunner({ ...runnerOptions(source, warnings), reconnectDelayMs: 60_000 });
    const running = runner.run(null);
    await new Promise((resolve) => setTimeout(resolve, 20));
    const started = Date.now();
    await runner.stop();
    await running;
    expect(Date.now() - started).toBeLessThan(1000);
    expect(source.starts).toEqual([null]);
  });
});
