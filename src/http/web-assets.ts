import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The backoffice's pages and assets: `src/http/web` when run from source, `dist/http/web` when built. */
export const WEB_DIR = fileURLToPath(new URL('./web/', import.meta.url));

/** uPlot's browser files, served from the backoffice's asset path. */
export const UPLOT_FILES = ['uPlot.iife.min.js', 'uPlot.min.css'] as const;

/** The pages' own scripts and styles. */
export const ASSET_DIR = join(WEB_DIR, 'assets');

/**
 * Where uPlot's browser files are: the build copies them into `web/vendor`, so the published
 * package carries them; from source they are read from `node_modules`.
 */
export function uplotDir(): string {
  const copied = join(WEB_DIR, 'vendor');
  if (UPLOT_FILES.every((file) => existsSync(join(copied, file)))) return copied;
  return dirname(createRequire(import.meta.url).resolve('uplot/dist/uPlot.iife.min.js'));
}

/** An HTML page template from `web/pages`. */
export function loadPageTemplate(name: 'login' | 'activity-logs' | 'performance'): string {
  return readFileSync(join(WEB_DIR, 'pages', `${name}.html`), 'utf8');
}

const HTML_ESCAPES: Readonly<Record<string, string>> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

/** Text made safe for HTML content and quoted attributes. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (char) => HTML_ESCAPES[char]!);
}

/** Fills `{{name}}` placeholders, HTML-escaping every value. */
export function renderTemplate(template: string, values: Readonly<Record<string, string>>): string {
  return template.replace(/\{\{(\w+)\}\}/g, (_, name: string) => escapeHtml(values[name] ?? ''));
}
