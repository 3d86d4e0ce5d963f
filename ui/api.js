// The API client. The bearer token lives in sessionStorage only and travels as a header;
// streams are read with fetch because EventSource cannot send one. `follow` keeps a view live:
// a Server-Sent Events stream where the endpoint has one, else long polls with If-None-Match.

const TOKEN = 'execwatch.token';

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export const token = () => sessionStorage.getItem(TOKEN);
export function setToken(t) {
  if (t) sessionStorage.setItem(TOKEN, t);
  else sessionStorage.removeItem(TOKEN);
}

let unauthorized = () => {};
/** What to do when the API answers 401 (ask for a token). */
export function onUnauthorized(f) {
  unauthorized = f;
}

let mode = () => {};
/** Told how the current view is kept live: 'live', 'polling' or 'reconnecting'. */
export function onMode(f) {
  mode = f;
}

function headers(extra = {}) {
  const h = new Headers(extra);
  const t = token();
  if (t) h.set('Authorization', `Bearer ${t}`);
  return h;
}

async function failure(response) {
  let body = {};
  try {
    body = await response.json();
  } catch { /* not JSON: a proxy's page */ }
  const error = new ApiError(response.status, body.code || `HTTP${response.status}`, body.message || response.statusText);
  if (response.status === 401) unauthorized(error);
  return error;
}

/** GET `path` with the token, whatever the status. */
export function request(path, { signal } = {}) {
  return fetch(path, { headers: headers(), signal, cache: 'no-store' });
}

/** GET `path` as JSON; `{body, etag}`, or `{notModified}` when `etag` still holds. */
export async function get(path, { etag, signal } = {}) {
  const response = await fetch(path, { headers: headers(etag ? { 'If-None-Match': etag } : {}), signal, cache: 'no-store' });
  if (response.status === 304) return { notModified: true, etag };
  if (!response.ok) throw await failure(response);
  return { body: await response.json(), etag: response.headers.get('ETag') };
}

const sleep = (ms, signal) =>
  new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
  });

/** Server-Sent Events from a fetch body: `{event, data, id, retry}` per event. */
async function* events(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  let event = { data: [] };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, end).replace(/\r$/, '');
      buffer = buffer.slice(end + 1);
      if (line === '') {
        if (event.data.length || event.event) yield { ...event, event: event.event || 'message', data: event.data.join('\n') };
        event = { data: [] };
      } else if (!line.startsWith(':')) {
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
        if (field === 'data') event.data.push(value);
        else if (field === 'event' || field === 'id') event[field] = value;
        else if (field === 'retry') event.retry = Number(value);
      }
    }
  }
}

/**
 * Keeps `path` live until `signal` aborts. `on.snapshot(body)` gets the whole state (the first
 * answer, and after a resync or a fallback poll), `on.change(event, data)` each change, and
 * `on.error(error)` each failure, after which it retries with backoff (a module switched off
 * comes back on, a lost connection returns); when a stream ends and `on.finished()` says so,
 * it stops. With `stream: false` it long-polls.
 */
export async function follow(path, on, signal, { stream = true } = {}) {
  let lastId = null;
  let retry = 2000;
  let failures = 0;
  while (!signal.aborted) {
    try {
      if (stream) {
        const h = headers({ Accept: 'text/event-stream' });
        if (lastId) h.set('Last-Event-ID', lastId);
        const response = await fetch(path, { headers: h, signal, cache: 'no-store' });
        if (!response.ok) throw await failure(response);
        if ((response.headers.get('Content-Type') || '').startsWith('text/event-stream')) {
          for await (const e of events(response.body)) {
            failures = 0;
            if (e.id) lastId = e.id;
            if (e.retry) retry = e.retry;
            const data = e.data ? JSON.parse(e.data) : {};
            if (e.event === 'snapshot' || e.event === 'resync') {
              mode('live');
              on.snapshot(data);
            } else if (e.event !== 'closed') {
              // `closed` ends the stream: the loop reconnects, and learns why if it must.
              on.change(e.event, data);
            }
          }
          // What no longer changes (an archived execution) is not followed again.
          if (on.finished?.()) {
            mode('live');
            return;
          }
          if (!signal.aborted) mode('reconnecting');
        } else {
          // Something between us and the service does not stream: poll instead.
          on.snapshot(await response.json());
          stream = false;
          await poll(path, response.headers.get('ETag'), on, signal);
        }
      } else {
        await poll(path, null, on, signal);
      }
    } catch (error) {
      if (signal.aborted) return;
      failures += 1;
      mode('reconnecting');
      on.error(error);
      if (error.status === 401) return; // the sign-in restarts the view
    }
    await sleep(Math.min(retry * 2 ** Math.min(failures, 3), 10000), signal);
  }
}

/** Long polls: the server holds each request until the page differs, or for a minute. */
async function poll(path, etag, on, signal) {
  mode('polling');
  const separator = path.includes('?') ? '&' : '?';
  for (;;) {
    const held = etag ? `${path}${separator}timeoutSeconds=60` : path;
    const answer = await get(held, { etag, signal });
    if (signal.aborted) return;
    mode('polling');
    if (!answer.notModified) {
      etag = answer.etag;
      on.snapshot(answer.body);
    }
  }
}
