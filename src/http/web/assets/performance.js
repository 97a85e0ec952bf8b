import {
  ApiError,
  api,
  el,
  formatBytes,
  formatDuration,
  formatNumber,
  formatUtc,
  pick,
  signInAgain,
  toTimeMs,
} from './backoffice.js';

const SNAPSHOT_URL = '/api/backoffice/activity-logs/performance';
const FAILED_JOBS_URL = '/api/backoffice/activity-logs/failed-jobs';
const HOST_URL = '/api/backoffice/activity-logs/host';
const POLL_INTERVAL_MS = 2000;
const FAILED_JOBS_INTERVAL_MS = 10_000;
/** Points kept for the live charts: five minutes at one per poll. */
const LIVE_POINTS = 150;

const dashboard = document.getElementById('dashboard');
const connection = document.getElementById('connection');
const banner = document.getElementById('banner');
const updated = document.getElementById('updated');

const live = { time: [], rate: [], queue: [], lag: [] };
/** When this page first saw the breaker in its current state (used when the server does not say). */
let breakerSeen = { state: null, sinceMs: 0 };
let failedAttempts = 0;

function setConnection(state, text) {
  connection.className = `connection ${state}`;
  connection.replaceChildren(el('span', { className: 'live-dot' }), text);
  dashboard.classList.toggle('stale', state === 'lost');
}

function setBanner(text, kind = 'warn') {
  banner.className = `banner ${kind}`;
  banner.hidden = text === '';
  banner.replaceChildren();
  if (text !== '') banner.append(text);
}

function setTile(field, value, hint, alert = false) {
  const tile = document.querySelector(`.tile[data-field="${field}"]`);
  if (tile === null) return;
  tile.querySelector('.value').textContent = value;
  tile.classList.toggle('alert', alert);
  tile.title = value === '—' ? 'not reported by this server' : '';
  if (hint !== undefined) tile.querySelector('.hint').textContent = hint;
}

function renderTiles(data) {
  setTile('queue_size', formatNumber(data.queue_size));
  setTile('processing_rate', `${formatNumber(data.processing_rate, 1)}/s`);
  setTile('error_rate', `${formatNumber(data.error_rate, 1)} %`, undefined, data.error_rate > 0);
  setTile('total_processed', formatNumber(data.total_processed));
  setTile('pending_jobs', formatNumber(data.pending_jobs));
  setTile('failed_jobs', formatNumber(data.failed_jobs), undefined, data.failed_jobs > 0);
  setTile('memory_usage', `${formatNumber(data.memory_usage, 1)} MB`);
  const spool = data.spool;
  if (spool !== null && typeof spool === 'object') {
    const ageSeconds = pick(spool, 'oldest_age_seconds');
    const age = typeof ageSeconds === 'number' ? ageSeconds * 1000 : toAgeMs(pick(spool, 'oldest_age_ms'));
    setTile(
      'spool',
      formatNumber(pick(spool, 'activities', 'count')),
      `${formatBytes(pick(spool, 'bytes', 'size_bytes'))}${age === null ? '' : `, oldest ${formatDuration(age)}`}`,
      pick(spool, 'activities', 'count') > 0,
    );
  } else {
    setTile('spool', '—', 'not reported');
  }
  setTile('dropped_total', formatNumber(data.dropped_total), undefined, data.dropped_total > 0);
  const lag = data.lag_ms ?? {};
  setTile('lag_p50', lag.p50 === undefined || lag.p50 === null ? '—' : `${formatNumber(lag.p50)} ms`);
  setTile('lag_p99', lag.p99 === undefined || lag.p99 === null ? '—' : `${formatNumber(lag.p99)} ms`);
}

function toAgeMs(value) {
  return typeof value === 'number' && Number.isFinite(value) ? value : null;
}

const STATE_LABELS = { closed: 'Closed', open: 'Open', half_open: 'Half-open' };

