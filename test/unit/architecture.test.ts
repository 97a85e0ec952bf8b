import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const SRC = resolve(dirname(fileURLToPath(import.meta.url)), '../../src');

/**
 * The layers of `src/`, lowest first: a layer may import its own folder and any layer below it.
 * `cli`, `http` and `integrations` are one layer, the entry points, so `serve` may build the server.
 * `capture` (the change sources) reads the application's database and turns its row changes into
 * activities; runtime/ and the CLI above it wire it to an activity log.
 */
const LAYERS: readonly (readonly string[])[] = [
  ['core'],
  ['integrity'],
  ['store'],
  ['resilience'],
  ['delivery'],
  ['metrics'],
  ['capture'],
  ['runtime'],
  ['cli', 'http', 'integrations'],
];

/** Readable by every layer; it reads nothing in `src/` but the error catalogue. */
const CONFIG = 'config';
const CONFIG_MAY_IMPORT: readonly string[] = ['core/errors.ts'];

/** Package entry files (`activity-log`, `activity-log/worker`, …) may import anything. */
function isEntryFile(file: string): boolean {
  return file === 'index.ts' || file.startsWith('entry/');
}

interface Import {
  /** Importing file, relative to `src/`. */
  readonly file: string;
  /** The specifier as written. */
  readonly specifier: string;
  /** Imported file, relative to `src/`. */
  readonly target: string;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.name.endsWith('.ts') ? [path] : [];
  });
}

/** `import … from`, `import type … from`, `export … from`, side-effect `import '…'` and `import('…')`. */
const SPECIFIER =
  /(?:^|[\s;])(?:import|export)\s+(?:type\s+)?(?:[^'";]*?\s+from\s+)?['"]([^'"]+)['"]|\bimport\(\s*['"]([^'"]+)['"]\s*\)/g;

function importsOf(path: string): Import[] {
  const file = toSrcPath(path);
  const text = readFileSync(path, 'utf8').replace(/\/\*[\s\S]*?\*\/|^\s*\/\/.*$/gm, '');
  const found: Import[] = [];
  for (const match of text.matchAll(SPECIFIER)) {
    const specifier = match[1] ?? match[2]!;
    if (!specifier.startsWith('.')) continue;
    const target = toSrcPath(resolve(dirname(path), specifier).replace(/\.js$/, '.ts'));
    found.push({ file, specifier, target });
  }
  return found;
}

function toSrcPath(path: string): string {
  return relative(SRC, path).split(sep).join('/');
}

function folderOf(file: string): string {
  const slash = file.indexOf('/');
  return slash === -1 ? '' : file.slice(0, slash);
}

function layerOf(folder: string): number {
  return LAYERS.findIndex((layer) => layer.includes(folder));
}

/** Why an import breaks the direction, or null when it is allowed. */
function violation({ file, target }: Import): string | null {
  if (isEntryFile(file)) return null;
  if (target.startsWith('..')) return 'imports from outside src/';
  const from = folderOf(file);
  const to = folderOf(target);
  if (from === CONFIG) {
    return to === CONFIG || CONFIG_MAY_IMPORT.includes(target)
      ? null
      : `config/ imports nothing in src/ but ${CONFIG_MAY_IMPORT.join(', ')}`;
  }
  if (layerOf(from) === -1) return `${from === '' ? 'src/' : `${from}/`} is not a layer (list it in LAYERS)`;
  if (isEntryFile(target)) return 'only applications import the package entry files';
  if (to === CONFIG) return null;
  if (layerOf(to) === -1) return `${to}/ is not a layer (list it in LAYERS)`;
  if (layerOf(to) > layerOf(from)) {
    return `${from}/ may import only ${describeBelow(layerOf(from))}; ${to}/ is above it`;
  }
  return null;
}

function describeBelow(layer: number): string {
  const folders = LAYERS.slice(0, layer + 1).flat();
  return [...folders, CONFIG].map((folder) => `${folder}/`).join(', ');
}

describe('architecture', () => {
  const imports = sourceFiles(SRC).flatMap(importsOf);

  it('reads the import graph of src/', () => {
    expect(imports.length).toBeGreaterThan(100);
    expect(imports).toContainEqual(
      expect.objectContaining({ file: 'runtime/create-activity-log.ts', target: 'core/logger.ts' }),
    );
  });

  it('imports only point down the layers: entry points → runtime → metrics → capture → delivery → resilience → store → integrity → core', () => {
    const broken = imports.flatMap((entry) => {
      const rule = violation(entry);
      return rule === null ? [] : [`src/${entry.file} imports '${entry.specifier}': ${rule}`];
    });
    expect(broken, `imports against the layer direction:\n${broken.join('\n')}`).toEqual([]);
  });

  it('names the file, the import and the rule of an import back up', () => {
    expect(
      violation({
        file: 'core/logger.ts',
        specifier: '../store/activity-store.js',
        target: 'store/activity-store.ts',
      }),
    ).toBe('core/ may import only core/, config/; store/ is above it');
    expect(
      violation({ file: 'config/config.ts', specifier: '../core/activity.js', target: 'core/activity.ts' }),
    ).toBe('config/ imports nothing in src/ but core/errors.ts');
    expect(
      violation({
        file: 'http/server.ts',
        specifier: '../runtime/start-monitoring.js',
        target: 'runtime/start-monitoring.ts',
      }),
    ).toBeNull();
    expect(violation({ file: 'index.ts', specifier: './cli/main.js', target: 'cli/main.ts' })).toBeNull();
    expect(
      violation({
        file: 'capture/mysql/mysql-capture-source.ts',
        specifier: '../../runtime/stop-signals.js',
        target: 'runtime/stop-signals.ts',
      }),
    ).toMatch(/^capture\/ may import only .*store\/.*; runtime\/ is above it$/);
    expect(
      violation({
        file: 'capture/mysql/mysql-capture-source.ts',
        specifier: '../../core/errors.js',
        target: 'core/errors.ts',
      }),
    ).toBeNull();
  });
});
