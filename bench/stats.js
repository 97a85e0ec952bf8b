// Small helpers shared by the benchmark scripts: medians, percentiles, the machine, a table.
import { cpus, totalmem } from 'node:os';

export function median(values) {
  return percentile(values, 50);
}

export function percentile(values, p) {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[index];
}

export function ratio(value, base) {
  return Math.round((value / base) * 100) / 100;
}

/** Runs `fn` `count` times in sequence and returns every result. */
export async function rounds(count, fn) {
  const results = [];
  for (let i = 0; i < count; i++) results.push(await fn());
  return results;
}

export function machine() {
  const cpu = cpus();
  return {
    cpu: cpu[0]?.model ?? 'unknown',
    cores: cpu.length,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    platform: `${process.platform} ${process.arch}`,
  };
}

export function printTable(title, rows) {
  console.log(`\n${title}`);
  for (const row of rows) console.log(`  ${row.map(String).join('  |  ')}`);
}