function renderBreaker(data, nowMs) {
  const breaker = data.circuit_breaker ?? {};
  const state = typeof breaker.state === 'string' ? breaker.state : 'unknown';
  const badge = document.getElementById('breaker-state');
  badge.textContent = STATE_LABELS[state] ?? state;
  badge.className = `breaker-state ${state}`;
  document.getElementById('breaker-failures').textContent = formatNumber(breaker.failure_count);
  document.getElementById('breaker-allowed').textContent =
    breaker.is_allowed === undefined ? '—' : breaker.is_allowed ? 'yes' : 'no';
  if (breakerSeen.state !== state) breakerSeen = { state, sinceMs: nowMs };
  const breakers = data.breakers;
  const entries = Array.isArray(breakers)
    ? breakers.map((item) => [pick(item, 'name', 'id') ?? '?', item])
    : breakers !== null && typeof breakers === 'object'
      ? Object.entries(breakers)
      : [];
  // Breakers report how long they have been away from closed; the top-level one is the worst of them.
  const openFor = entries
    .filter(([, item]) => item?.state === state)
    .map(([, item]) => item.open_for_seconds)
    .filter((seconds) => typeof seconds === 'number');
  document.getElementById('breaker-since').textContent =
    state !== 'closed' && openFor.length > 0
      ? formatDuration(Math.max(...openFor) * 1000)
      : `≥ ${formatDuration(nowMs - breakerSeen.sinceMs)} (seen by this page)`;

  const list = document.getElementById('breakers');
  list.replaceChildren();
  for (const [name, item] of entries) {
    const itemState = pick(item, 'state') ?? 'unknown';
    const seconds = pick(item, 'open_for_seconds');
    list.append(
      el(
        'span',
        { className: 'badge', 'data-breaker': name },
        `${name}: `,
        el('strong', { text: STATE_LABELS[itemState] ?? itemState }),
        ` · ${formatNumber(pick(item, 'failure_count'))} failures`,
        typeof seconds === 'number' ? ` · for ${formatDuration(seconds * 1000)}` : '',
      ),
    );
  }
}

function renderWorkers(data, nowMs) {
  const body = document.getElementById('workers');
  body.replaceChildren();
  const workers = Array.isArray(data.workers) ? data.workers : [];
  if (workers.length === 0) {
    body.append(
      el('tr', {}, el('td', { colspan: 6, className: 'empty', text: 'No queue workers reporting.' })),
    );
    return;
  }
  for (const worker of workers) {
    const started = toTimeMs(pick(worker, 'started_at', 'started', 'start_time'));
    const heartbeat = toTimeMs(
      pick(worker, 'last_heartbeat_at', 'last_heartbeat', 'heartbeat_at', 'heartbeat'),
    );
    body.append(
      el(
        'tr',
        { title: pick(worker, 'id') ?? undefined },
        el('td', { text: pick(worker, 'host', 'hostname') ?? '—' }),
        el('td', { className: 'mono', text: pick(worker, 'pid') ?? '—' }),
        el('td', { text: started === null ? '—' : formatDuration(nowMs - started) }),
        el('td', { text: `${formatNumber(pick(worker, 'rate', 'current_rate', 'processing_rate'), 1)}/s` }),
        el('td', { text: formatNumber(pick(worker, 'stored', 'total_processed', 'processed')) }),
        el('td', {
          text: heartbeat === null ? '—' : `${formatDuration(Math.max(0, nowMs - heartbeat))} ago`,
        }),
      ),
    );
  }
}

/** One row per captured stream; figures past the staleness bound are shown as such, never as live. */
function renderCapture(data, nowMs) {
  const body = document.getElementById('capture');
  body.replaceChildren();
  const streams = Array.isArray(data.capture) ? data.capture : [];
  if (streams.length === 0) {
    body.append(
      el(
        'tr',
        {},
        el('td', {
          colspan: 9,
          className: 'empty',
          text: 'No change capture has reported (activity-log capture).',
        }),
      ),
    );
    return;
  }
  const ago = (value) => {
    const ms = toTimeMs(value);
    return ms === null ? '—' : `${formatDuration(Math.max(0, nowMs - ms))} ago`;
  };
  const bytes = (value) => (typeof value === 'number' ? formatBytes(value) : '—');
  for (const stream of streams) {
    const stateClass = stream.live ? (stream.state === 'streaming' ? 'closed' : 'half_open') : 'open';
    body.append(
      el(
        'tr',
        {
          title: `${stream.kind}, pid ${stream.pid} on ${stream.host}`,
          className: stream.live ? '' : 'stale',
        },
        el('td', { className: 'mono', text: `${stream.source} (${stream.slot})` }),
        el('td', {}, el('span', { className: `badge breaker-state ${stateClass}`, text: stream.state })),
        el('td', { text: `${formatNumber(stream.events_per_second, 1)}/s` }),
        el('td', { text: formatDuration((stream.lag_seconds ?? 0) * 1000) }),
        el('td', { text: bytes(stream.lag_bytes) }),
        el('td', { text: bytes(stream.retained_bytes) }),
        el('td', { className: 'mono', text: stream.position ?? '—' }),
        el('td', { text: ago(stream.position_saved_at) }),
        el('td', { text: ago(stream.reported_at) }),
      ),
    );
  }
}

/** The latest answer of the host API, shown with the snapshot's process figures. */
let host = null;

