import { afterEach, beforeEach, describe, expect, it, type MockInstance, vi } from 'vitest';
import { DEFAULT_PROCESS_BATCH_SIZE, processBatchSize } from '../../src/cli/commands/process.js';
import { EXIT_USAGE, main } from '../../src/cli/main.js';
import { optionalWholeNumber } from '../../src/cli/optional-whole-number.js';
import { wholeNumber } from '../../src/config/setting.js';
import { ActivityLogError } from '../../src/core/errors.js';

describe('main', () => {
  let stderr: MockInstance<typeof process.stderr.write>;
  let stdout: MockInstance<typeof process.stdout.write>;
  const written = (spy: MockInstance<typeof process.stderr.write>) =>
    spy.mock.calls.map((call) => String(call[0])).join('');

  beforeEach(() => {
    stderr = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    stdout = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
  });
  afterEach(() => {
    vi.restoreAllMocks();
  });

  const run = (...args: string[]) => main(['node', 'activity-log', ...args]);

  it('answers an unknown command with one line and the usage exit code', async () => {
    expect(await run('migrat')).toBe(EXIT_USAGE);
    const text = written(stderr);
    expect(text.split('\n').filter(Boolean)).toHaveLength(1);
    expect(text).toMatch(/unknown command 'migrat' \(Did you mean migrate\?\); commands: migrate, serve, /);
  });

  it('rejects bad prune flags before touching the database', async () => {
    expect(await run('prune', '--days=1.5')).toBe(EXIT_USAGE);
    expect(written(stderr)).toBe('activity-log: --days must be a whole number from 1 to 36500 (got "1.5")\n');
  });

  it('prints the help and the usage exit code when no command is given', async () => {
    expect(await run()).toBe(EXIT_USAGE);
    expect(written(stderr)).toContain('Usage: activity-log');
  });

  it('exits 0 for --help without printing an error', async () => {
    expect(await run('prune', '--help')).toBe(0);
    expect(written(stdout)).toContain('--dry-run');
    expect(written(stderr)).toBe('');
  });
});

describe('optionalWholeNumber', () => {
  it('passes absent flags and whole numbers in range', () => {
    expect(optionalWholeNumber('--days', undefined, wholeNumber(1, 10))).toBeUndefined();
    expect(optionalWholeNumber('--days', '7', wholeNumber(1, 10))).toBe(7);
    expect(optionalWholeNumber('--port', '0', wholeNumber(0, 65_535))).toBe(0);
  });

  it('rejects anything else as CLI_USAGE naming the flag', () => {
    for (const value of ['', 'abc', '-1', '1e3', '11', '0x10', '3.0']) {
      let error: unknown;
      try {
        optionalWholeNumber('--chunk', value, wholeNumber(1, 10));
      } catch (caught) {
        error = caught;
      }
      expect(error, value).toBeInstanceOf(ActivityLogError);
      expect((error as ActivityLogError).code).toBe('CLI_USAGE');
      expect((error as ActivityLogError).field).toBe('--chunk');
      expect((error as ActivityLogError).message).toContain('from 1 to 10');
    }
  });
});

describe('processBatchSize', () => {
  it('uses --batch-size, else 50 with batch, else ACTIVITY_LOG_BATCH_SIZE, for the spool and the queue alike', () => {
    const config = { batchSize: 500 };
    expect(processBatchSize('batch', undefined, config)).toBe(DEFAULT_PROCESS_BATCH_SIZE);
    expect(DEFAULT_PROCESS_BATCH_SIZE).toBe(50);
    expect(processBatchSize('queue', undefined, config)).toBe(500);
    expect(processBatchSize('batch', 20, config)).toBe(20);
    expect(processBatchSize('queue', 20, config)).toBe(20);
  });
});
