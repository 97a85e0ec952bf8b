import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ERROR_CATALOGUE, ERROR_CODES, type ErrorCode } from '../../src/core/errors.js';

const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');

/** The lines of the README section under `heading`, up to the next heading of its level or above. */
function section(heading: string): string {
  const start = readme.indexOf(`\n${heading}\n`);
  if (start === -1) throw new Error(`README has no "${heading}" section`);
  const level = heading.indexOf(' ');
  const rest = readme.slice(start + heading.length + 2);
  const end = rest.search(new RegExp(`\\n#{1,${level}} `));
  return end === -1 ? rest : rest.slice(0, end);
}

/** The first cell of each table row that is one code in backticks. */
function documentedCodes(text: string): string[] {
  return [...text.matchAll(/^\|\s*`([A-Z][A-Z0-9_]*)`\s*\|/gm)].map((match) => match[1]!);
}

describe('error catalogue', () => {
  const catalogued = Object.keys(ERROR_CATALOGUE);
  const documented = documentedCodes(section('## Error codes'));

  it('documents every error code in the README', () => {
    expect(catalogued.filter((code) => !documented.includes(code))).toEqual([]);
  });

  it('documents no code the catalogue does not have', () => {
    expect(documented.length).toBeGreaterThan(0);
    expect(documented.filter((code) => !catalogued.includes(code))).toEqual([]);
  });

  it('documents each code once', () => {
    expect(documented.filter((code, index) => documented.indexOf(code) !== index)).toEqual([]);
  });

  it('names in the HTTP status table only codes answered with that status', () => {
    const rows = [...readme.matchAll(/^\|\s*(\d{3})\s*\|(.*)\|\s*$/gm)];
    const named = rows.flatMap(([, status, when]) =>
      [...when!.matchAll(/`([A-Z][A-Z0-9_]*)`/g)].map((match) => ({
        code: match[1]!,
        status: Number(status),
      })),
    );
    expect(named.length).toBeGreaterThan(0);
    for (const { code, status } of named) {
      expect(catalogued, `${code} in the HTTP status table`).toContain(code);
      expect({ code, status: ERROR_CATALOGUE[code as ErrorCode].httpStatus }).toEqual({ code, status });
    }
  });

  it('keeps ERROR_CODES as each code and its meaning', () => {
    expect(Object.keys(ERROR_CODES)).toEqual(catalogued);
    for (const code of catalogued as ErrorCode[]) {
      expect(ERROR_CODES[code]).toBe(ERROR_CATALOGUE[code].message);
    }
  });
});