function renderHost(data) {
  const load = host?.load_average;
  const facts = [
    ['Server process memory (RSS)', `${formatNumber(data.memory_usage, 1)} MB`],
    ['Delivery method', typeof data.method === 'string' ? data.method : '—'],
    ['Processes reporting', formatNumber(data.processes)],
    ['Host', host?.hostname ?? '—'],
    [
      'Load average (1/5/15 min)',
      Array.isArray(load) ? load.map((n) => formatNumber(n, 2)).join(' / ') : '—',
    ],
    ['CPUs', formatNumber(host?.cpus)],
    [
      'Host memory free / total',
      host === null
        ? '—'
        : `${formatBytes(host.free_memory_bytes)} / ${formatBytes(host.total_memory_bytes)}`,
    ],
    ['Host uptime', host === null ? '—' : formatDuration(host.uptime_seconds * 1000)],
  ];
  const list = document.getElementById('host');
  list.replaceChildren();
  for (const [label, value] of facts) list.append(el('dt', { text: label }), el('dd', { text: value }));
}

async function loadHost() {
  try {
    host = (await api(HOST_URL, { timeoutMs: 5000 })).data;
  } catch {
    host = null;
  }
}

/* Charts ---------------------------------------------------------------- */

const charts = new Map();

function chart(id, title, label, colour) {
  const container = document.getElementById(id);
  if (charts.has(id)) return charts.get(id);
  let entry;
  if (typeof window.uPlot !== 'function') {
    container.replaceChildren(
      el('h2', { text: title }),
      el('p', { className: 'note', text: 'Charts unavailable.' }),
    );
    entry = { plot: null, container };
  } else {
    const width = Math.max(260, container.clientWidth || 460);
    const plot = new window.uPlot(
      {
        title,
        width,
        height: 180,
        series: [{}, { label, stroke: colour, width: 2, fill: `${colour}22` }],
        axes: [{}, { size: 60 }],
        scales: { y: { range: (_u, _min, max) => [0, max > 0 ? max * 1.1 : 1] } },
      },
      [[], []],
      container,
    );
    entry = { plot, container };
    new ResizeObserver(() =>
      plot.setSize({ width: Math.max(260, container.clientWidth), height: 180 }),
    ).observe(container);
  }
  charts.set(id, entry);
  return entry;
}

function setChart(id, title, label, colour, xs, ys) {
  const entry = chart(id, title, label, colour);
  if (entry.plot !== null) entry.plot.setData([xs, ys]);
  entry.container.dataset.points = String(xs.length);
  entry.container.dataset.last = ys.length === 0 ? '' : String(ys[ys.length - 1]);
}

function renderLive(data, nowMs) {
  live.time.push(nowMs / 1000);
  live.rate.push(typeof data.processing_rate === 'number' ? data.processing_rate : null);
  live.queue.push(typeof data.queue_size === 'number' ? data.queue_size : null);
  live.lag.push(typeof data.lag_ms?.p99 === 'number' ? data.lag_ms.p99 : null);
  for (const series of Object.values(live)) if (series.length > LIVE_POINTS) series.shift();
  setChart('chart-live-rate', 'Processing rate (activities/s)', 'rate', '#2457c5', live.time, live.rate);
  setChart('chart-live-queue', 'Queue size', 'queue', '#9a6700', live.time, live.queue);
  setChart('chart-live-lag', 'Lag p99 (ms)', 'lag p99', '#6b3fa0', live.time, live.lag);
}

/** Per-minute history as columns; field names vary, so each is looked up under its likely names. */
function renderHistory(data) {
  const history = Array.isArray(data.history) ? data.history : [];
  const points = history
    .map((item) => ({
      t: toTimeMs(pick(item, 'minute', 'time', 'at', 'ts', 'timestamp', 'start')),
      throughput: pick(item, 'throughput', 'stored', 'processed'),
      errors: pick(item, 'errors', 'failed', 'failures', 'write_errors'),
      queue: pick(item, 'queue_size', 'queue'),
      lag: pick(item, 'lag_p99_ms', 'lag_p99') ?? pick(pick(item, 'lag_ms', 'lag') ?? {}, 'p99'),
    }))
    .filter((point) => point.t !== null)
    .sort((a, b) => a.t - b.t);
  const xs = points.map((point) => point.t / 1000);
  const column = (name) => points.map((point) => (typeof point[name] === 'number' ? point[name] : null));
  setChart('chart-throughput', 'Throughput (activities/min)', 'stored', '#2457c5', xs, column('throughput'));
  setChart('chart-errors', 'Write errors (per min)', 'errors', '#c62828', xs, column('errors'));
  setChart('chart-queue', 'Queue size', 'queue', '#9a6700', xs, column('queue'));
  // The history has lag per minute only where the server keeps it; otherwise the live chart shows it.
  const lag = column('lag');
  const lagChart = document.getElementById('chart-lag');
  lagChart.hidden = lag.every((value) => value === null);
  if (!lagChart.hidden) setChart('chart-lag', 'Lag p99 (ms)', 'lag p99', '#6b3fa0', xs, lag);
}

