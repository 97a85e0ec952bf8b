// Sums a V8 CPU profile (.cpuprofile, as bench/incident.js writes with BENCH_INCIDENT_PROFILE)
// by self time: the top functions, and the time per source (our dist/ files one by one,
// node_modules by package, Node's internals, GC, idle).
// Usage: node bench/lib/profile-summary.js file.cpuprofile [top=25]
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

function sourceOf(url) {
  if (url === '') return '(native / V8)';
  if (url.startsWith('node:')) return 'node internals';
  const modules = url.lastIndexOf('/node_modules/');
  if (modules !== -1) {
    const rest = url.slice(modules + '/node_modules/'.length).split('/');
    return rest[0].startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0];
  }
  const dist = url.indexOf('/dist/');
  if (dist !== -1) return url.slice(dist + 1);
  const bench = url.indexOf('/bench/');
  if (bench !== -1) return url.slice(bench + 1);
  return url;
}

/** Self time (ms) per function and per source, and the profile's total and idle time. */
export function summarizeProfile(profile) {
  const { nodes, samples, timeDeltas } = profile;
  const byId = new Map(nodes.map((node) => [node.id, node]));
  const selfUs = new Map();
  for (let i = 0; i < samples.length; i++)
    selfUs.set(samples[i], (selfUs.get(samples[i]) ?? 0) + timeDeltas[i]);
  const functions = new Map();
  const sources = new Map();
  let total = 0;
  let idle = 0;
  for (const [id, us] of selfUs) {
    const { callFrame } = byId.get(id);
    total += us;
    if (callFrame.functionName === '(idle)') {
      idle += us;
      continue;
    }
    const source = callFrame.functionName.startsWith('(') ? callFrame.functionName : sourceOf(callFrame.url);
    const name = `${callFrame.functionName || '(anonymous)'} ${sourceOf(callFrame.url)}:${callFrame.lineNumber + 1}`;
    functions.set(name, (functions.get(name) ?? 0) + us);
    sources.set(source, (sources.get(source) ?? 0) + us);
  }
  const sorted = (map) => [...map].sort((a, b) => b[1] - a[1]).map(([key, us]) => [key, us / 1000]);
  return {
    totalMs: total / 1000,
    idleMs: idle / 1000,
    functions: sorted(functions),
    sources: sorted(sources),
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const summary = summarizeProfile(JSON.parse(await readFile(process.argv[2], 'utf8')));
  const top = Number(process.argv[3] ?? 25);
  const busy = summary.totalMs - summary.idleMs;
  console.log(`total ${summary.totalMs.toFixed(0)} ms, busy ${busy.toFixed(0)} ms`);
  console.log('\nby source (self ms, % of busy):');
  for (const [source, ms] of summary.sources.slice(0, top)) {
    console.log(`  ${ms.toFixed(1).padStart(8)}  ${((ms / busy) * 100).toFixed(1).padStart(5)} %  ${source}`);
  }
  console.log('\nby function:');
  for (const [name, ms] of summary.functions.slice(0, top)) {
    console.log(`  ${ms.toFixed(1).padStart(8)}  ${((ms / busy) * 100).toFixed(1).padStart(5)} %  ${name}`);
  }
}
