// The dashboard's only way to the server: GET requests under /api/v1 carry the session cookie
// (HttpOnly, set by POST /api/v1/session), and the event stream is an EventSource on the same
// cookie. The page never keeps a token.

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function failure(resp) {
  let code = 'http', message = `HTTP ${resp.status}`;
  try {
    const body = await resp.json();
    code = body.error.code;
    message = body.error.message;
  } catch (e) {
    // not a JSON error: keep the status
  }
  return new ApiError(resp.status, code, message);
}

export async function get(path) {
  const resp = await fetch('/api/v1' + path, { credentials: 'same-origin' });
  if (!resp.ok) throw await failure(resp);
  return resp.json();
}

// A job's log from offset: its text and the server's figures about it.
export async function getLog(id, stream, offset, limit) {
  const q = `stream=${stream}&offset=${offset}` + (limit ? `&limit=${limit}` : '');
  const resp = await fetch(`/api/v1/jobs/${id}/logs?${q}`, { credentials: 'same-origin' });
  if (!resp.ok) throw await failure(resp);
  const h = (name) => resp.headers.get(name);
  return {
    text: await resp.text(),
    next: Number(h('Gpool-Next-Offset')),
    size: Number(h('Gpool-Log-Size')),
    complete: h('Gpool-Log-Complete') === 'true',
  };
}

// The token, exchanged for the session cookie; it is sent once, here, and forgotten.
export async function login(token) {
  const resp = await fetch('/api/v1/session', {
    method: 'POST',
    credentials: 'same-origin',
    headers: { Authorization: 'Bearer ' + token.trim() },
  });
  if (!resp.ok) throw await failure(resp);
  return resp.json();
}

export async function logout() {
  await fetch('/api/v1/session', { method: 'DELETE', credentials: 'same-origin' });
}

// Job and node events as they happen; `status` hears "live" or "offline". The browser
// reconnects by itself, with Last-Event-ID, and the server answers "resync" when it cannot
// replay what was missed.
export function subscribe(handlers) {
  const es = new EventSource('/api/v1/events');
  const on = (type, fn) => es.addEventListener(type, (e) => fn(e.data ? JSON.parse(e.data) : null));
  on('job', handlers.job);
  on('node', handlers.node);
  on('resync', handlers.resync);
  es.onopen = () => handlers.status('live');
  es.onerror = () => handlers.status(es.readyState === EventSource.CLOSED ? 'offline' : 'connecting');
  return () => es.close();
}
