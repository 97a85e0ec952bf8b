import { DETAIL_FIELDS, FILTER_FIELDS } from './activity-fields.js';
import { ApiError, api, el, formatUtc, signInAgain } from './backoffice.js';
import { checkProof } from './inclusion-proof.js';

const FILTERS = [...FILTER_FIELDS.map((field) => field.name), 'from', 'to'];
const DEFAULT_LIMIT = '50';

const form = document.getElementById('filters');
form.prepend(
  ...FILTER_FIELDS.map((field) =>
    el('label', {}, `${field.label} `, el('input', { name: field.name, list: field.list })),
  ),
);
const rows = document.querySelector('#activities tbody');
const status = document.getElementById('status');
const errorBanner = document.getElementById('error');
const olderButton = document.getElementById('older');
const newerButton = document.getElementById('newer');
const layout = document.getElementById('layout');
const detail = document.getElementById('detail');

/** What is on screen: the rows, and the cursors that lead to the pages around them. */
let current = { data: [], nextCursor: null };

/** The filters (and limit) of the URL, without the cursor. */
function filterParams(search) {
  const params = new URLSearchParams();
  for (const name of [...FILTERS, 'limit']) {
    const value = search.get(name);
    if (value !== null && value !== '') params.set(name, value);
  }
  return params;
}

/** Cursors of the newer pages, newest first, kept in the history entry so Back and Newer agree. */
function newerCursors() {
  return Array.isArray(history.state?.newer) ? history.state.newer : [];
}

function navigate(params, newer) {
  const query = params.toString();
  history.pushState({ newer }, '', query === '' ? location.pathname : `?${query}`);
  load();
}

function fillForm(search) {
  for (const name of [...FILTERS, 'limit']) {
    const input = form.elements.namedItem(name);
    if (input === null) continue;
    const value = search.get(name) ?? (name === 'limit' ? DEFAULT_LIMIT : '');
    input.value = name === 'from' || name === 'to' ? utcInputValue(value) : value;
  }
}

/**
 * A `from`/`to` of the URL as a datetime-local input shows it: `YYYY-MM-DDTHH:MM:SS` in UTC, the
 * way the API reads a time without offset. `2025-11-28` is midnight; an offset is converted, so
 * submitting the form again keeps the same instant.
 */
function utcInputValue(value) {
  if (value === '') return '';
  if (/^\d{4}-\d{2}-\d{2}$/.test(value)) return `${value}T00:00:00`;
  // `+` in a query string arrives as a space; a time without offset or Z is UTC.
  const text = value.replace(/ (\d{2}:?\d{2})$/, '+$1');
  const withZone = /(Z|[+-]\d{2}:?\d{2})$/i.test(text) ? text : `${text}Z`;
  const date = new Date(withZone.replace(' ', 'T'));
  return Number.isNaN(date.getTime()) ? '' : date.toISOString().slice(0, 19);
}

function formParams() {
  const params = new URLSearchParams();
  for (const name of [...FILTERS, 'limit']) {
    const value = String(form.elements.namedItem(name)?.value ?? '').trim();
    if (value !== '' && !(name === 'limit' && value === DEFAULT_LIMIT)) params.set(name, value);
  }
  return params;
}

function showError(message) {
  errorBanner.textContent = message;
  errorBanner.hidden = message === '';
}

async function load() {
  const search = new URLSearchParams(location.search);
  fillForm(search);
  const filters = filterParams(search);
  const exportQuery = new URLSearchParams(filters);
  exportQuery.delete('limit');
  const suffix = exportQuery.toString() === '' ? '' : `?${exportQuery}`;
  document.getElementById('export-csv').href = `/api/backoffice/activity-logs/export.csv${suffix}`;
  document.getElementById('export-ndjson').href = `/api/backoffice/activity-logs/export.ndjson${suffix}`;

  const query = new URLSearchParams(filters);
  const cursor = search.get('cursor');
  if (cursor !== null && cursor !== '') query.set('cursor', cursor);
  status.textContent = 'Loading…';
  olderButton.disabled = true;
  newerButton.disabled = true;
  try {
    const page = await api(`/api/backoffice/activity-logs?${query}`);
    showError('');
    current = { data: page.data, nextCursor: page.next_cursor };
    render(page.data);
    const newer = newerCursors();
    const onFirstPage = cursor === null || cursor === '';
    status.textContent =
      page.data.length === 0
        ? 'No activities match.'
        : `${page.data.length} activities, newest first${onFirstPage ? '' : ` (page ${newer.length + 1} or later)`}`;
    olderButton.disabled = page.next_cursor === null;
    newerButton.disabled = onFirstPage;
    newerButton.textContent = !onFirstPage && newer.length === 0 ? '⇤ Newest' : '← Newer';
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return signInAgain();
    const message =
      error instanceof ApiError
        ? `${error.message} (${error.code})`
        : 'The server did not answer; check the connection and try again.';
    showError(message);
    status.textContent = '';
    newerButton.disabled = cursor === null;
  }
}

