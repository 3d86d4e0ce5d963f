// The dashboard's shell: a router over the URL's hash (so every view, with its filters, can be
// shared as a link), the sign-in dialog, the banner for incomplete or stale data, and the
// indicator of how the page is kept live. Each view is a module exporting `render(main, route,
// signal, ui)`; leaving a view aborts `signal`, which ends its streams and polls.

import * as api from './api.js';
import { queryOf } from './dom.js';
import * as board from './board.js';
import * as executions from './executions.js';
import * as insights from './insights.js';
import * as rejections from './rejections.js';
import * as status from './status.js';

const VIEWS = [
  [/^\/?$/, board, 'board'],
  [/^\/executions$/, executions, 'executions'],
  [/^\/execution\/([^/]+)\/([^/]+)$/, executions, 'executions', 'one'],
  [/^\/rejections$/, rejections, 'rejections'],
  [/^\/insights$/, insights, 'insights'],
  [/^\/status$/, status, 'status'],
];

const main = document.getElementById('main');
const banner = document.getElementById('banner');
const live = document.getElementById('live');
const login = document.getElementById('login');
const signOut = document.getElementById('sign-out');
let current = null;

/** What views may call on the shell. */
const ui = {
  /** Shows (or, given a complete and fresh list, hides) the banner for a list's freshness. */
  freshness(freshness) {
    if (!freshness || (freshness.complete && !freshness.stale)) {
      banner.hidden = true;
      banner.textContent = '';
      return;
    }
    const sources = (freshness.incompleteSources || [])
      .map((s) => `${s.source} (${s.state}${s.lastError ? `: ${s.lastError}` : ''})`)
      .join('; ');
    banner.textContent = `${freshness.stale ? 'Stale data' : 'Incomplete data'}: this list may be missing executions${sources ? ` from ${sources}` : ''}.`;
    banner.hidden = false;
  },
};

api.onMode((mode) => {
  live.dataset.mode = mode;
  live.textContent = { live: '● live', polling: '◌ polling', reconnecting: '○ reconnecting…' }[mode] || '';
});

api.onUnauthorized(() => {
  if (!login.open) {
    document.getElementById('login-error').hidden = !api.token();
    document.getElementById('login-error').textContent = api.token() ? 'That token was not accepted.' : '';
    login.showModal();
  }
});

document.getElementById('login-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const input = document.getElementById('login-token');
  api.setToken(input.value.trim());
  input.value = '';
  login.close();
  route();
});

signOut.addEventListener('click', () => {
  api.setToken(null);
  route();
});

function route() {
  current?.abort();
  current = new AbortController();
  const path = location.hash.replace(/^#/, '').split('?')[0] || '/';
  signOut.hidden = !api.token();
  ui.freshness(null);
  for (const [pattern, view, nav, variant] of VIEWS) {
    const match = path.match(pattern);
    if (!match) continue;
    for (const a of document.querySelectorAll('nav a')) {
      if (a.dataset.view === nav) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
    const params = match.slice(1).map(decodeURIComponent);
    main.replaceChildren();
    view.render(main, { path, params, variant, query: queryOf(location.hash) }, current.signal, ui);
    return;
  }
  main.replaceChildren();
  const p = document.createElement('p');
  p.className = 'notice notice-error';
  p.textContent = `No page ${path}.`;
  main.append(p);
}

window.addEventListener('hashchange', () => {
  route();
  main.focus({ preventScroll: true });
});
route();
