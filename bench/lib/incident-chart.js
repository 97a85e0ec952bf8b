// Draws the incident benchmark's chart as plain SVG from its JSON output: p99 response time
// (log scale) against the offered rate, one line per variant; a step with failed requests is
// drawn as a ring with the count beside it, and the outage variant is dashed, its legend saying
// what was cut and for how long. No dependencies.
// Usage: node bench/lib/incident-chart.js [docs/incident.json] [docs/incident-p99.svg]
import { readFile, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

const SERIES = [
  { variant: 'none', label: '(a) no activity logging', color: '#222222' },
  { variant: 'naive', label: '(b) one awaited INSERT per model event', color: '#d62728' },
  { variant: 'sync', label: '(c) sync', color: '#ff7f0e' },
  { variant: 'batch', label: '(d) batch', color: '#1f77b4' },
  { variant: 'queue', label: '(e) queue, one worker', color: '#2ca02c' },
  { variant: 'outage', label: '(f) batch, activity DB cut', color: '#9467bd', dashed: true },
];

const xml = (text) => String(text).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** The SVG text of the chart for `results` (the object bench/incident.js returns). */
export function incidentChart(results) {
  const { steps, settings, machine } = results;
  const width = 760;
  const height = 440;
  const margin = { left: 64, right: 250, top: 48, bottom: 56 };
  const plotW = width - margin.left - margin.right;
  const plotH = height - margin.top - margin.bottom;
  const rates = [...new Set(steps.map((s) => s.rate))].sort((a, b) => a - b);
  const maxRate = rates.at(-1);
  const values = steps.map((s) => s.p99Ms).filter((v) => v > 0);
  const ticks = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000];
  const low = ticks.filter((t) => t <= Math.min(...values)).at(-1) ?? 1;
  const high = ticks.find((t) => t >= Math.max(...values)) ?? Math.max(...values);
  const x = (rate) => margin.left + (rate / maxRate) * plotW;
  const y = (ms) =>
    margin.top + plotH - ((Math.log10(Math.max(ms, low)) - Math.log10(low)) / Math.log10(high / low)) * plotH;

  const out = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" role="img" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, -apple-system, Segoe UI, sans-serif" font-size="12">`,
    `<title>p99 response time against offered load, one line per variant</title>`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="${margin.left}" y="22" font-size="15" font-weight="600">p99 response time against offered load</text>`,
    `<text x="${margin.left}" y="38" fill="#555555">${xml(
      `Fastify + Sequelize, 3 activities per request; MariaDB and Redis ${settings.latencyMsEachWay} ms away each way; ${machine.cores} cores, ${machine.cpu}`,
    )}</text>`,
  );
  // Grid and axes.
  for (const tick of ticks.filter((t) => t >= low && t <= high)) {
    out.push(
      `<line x1="${margin.left}" x2="${margin.left + plotW}" y1="${y(tick)}" y2="${y(tick)}" stroke="#e5e5e5"/>`,
      `<text x="${margin.left - 6}" y="${y(tick) + 4}" text-anchor="end" fill="#444444">${tick}</text>`,
    );
  }
  for (const rate of rates) {
    out.push(
      `<line x1="${x(rate)}" x2="${x(rate)}" y1="${margin.top}" y2="${margin.top + plotH}" stroke="#f0f0f0"/>`,
      `<text x="${x(rate)}" y="${margin.top + plotH + 16}" text-anchor="middle" fill="#444444">${rate}</text>`,
    );
  }
  out.push(
    `<rect x="${margin.left}" y="${margin.top}" width="${plotW}" height="${plotH}" fill="none" stroke="#999999"/>`,
    `<text x="${margin.left + plotW / 2}" y="${height - 14}" text-anchor="middle">offered load (requests/s, open loop)</text>`,
    `<text transform="translate(16 ${margin.top + plotH / 2}) rotate(-90)" text-anchor="middle">p99 (ms, log scale)</text>`,
  );
  if (settings.timeoutMs >= low && settings.timeoutMs <= high) {
    out.push(
      `<line x1="${margin.left}" x2="${margin.left + plotW}" y1="${y(settings.timeoutMs)}" y2="${y(settings.timeoutMs)}" stroke="#d62728" stroke-dasharray="2 3"/>`,
      `<text x="${margin.left + 4}" y="${y(settings.timeoutMs) - 4}" fill="#d62728">client timeout</text>`,
    );
  }
  // One line per variant.
  let legendY = margin.top + 8;
  for (const series of SERIES) {
    const points = steps.filter((s) => s.variant === series.variant).sort((a, b) => a.rate - b.rate);
    if (points.length === 0) continue;
    const dash = series.dashed ? ' stroke-dasharray="6 4"' : '';
    out.push(
      `<polyline fill="none" stroke="${series.color}" stroke-width="2"${dash} points="${points
        .map((p) => `${x(p.rate).toFixed(1)},${y(p.p99Ms).toFixed(1)}`)
        .join(' ')}"/>`,
    );
    for (const p of points) {
      const failed = p.failed > 0;
      out.push(
        `<circle cx="${x(p.rate).toFixed(1)}" cy="${y(p.p99Ms).toFixed(1)}" r="${failed ? 5 : 3.5}" fill="${failed ? '#ffffff' : series.color}" stroke="${series.color}" stroke-width="2"><title>${xml(
          `${series.label} at ${p.rate}/s: p50 ${p.p50Ms} ms, p99 ${p.p99Ms} ms, max ${p.maxMs} ms, ${p.failed} failed of ${p.requests}`,
        )}</title></circle>`,
      );
      if (failed) {
        out.push(
          `<text x="${(x(p.rate) + 7).toFixed(1)}" y="${(y(p.p99Ms) + 4).toFixed(1)}" fill="${series.color}" font-size="10">${p.failed} failed</text>`,
        );
      }
    }
    const legendX = margin.left + plotW + 16;
    out.push(
      `<line x1="${legendX}" x2="${legendX + 24}" y1="${legendY}" y2="${legendY}" stroke="${series.color}" stroke-width="2"${dash}/>`,
      `<text x="${legendX + 30}" y="${legendY + 4}">${xml(series.label)}</text>`,
    );
    if (series.variant === 'outage') {
      const { from, to, mode } = settings.outage;
      legendY += 15;
      out.push(
        `<text x="${legendX + 30}" y="${legendY + 4}" fill="#555555" font-size="11">${xml(
          `outage: ${mode} from ${Math.round(from * 100)} % to ${Math.round(to * 100)} %`,
        )}</text>`,
      );
      legendY += 14;
      out.push(
        `<text x="${legendX + 30}" y="${legendY + 4}" fill="#555555" font-size="11">${xml(
          `of every ${settings.seconds} s step`,
        )}</text>`,
      );
    }
    legendY += 20;
  }
  const legendX = margin.left + plotW + 16;
  out.push(
    `<circle cx="${legendX + 12}" cy="${legendY}" r="5" fill="#ffffff" stroke="#666666" stroke-width="2"/>`,
    `<text x="${legendX + 30}" y="${legendY + 4}" fill="#555555" font-size="11">requests failed or timed out</text>`,
    '</svg>',
  );
  return `${out.join('\n')}\n`;
}

export async function writeIncidentChart(results, path) {
  await writeFile(path, incidentChart(results));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const input = process.argv[2] ?? 'docs/incident.json';
  const output = process.argv[3] ?? input.replace(/\.json$/, '-p99.svg');
  await writeIncidentChart(JSON.parse(await readFile(input, 'utf8')), output);
  console.log(`wrote ${output}`);
}