function filterLink(text, params) {
  const link = el('a', { href: `?${new URLSearchParams(params)}`, text });
  link.addEventListener('click', (event) => event.stopPropagation());
  return link;
}

function recordLink(type, id, prefix, title) {
  if (type === null) return el('span', { className: 'hint', text: prefix === 'causer' ? 'system' : '—' });
  const params = { [`${prefix}_type`]: type };
  if (id !== null) params[`${prefix}_id`] = id;
  const link = filterLink(id === null ? type : `${type} #${id}`, params);
  link.title = title;
  return link;
}

function requestSummary(activity) {
  const parts = [activity.method, activity.url].filter((part) => part !== null);
  const text = parts.join(' ');
  return el('span', { className: 'mono', title: activity.ip_address ?? undefined, text });
}

/** Rows newest first; consecutive activities of one batch get a heading and a side bar. */
function render(activities) {
  rows.replaceChildren();
  closeDetail();
  if (activities.length === 0) {
    rows.append(el('tr', {}, el('td', { colspan: 8, className: 'empty', text: 'No activities.' })));
    return;
  }
  for (let i = 0; i < activities.length; i++) {
    const activity = activities[i];
    const batch = activity.batch_uuid;
    const inBatch =
      batch !== null && (activities[i - 1]?.batch_uuid === batch || activities[i + 1]?.batch_uuid === batch);
    if (inBatch && activities[i - 1]?.batch_uuid !== batch) {
      let size = 0;
      while (activities[i + size]?.batch_uuid === batch) size++;
      rows.append(
        el(
          'tr',
          { className: 'batch-head' },
          el(
            'td',
            { colspan: 8 },
            `Batch ${batch.slice(0, 8)}… · ${size} activities on this page · `,
            filterLink('show the whole batch', { batch_uuid: batch }),
          ),
        ),
      );
    }
    const row = el(
      'tr',
      { className: inBatch ? 'activity in-batch' : 'activity', tabindex: 0, 'data-id': activity.id },
      el('td', { className: 'mono', text: formatUtc(activity.created_at) }),
      el('td', { className: 'optional', text: activity.log_name }),
      el('td', {}, activity.event === null ? '' : el('span', { className: 'badge', text: activity.event })),
      el('td', { className: 'description', text: activity.description }),
      el(
        'td',
        {},
        recordLink(activity.subject_type, activity.subject_id, 'subject', 'Everything about this record'),
      ),
      el(
        'td',
        {},
        recordLink(activity.causer_type, activity.causer_id, 'causer', 'Everything by this causer'),
      ),
      el('td', { className: 'optional' }, requestSummary(activity)),
      el('td', { className: 'proof' }, verifyButton(activity.id)),
    );
    row.addEventListener('click', () => showDetail(activity, row));
    row.addEventListener('keydown', (event) => {
      if (event.key === 'Enter') showDetail(activity, row);
    });
    rows.append(row);
  }
}

const BADGE_TEXT = {
  verified: 'verified',
  unanchored: 'verified, not anchored',
  'server-signature': 'verified (signature checked by the server)',
  failed: 'not verified',
  'not-sealed': 'not sealed',
  unsupported: 'cannot verify here',
  error: 'no answer',
};

function verifyButton(id) {
  const button = el('button', { type: 'button', className: 'verify', text: 'Verify', 'data-id': id });
  button.addEventListener('click', (event) => {
    event.stopPropagation();
    verifyRow(button);
  });
  button.addEventListener('keydown', (event) => event.stopPropagation());
  return button;
}

/** The last check of each row's proof this page made, shown in the row's detail. */
const proofResults = new Map();

function showBadge(cell, state, detail) {
  proofResults.set(cell.closest('tr').dataset.id, { state, detail });
  const badge = el('span', { className: `proof-badge ${state}`, 'data-state': state, title: detail });
  badge.textContent = BADGE_TEXT[state];
  cell.replaceChildren(badge, ' ', verifyButton(cell.closest('tr').dataset.id));
  cell.querySelector('button').textContent = 'Again';
}

/** Fetches the row's proof and checks it here; the badge says what came of it, its title how. */
async function verifyRow(button) {
  const cell = button.closest('td');
  const id = button.dataset.id;
  button.disabled = true;
  button.textContent = 'Checking…';
  try {
    const answer = await api(`/api/backoffice/activity-logs/${encodeURIComponent(id)}/proof`);
    const result = await checkProof(answer.data, answer.server_check);
    showBadge(cell, result.state, result.detail);
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return signInAgain();
    if (error instanceof ApiError && error.code === 'ACTIVITY_NOT_SEALED')
      return showBadge(cell, 'not-sealed', error.message);
    if (error instanceof ApiError && error.code === 'PROOF_UNAVAILABLE')
      return showBadge(cell, 'failed', error.message);
    showBadge(
      cell,
      'error',
      error instanceof ApiError ? `${error.message} (${error.code})` : 'the server did not answer',
    );
  }
}

