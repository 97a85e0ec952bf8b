/**
 * Helpers shared by the backoffice pages. Everything that came from the log is put on the page
 * with textContent, never as HTML.
 */

/** The CSRF token of this page's session (empty when the page was opened with a bearer token). */
export function csrfToken() {
  return document.querySelector('meta[name="csrf-token"]')?.getAttribute('content') ?? '';
}

/** An element with text content and attributes; children may be elements or strings. */
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === 'className') node.className = value;
    else if (name === 'text') node.textContent = String(value);
    else node.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(typeof child === 'string' ? document.createTextNode(child) : child);
  }
  return node;
}

/** Thrown by {@link api} with the server's error code and message. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/**
 * Calls a backoffice API with the session cookie (and the CSRF token on writes). Network
 * failures reject with a TypeError; HTTP errors with an {@link ApiError}.
 */
export async function api(path, { method = 'GET', body, timeoutMs = 10_000 } = {}) {
  const headers = { accept: 'application/json' };
  if (method !== 'GET') headers['x-csrf-token'] = csrfToken();
  if (body !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(path, {
    method,
    headers,
    credentials: 'same-origin',
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(timeoutMs),
  });
  const json = await response.json().catch(() => null);
  if (!response.ok) {
    const error = json?.error ?? {};
    throw new ApiError(
      response.status,
      error.code ?? 'HTTP_ERROR',
      error.message ?? `${method} ${path} answered ${response.status}`,
    );
  }
  return json;
}

/** Sends the browser to the sign-in page, coming back here afterwards. */
export function signInAgain() {
  const next = location.pathname + location.search;
  location.assign(`/backoffice/login?next=${encodeURIComponent(next)}`);
}

/** `2025-11-28T09:30:00.123Z` → `2025-11-28 09:30:00.123`. */
export function formatUtc(iso) {
  return typeof iso === 'string' ? iso.replace('T', ' ').replace(/Z$/, '') : '';
}

/** A number with thousands separators, or `—` when the server did not report it. */
export function formatNumber(value, fractionDigits = 0) {
  if (typeof value !== 'number' || !Number.isFinite(value)) return '—';
  return value.toLocaleString('en-US', {
    minimumFractionDigits: fractionDigits,
    maximumFractionDigits: fractionDigits,
  });
}

/** `3725000` → `1h 2m`; `42000` → `42s`. */
export function formatDuration(ms) {
  if (typeof ms !== 'number' || !Number.isFinite(ms) || ms < 0) return '—';
  const seconds = Math.floor(ms / 1000);
  if (seconds < 60) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes}m ${seconds % 60}s`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `${hours}h ${minutes % 60}m`;
  return `${Math.floor(hours / 24)}d ${hours % 24}h`;
}

/** Bytes as `12.3 MB`. */
export function formatBytes(bytes) {
  if (typeof bytes !== 'number' || !Number.isFinite(bytes)) return '—';
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}

/** Epoch milliseconds from an ISO string, epoch seconds or epoch milliseconds; null otherwise. */
export function toTimeMs(value) {
  if (typeof value === 'number' && Number.isFinite(value)) return value < 1e11 ? value * 1000 : value;
  if (typeof value === 'string') {
    const ms = Date.parse(value);
    return Number.isNaN(ms) ? null : ms;
  }
  return null;
}

/** The first of several field names the object has (servers may name an extra field differently). */
export function pick(object, ...names) {
  if (object === null || typeof object !== 'object') return undefined;
  for (const name of names) {
    if (object[name] !== undefined && object[name] !== null) return object[name];
  }
  return undefined;
}
