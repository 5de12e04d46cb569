// The panel's only ways out: JSON calls to the API with the key in an `Authorization` header,
// and the event stream, where the key travels as a WebSocket subprotocol. The key lives in
// `sessionStorage` (this tab only, gone when it closes) and is never put in a URL.

const STORE = 'sincro.apiKey';

export const session = {
  get key() { return sessionStorage.getItem(STORE); },
  set(key) { sessionStorage.setItem(STORE, key); },
  clear() { sessionStorage.removeItem(STORE); },
};

/** An API error: HTTP status, the API's error code and message. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** Calls the API; JSON in and out (a blob for anything else). Throws ApiError. */
export async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${session.key}` };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let resp;
  try {
    resp = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
      credentials: 'omit',
      referrerPolicy: 'no-referrer',
    });
  } catch (e) {
    throw new ApiError(0, 'network', String(e.message || e));
  }
  if (resp.status === 401) {
    // The key was revoked or expired meanwhile: the shell asks for another.
    window.dispatchEvent(new Event('sincro:unauthorized'));
  }
  if (!resp.ok) {
    let code = `http_${resp.status}`;
    let message = resp.statusText;
    try {
      const e = await resp.json();
      code = e?.error?.code ?? code;
      message = e?.error?.message ?? message;
    } catch { /* not JSON */ }
    throw new ApiError(resp.status, code, message);
  }
  const type = resp.headers.get('content-type') || '';
  return type.includes('json') ? resp.json() : resp.blob();
}

export const get = (path) => api('GET', path);
export const post = (path, body) => api('POST', path, body);
export const del = (path) => api('DELETE', path);

/**
 * The event stream, reconnecting with `since` (the last seq seen, or the one a close reason
 * names) after a growing pause, so no event is missed across reconnects.
 */
export class Stream {
  constructor(onEvent, onState) {
    this.onEvent = onEvent;
    this.onState = onState;
    this.since = null;
    this.delay = 500;
    this.closed = false;
    this.ws = null;
  }

  open() {
    if (this.closed) return;
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const query = this.since === null ? '' : `?since=${this.since}`;
    const ws = new WebSocket(`${scheme}//${location.host}/v1/stream${query}`,
      ['sincro.stream', `bearer.${session.key}`]);
    this.ws = ws;
    ws.onopen = () => { this.delay = 500; this.onState('live'); };
    ws.onmessage = (m) => {
      let ev;
      try { ev = JSON.parse(m.data); } catch { return; }
      if (typeof ev.seq === 'number') this.since = ev.seq;
      this.onEvent(ev);
    };
    ws.onclose = (c) => {
      this.ws = null;
      if (this.closed) return;
      const named = /since=(\d+)/.exec(c.reason || '');
      if (named) this.since = Number(named[1]);
      this.onState('reconnecting');
      setTimeout(() => this.open(), this.delay);
      this.delay = Math.min(this.delay * 2, 15000);
    };
  }

  close() {
    this.closed = true;
    if (this.ws) this.ws.close(1000);
  }
}
