// Part of `npm run build`: tsc compiles only TypeScript, so the backoffice's pages and assets
// are copied next to the compiled server, with uPlot's browser files (a dev dependency) in
// `vendor/` so the published package needs nothing from node_modules or a CDN.
import { cpSync, mkdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const source = join(root, 'src', 'http', 'web');
const target = join(root, 'dist', 'http', 'web');
const uplot = dirname(createRequire(import.meta.url).resolve('uplot/dist/uPlot.iife.min.js'));

rmSync(target, { recursive: true, force: true });
cpSync(source, target, { recursive: true });
mkdirSync(join(target, 'vendor'), { recursive: true });
for (const file of ['uPlot.iife.min.js', 'uPlot.min.css'])
  cpSync(join(uplot, file), join(target, 'vendor', file));
cpSync(join(uplot, '..', 'LICENSE'), join(target, 'vendor', 'uPlot.LICENSE'));
