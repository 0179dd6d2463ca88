// Calls to Coinpurse's own API, same origin. The session is in httpOnly cookies; every call
// that changes state echoes the readable cp_csrf cookie in X-CSRF-Token. An expired access
// cookie is renewed once (one refresh at a time) and the call retried.

export class ApiError extends Error {
  constructor(status, problem) {
    super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
    this.status = status;
    this.problem = problem || {};
    this.code = this.problem.code || '';
  }
}

let signedOut = () => {};
let refreshing = null;

export function onSignedOut(fn) { signedOut = fn; }

function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)cp_csrf=([^;]*)/);
  return match ? decodeURIComponent(match[1]) : '';
}

function send(method, path, body, headers) {
  const all = { Accept: 'application/json', ...headers };
  if (body !== undefined) all['Content-Type'] = 'application/json';
  if (method !== 'GET' && method !== 'HEAD') all['X-CSRF-Token'] = csrfToken();
  return fetch(path, {
    method, headers: all, credentials: 'same-origin', cache: 'no-store',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

// Refresh tokens work once, so two tabs refreshing at the same moment would sign each other
// out: tabs take turns (Web Locks), and a tab first checks whether another one has just
// refreshed the shared cookies.
async function refreshOnce() {
  const probe = await send('GET', '/api/v1/me');
  if (probe.ok) return true;
  const res = await send('POST', '/api/v1/auth/session/refresh');
  return res.ok;
}

export function refreshSession() {
  if (!refreshing) {
    const run = navigator.locks
      ? navigator.locks.request('coinpurse-session-refresh', refreshOnce)
      : refreshOnce();
    refreshing = run.catch(() => false).finally(() => { refreshing = null; });
  }
  return refreshing;
}

export async function api(method, path, body, options = {}) {
  const headers = { ...options.headers };
  if (options.idempotencyKey) headers['Idempotency-Key'] = options.idempotencyKey;
  let res = await send(method, path, body, headers);
  if (res.status === 401 && options.retry !== false) {
    if (csrfToken() && await refreshSession()) {
      res = await send(method, path, body, headers);
    }
    if (res.status === 401) signedOut();
  }
  const text = await res.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = { detail: text }; }
  }
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
}

export const get = (path, params) => api('GET', params ? `${path}?${query(params)}` : path);

export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== null && v !== undefined && v !== '') q.set(k, String(v));
  }
  return q.toString();
}

export function newKey() {
  // Works on plain http too (crypto.randomUUID needs a secure context).
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return 'web-' + Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

export function signIn(email, password, totpCode) {
  const body = { email, password };
  if (totpCode) {
    if (/^[0-9]{6,10}$/.test(totpCode)) body.totp_code = totpCode;
    else body.recovery_code = totpCode;
  }
  return api('POST', '/api/v1/auth/session', body, { retry: false });
}

export const signOut = () => api('POST', '/api/v1/auth/session/logout', undefined,
                                 { retry: false });

export function problemText(err) {
  if (!(err instanceof ApiError)) return String(err && err.message ? err.message : err);
  const p = err.problem;
  let text = p.detail || p.title || err.message;
  if (p.reason && !text.includes(p.reason)) text += ` (${p.reason})`;
  return text;
}