/* Failed jobs ----------------------------------------------------------- */

async function retry(ids) {
  try {
    const result = await api(`${FAILED_JOBS_URL}/retry`, { method: 'POST', body: { ids } });
    setBanner('');
    document.getElementById('failed-note').textContent =
      `Retried ${result.data.retried.length} job(s)${result.data.missing.length > 0 ? `; ${result.data.missing.length} no longer failed` : ''}.`;
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return signInAgain();
    document.getElementById('failed-note').textContent = `Retry failed: ${error.message}`;
  }
  await loadFailedJobs();
}

async function loadFailedJobs() {
  const body = document.getElementById('failed-jobs');
  const note = document.getElementById('failed-note');
  const retryAll = document.getElementById('retry-all');
  try {
    const result = await api(FAILED_JOBS_URL);
    body.replaceChildren();
    retryAll.disabled = result.data.length === 0;
    if (!result.queue) note.textContent = 'No queue: this server stores activities without Redis.';
    else if (result.data.length === 0) note.textContent = 'No failed jobs.';
    for (const job of result.data) {
      const button = el('button', { type: 'button', text: 'Retry' });
      button.addEventListener('click', () => {
        button.disabled = true;
        retry([job.id]);
      });
      body.append(
        el(
          'tr',
          {},
          el('td', { className: 'mono', text: job.id }),
          el('td', { className: 'mono', text: formatUtc(job.failed_at) || '—' }),
          el('td', { text: formatNumber(job.attempts) }),
          el('td', { text: formatNumber(job.activities) }),
          el('td', { className: 'description', text: job.error }),
          el('td', {}, button),
        ),
      );
    }
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return;
    note.textContent = `Failed jobs unavailable: ${error.message}`;
  }
}

/* Polling --------------------------------------------------------------- */

async function poll() {
  // A tab nobody looks at does not need figures every 2 s; it catches up when shown again.
  if (document.hidden) {
    setTimeout(poll, POLL_INTERVAL_MS);
    return;
  }
  const nowMs = Date.now();
  try {
    const snapshot = await api(SNAPSHOT_URL, { timeoutMs: 5000 });
    const data = snapshot.data ?? {};
    failedAttempts = 0;
    setConnection('live', 'Live');
    setBanner('');
    updated.textContent = `updated ${new Date(nowMs).toLocaleTimeString()}, every ${POLL_INTERVAL_MS / 1000} s`;
    renderTiles(data);
    renderBreaker(data, nowMs);
    renderLive(data, nowMs);
    renderHistory(data);
    renderWorkers(data, nowMs);
    renderCapture(data, nowMs);
    renderHost(data);
  } catch (error) {
    failedAttempts++;
    if (error instanceof ApiError && error.status === 401) {
      setConnection('lost', 'Signed out');
      setBanner('Your session has ended. ', 'error');
      const link = el('a', { href: '#', text: 'Sign in again' });
      link.addEventListener('click', (event) => {
        event.preventDefault();
        signInAgain();
      });
      banner.append(link);
    } else if (error instanceof ApiError && error.status === 404) {
      setConnection('lost', 'No performance data');
      setBanner(
        `This server does not provide ${SNAPSHOT_URL} (404). The page keeps trying every ${POLL_INTERVAL_MS / 1000} s.`,
      );
    } else if (error instanceof ApiError) {
      setConnection('lost', `Server error — retrying… (attempt ${failedAttempts})`);
      setBanner(
        `The server could not give the figures: ${error.message} (${error.code}, HTTP ${error.status}). Showing the last values received.`,
        'error',
      );
    } else {
      setConnection('lost', `Connection lost — reconnecting… (attempt ${failedAttempts})`);
      setBanner(
        `Connection lost: the server does not answer. Showing the last values received; reconnecting every ${POLL_INTERVAL_MS / 1000} s.`,
        'error',
      );
    }
  } finally {
    setTimeout(poll, POLL_INTERVAL_MS);
  }
}

loadHost().then(poll);
loadFailedJobs();
// Host facts and failed jobs change slowly: refreshed every 10 s while the tab is shown, and at
// once when it is shown again.
setInterval(() => {
  if (document.hidden) return;
  loadHost();
  loadFailedJobs();
}, FAILED_JOBS_INTERVAL_MS);
document.addEventListener('visibilitychange', () => {
  if (document.hidden) return;
  loadHost();
  loadFailedJobs();
});
document.getElementById('retry-all').addEventListener('click', () => retry('all'));
