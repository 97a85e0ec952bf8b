import { describe, expect, it } from 'vitest';
import { workerFlags } from '../../src/cli/commands/work.js';
import { optionalFlag } from '../../src/cli/optional-flag.js';
import { loadConfig } from '../../src/config/config.js';
import { SETTINGS } from '../../src/config/config-settings.js';
import { type ActivityLogError, isActivityLogError } from '../../src/core/errors.js';

function thrown(action: () => unknown): ActivityLogError {
  try {
    action();
  } catch (error) {
    if (isActivityLogError(error)) return error;
    throw error;
  }
  throw new Error('expected an ActivityLogError');
}

describe('flags that stand in for a setting', () => {
  const config = loadConfig({ env: {} });

  it('are checked by that setting, and say what is allowed as its variable would', () => {
    const variable = thrown(() => loadConfig({ env: { ACTIVITY_LOG_TRIES: '0' } }));
    const flag = thrown(() => workerFlags({ tries: '0' }, config));
    expect(variable.message).toBe(
      'ACTIVITY_LOG_TRIES="0" is not allowed: expected a whole number from 1 to 100',
    );
    expect(flag.message).toBe('--tries must be a whole number from 1 to 100 (got "0")');
    expect(flag.code).toBe('CLI_USAGE');
    expect(flag.field).toBe('--tries');
  });

  it('take what the setting takes', () => {
    expect(
      workerFlags({ tries: '100', timeout: '86400', batchSize: '10000', queue: 'a.b-c_d' }, config),
    ).toMatchObject({
      tries: 100,
      timeoutSeconds: 86_400,
      batchSize: 10_000,
      queueName: 'a.b-c_d',
    });
    expect(thrown(() => workerFlags({ timeout: '86401' }, config)).message).toBe(
      '--timeout must be a whole number from 1 to 86400 (got "86401")',
    );
  });

  it('name the flag for text settings too', () => {
    expect(optionalFlag('--queue', undefined, SETTINGS.queueName.schema)).toBeUndefined();
    const error = thrown(() => optionalFlag('--queue', 'a:b', SETTINGS.queueName.schema));
    expect(error.message).toBe('--queue must be 1-100 letters, digits, ".", "_" or "-" (got "a:b")');
    expect(error.field).toBe('--queue');
  });

  it('say "or more" for a count without an upper bound', () => {
    expect(thrown(() => workerFlags({ maxJobs: '0' }, config)).message).toBe(
      '--max-jobs must be a whole number 1 or more (got "0")',
    );
  });
});