async function verifyShown() {
  const shown = document.getElementById('verify-shown');
  shown.disabled = true;
  try {
    for (const button of [...rows.querySelectorAll('td.proof button.verify')]) await verifyRow(button);
  } finally {
    shown.disabled = false;
  }
}

function json(value) {
  return value === undefined ? '' : JSON.stringify(value, null, 2);
}

function isRecord(value) {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function renderDiff(properties) {
  const section = document.getElementById('detail-changes');
  const body = document.getElementById('diff-rows');
  body.replaceChildren();
  const attributes = isRecord(properties.attributes) ? properties.attributes : null;
  const old = isRecord(properties.old) ? properties.old : null;
  section.hidden = attributes === null && old === null;
  if (section.hidden) return;
  const keys = [...new Set([...Object.keys(old ?? {}), ...Object.keys(attributes ?? {})])].sort();
  for (const key of keys) {
    const before = old === null ? undefined : old[key];
    const after = attributes === null ? undefined : attributes[key];
    const changed = JSON.stringify(before) !== JSON.stringify(after);
    body.append(
      el(
        'tr',
        { className: changed ? 'changed' : 'unchanged' },
        el('td', { text: key }),
        el('td', { className: 'old', text: before === undefined ? '' : json(before) }),
        el('td', { className: 'new', text: after === undefined ? '' : json(after) }),
      ),
    );
  }
}

function detailValue(activity, field) {
  if (field === 'subject')
    return recordLink(activity.subject_type, activity.subject_id, 'subject', 'Everything about this record');
  if (field === 'causer')
    return recordLink(activity.causer_type, activity.causer_id, 'causer', 'Everything by this causer');
  if (field === 'batch_uuid' && activity.batch_uuid !== null)
    return filterLink(activity.batch_uuid, { batch_uuid: activity.batch_uuid });
  if (field === 'created_at') return formatUtc(activity.created_at);
  return activity[field] ?? '—';
}

function showDetail(activity, row) {
  for (const selected of rows.querySelectorAll('tr.selected')) selected.classList.remove('selected');
  row.classList.add('selected');
  const fields = document.getElementById('detail-fields');
  fields.replaceChildren();
  for (const [field, label] of DETAIL_FIELDS) {
    fields.append(el('dt', { text: label }), el('dd', {}, detailValue(activity, field)));
  }
  const proof = proofResults.get(activity.id);
  if (proof !== undefined) {
    fields.append(
      el('dt', { text: 'Proof' }),
      el('dd', { className: 'proof-detail' }, `${BADGE_TEXT[proof.state]}: ${proof.detail}`),
    );
  }
  const properties = isRecord(activity.properties) ? activity.properties : {};
  renderDiff(properties);
  const rest = { ...properties };
  if (!document.getElementById('detail-changes').hidden) {
    delete rest.attributes;
    delete rest.old;
  }
  document.getElementById('detail-properties').hidden = Object.keys(rest).length === 0;
  document.getElementById('properties-json').textContent = json(rest);
  detail.hidden = false;
  layout.classList.add('with-detail');
}

function closeDetail() {
  detail.hidden = true;
  layout.classList.remove('with-detail');
  for (const selected of rows.querySelectorAll('tr.selected')) selected.classList.remove('selected');
}

form.addEventListener('submit', (event) => {
  event.preventDefault();
  navigate(formParams(), []);
});
document.getElementById('clear').addEventListener('click', () => {
  form.reset();
  navigate(new URLSearchParams(), []);
});
olderButton.addEventListener('click', () => {
  if (current.nextCursor === null) return;
  const search = new URLSearchParams(location.search);
  const params = filterParams(search);
  params.set('cursor', current.nextCursor);
  navigate(params, [search.get('cursor') ?? '', ...newerCursors()]);
});
newerButton.addEventListener('click', () => {
  const [previous = '', ...rest] = newerCursors();
  const params = filterParams(new URLSearchParams(location.search));
  if (previous !== '') params.set('cursor', previous);
  navigate(params, rest);
});
document.getElementById('close-detail').addEventListener('click', closeDetail);
document.getElementById('verify-shown').addEventListener('click', verifyShown);
document.addEventListener('keydown', (event) => {
  if (event.key === 'Escape') closeDetail();
});
window.addEventListener('popstate', load);

load();
