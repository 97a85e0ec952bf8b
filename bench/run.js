// Runs every benchmark suite in sequence and prints one JSON document with all results.
// Usage: npm run bench [-- core queue]   (every suite but `scale` when none is named: it seeds
// 10 million rows per database and runs for an hour or more, so it runs only when named)
import { readdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const suites = (await readdir(here))
  .filter((file) => file.endsWith('.js') && !['run.js', 'stats.js'].includes(file))
  .map((file) => file.replace(/\.js$/, ''));
const wanted = process.argv.slice(2);
const ON_REQUEST = ['scale'];
const selected =
  wanted.length === 0
    ? suites.filter((suite) => !ON_REQUEST.includes(suite))
    : suites.filter((suite) => wanted.includes(suite));
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
