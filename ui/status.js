// Status: every module (enabled, available, ready, last error), the module switch, and each
// source's sync state, from /api/v1/modules and /readyz, refreshed every few seconds.

import * as api from './api.js';
import { h, notice, time } from './dom.js';

const REFRESH = 3000;
const yes = (b) => h('span', { class: b ? 'yes' : 'no' }, b ? '✓ yes' : '✗ no');

export function render(main, route, signal) {
  const modules = h('div');
  const sources = h('div');
  main.append(h('h1', {}, 'Status'), h('h2', {}, 'Modules'), modules, h('h2', {}, 'Sources'), sources);
  const tags = {};

  async function refresh(path, target, draw) {
    try {
      const answer = await api.get(path, { etag: tags[path], signal });
      if (answer.notModified) return;
      tags[path] = answer.etag;
      target.replaceChildren(...draw(answer.body));
    } catch (e) {
      if (signal.aborted) return;
      tags[path] = null;
      // /readyz answers 503 with its body while not ready: that is a state to show.
      target.replaceChildren(notice(e.message, 'error'));
    }
  }

  const drawModules = (body) => [
    h('p', {}, `Module switch: ${body.switch?.state ?? 'unknown'}`, body.switch?.message ? ` — ${body.switch.message}` : ''),
    h('div', { class: 'scroll' }, h('table', {},
      h('thead', {}, h('tr', {}, ['Module', 'Enabled', 'Available', 'Ready', 'Depends on', 'Last error'].map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, body.items.map((m) => h('tr', { 'data-key': m.name },
        h('th', { scope: 'row' }, m.name), h('td', {}, yes(m.enabled)), h('td', {}, yes(m.available)), h('td', {}, yes(m.ready)),
        h('td', {}, (m.dependsOn || []).join(', ') || '—'), h('td', { class: 'small' }, m.lastError || '—')))))),
  ];

  const drawSources = (body) => [
    h('p', {}, body.ready ? h('span', { class: 'yes' }, '✓ Ready') : h('span', { class: 'no' }, '✗ Not ready'),
      body.shuttingDown ? ' (shutting down)' : '',
      body.waiting === undefined ? '' : ` · ${body.waiting} long polls and streams open`),
    h('div', { class: 'scroll' }, h('table', {},
      h('thead', {}, h('tr', {}, ['Source', 'State', 'Last sync', 'Stale', 'Last error'].map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, (body.sources || []).map((s) => h('tr', {},
        h('th', { scope: 'row' }, s.source), h('td', {}, s.state), h('td', {}, time(s.lastSync)), h('td', {}, s.stale ? h('span', { class: 'no' }, '⚠ stale') : 'no'),
        h('td', { class: 'small' }, s.lastError || '—')))))),
  ];

  const readyz = async () => {
    // /readyz is 503 with the same body while not ready: read it either way.
    try {
      const response = await api.request('/readyz', { signal });
      const body = await response.json();
      sources.replaceChildren(...(body.sources ? drawSources(body) : [notice(`Ready: ${body.ready ?? response.ok}`)]));
    } catch (e) {
      if (!signal.aborted) sources.replaceChildren(notice(e.message, 'error'));
    }
  };

  const tick = async () => {
    if (signal.aborted) return;
    await Promise.all([refresh('/api/v1/modules', modules, drawModules), readyz()]);
    if (!signal.aborted) setTimeout(tick, REFRESH);
  };
  tick();
}
