import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES } from '../../src/core/errors.js';

describe('error catalogue', () => {
  it('documents every error code in the README', () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    const undocumented = Object.keys(ERROR_CODES).filter(
      (code) => !new RegExp(`\\|\\s*\`${code}\`\\s*\\|`).test(readme),
    );
    expect(undocumented).toEqual([]);
  });
});
