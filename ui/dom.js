// DOM helpers shared by the views: elements from data (never from HTML strings), phases shown
// with colour, symbol and word, times and durations, and keyed rows updated in place.

/** An element: `h('a', {href: '#/'}, 'text', child)`. Attributes `class` and `on*` handled. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  el.append(...children.flat(Infinity).filter((c) => c !== undefined && c !== null && c !== false));
  return el;
}

const SYMBOLS = { Succeeded: '✓', Failed: '✗', Running: '▶', Pending: '…', Cancelled: '⊘', Skipped: '↷', Unknown: '?' };

/** A phase badge: colour, symbol and word, so that colour is never the only sign. */
export function phase(p) {
  const name = p || 'Unknown';
  return h('span', { class: `phase phase-${name.toLowerCase()}` }, h('span', { 'aria-hidden': 'true' }, SYMBOLS[name] || '?'), ' ', name);
}

/** "3 h ago", with the exact time as a tooltip. */
export function age(iso) {
  if (!iso) return h('span', { class: 'muted' }, '—');
  return h('time', { datetime: iso, title: new Date(iso).toLocaleString() }, ago(iso));
}

export function ago(iso) {
  const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (s < 60) return `${Math.floor(s)} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

/** Phases after which nothing more happens. */
const ENDED = new Set(['Succeeded', 'Failed', 'Skipped', 'Cancelled']);

/** "1 h 4 min" between two times; the second defaults to now (still running). */
function duration(from, to) {
  if (!from) return '';
  const s = Math.max(0, ((to ? Date.parse(to) : Date.now()) - Date.parse(from)) / 1000);
  if (s < 60) return `${Math.round(s)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
}

/**
 * How long something in `phase` took: "4 min 2 s", "1 h 3 min so far" while it runs, or
 * "duration unknown" when it ended without saying when (it is not still running).
 */
export function took(phase, from, to) {
  if (!from) return '';
  if (to) return duration(from, to);
  return ENDED.has(phase) ? 'duration unknown' : `${duration(from)} so far`;
}

export function time(iso) {
  return iso ? h('time', { datetime: iso }, new Date(iso).toLocaleString()) : h('span', { class: 'muted' }, '—');
}

/** A link only to http(s) URLs: a document's `logsUrl` is the writer's, not ours. */
export function external(url, text) {
  try {
    const u = new URL(url);
    if (u.protocol === 'https:' || u.protocol === 'http:') return h('a', { href: u.href, rel: 'noopener noreferrer', target: '_blank' }, text || u.href);
  } catch { /* not a URL */ }
  return h('span', {}, text || String(url));
}

export function executionLink(ns, name, text) {
  return h('a', { href: `#/execution/${encodeURIComponent(ns)}/${encodeURIComponent(name)}` }, text || name);
}

/** A notice in place of a view's content: an error's message, or an empty list. */
export function notice(text, kind = 'info') {
  return h('p', { class: `notice notice-${kind}`, role: kind === 'error' ? 'alert' : 'status' }, text);
}

/**
 * Rows of `tbody` for `items`, in order, each keyed by `key(item)`. A row whose item did not
 * change is left alone and rows move only when out of place: no flicker, and focus stays put.
 */
export function keyedRows(tbody, items, key, render) {
  const existing = new Map([...tbody.children].map((tr) => [tr.dataset.key, tr]));
  items.forEach((item, i) => {
    const k = key(item);
    const json = JSON.stringify(item);
    let tr = existing.get(k);
    existing.delete(k);
    if (!tr) {
      tr = h('tr', { 'data-key': k });
    }
    if (tr.dataset.json !== json) {
      tr.dataset.json = json;
      tr.replaceChildren(...render(item).flat(Infinity));
    }
    if (tbody.children[i] !== tr) tbody.insertBefore(tr, tbody.children[i] || null);
  });
  for (const tr of existing.values()) tr.remove();
}

/** Items by `key`, as a followed list's snapshots and changes leave them; `draw()` after each. */
export function collection(key, draw) {
  const items = new Map();
  return {
    items,
    replace(list) {
      items.clear();
      for (const item of list) items.set(key(item), item);
      draw();
    },
    change(event, item) {
      if (event === 'deleted') items.delete(key(item));
      else items.set(key(item), item);
      draw();
    },
    clear() {
      items.clear();
      draw();
    },
  };
}

/** The hash route's query as an object, and back. */
export function queryOf(hash) {
  const q = hash.indexOf('?');
  return Object.fromEntries(new URLSearchParams(q < 0 ? '' : hash.slice(q + 1)));
}

export function withQuery(path, params) {
  const q = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== undefined && v !== null && v !== ''));
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}
