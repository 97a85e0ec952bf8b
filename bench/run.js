// Runs every benchmark suite in sequence and prints one JSON document with all results.
// Usage: npm run bench [-- core queue]   (all suites when none is named)
import { readdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const suites = (await readdir(here))
  .filter((file) => file.endsWith('.js') && !['run.js', 'stats.js'].includes(file))
  .map((file) => file.replace(/\.js$/, ''));
const wanted = process.argv.slice(2);
const selected = wanted.length === 0 ? suites : suites.filter((suite) => wanted.includes(suite));
const unknown = wanted.filter((suite) => !suites.includes(suite));
if (unknown.length > 0) {
  console.error(`bench: unknown suite ${unknown.join(', ')}; available: ${suites.join(', ')}`);
  process.exit(1);
}

const results = {};
for (const suite of selected) {
  console.log(`bench: running ${suite}`);
  const module = await import(pathToFileURL(join(here, `${suite}.js`)).href);
  results[suite] = await module.run();
}
console.log(JSON.stringify(results, null, 2));
