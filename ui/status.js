// Status: every module (enabled, available, ready, last error), the module switch, each
// source's sync state, and (with the notifications module) a namespace's latest deliveries, from
// /api/v1/modules, /readyz and /api/v1/namespaces/{ns}/deliveries, refreshed every few seconds.

import * as api from './api.js';
import { ago, h, notice, time, withQuery } from './dom.js';

const REFRESH = 3000;
const yes = (b) => h('span', { class: b ? 'yes' : 'no' }, b ? '✓ yes' : '✗ no');

export function render(main, route, signal) {
  const modules = h('div');
  const sources = h('div');
  const deliveries = h('div');
  const notifications = h('section', { id: 'notifications', hidden: true }, h('h2', {}, 'Notifications'), namespacePicker(route), deliveries);
  main.append(h('h1', {}, 'Status'), h('h2', {}, 'Modules'), modules, h('h2', {}, 'Sources'), sources, notifications);
  const tags = {};
  const namespace = route.query.namespace;

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

  const drawDeliveries = (body) => body.items.length === 0 ? [notice(`No deliveries in ${body.namespace}.`)] : [
    h('div', { class: 'scroll' }, h('table', {},
      h('thead', {}, h('tr', {}, ['Subscription', 'Transition', 'Subject', 'State', 'Attempts', 'Last error', 'Next attempt', 'Created'].map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, body.items.map((d) => h('tr', { 'data-key': d.id },
        h('th', { scope: 'row' }, d.subscription), h('td', {}, d.transition), h('td', {}, d.subject),
        h('td', {}, h('span', { class: d.state === 'sent' ? 'yes' : 'no' }, d.state)), h('td', {}, String(d.attempts)),
        h('td', { class: 'small' }, d.lastError || '—'), h('td', {}, d.nextAttemptAt ? time(d.nextAttemptAt) : '—'),
        h('td', {}, ago(d.createdAt))))))),
  ];

  const notificationsOn = async () => {
    const answer = await api.get('/api/v1/modules', { signal }).catch(() => null);
    return answer?.body?.items?.some((m) => m.name === 'notifications' && m.available) ?? false;
  };

  const tick = async () => {
    if (signal.aborted) return;
    const shown = [refresh('/api/v1/modules', modules, drawModules), readyz()];
    notifications.hidden = !(await notificationsOn());
    if (!notifications.hidden && namespace) {
      shown.push(refresh(`/api/v1/namespaces/${encodeURIComponent(namespace)}/deliveries`, deliveries, drawDeliveries));
    } else if (!namespace) {
      deliveries.replaceChildren(notice('Choose a namespace to see its deliveries.'));
    }
    await Promise.all(shown);
    if (!signal.aborted) setTimeout(tick, REFRESH);
  };
  tick();
}

// A namespace to show deliveries of: kept in the URL (#/status?namespace=…), so it can be shared.
function namespacePicker(route) {
  const input = h('input', { id: 'deliveries-namespace', name: 'namespace', value: route.query.namespace || '', placeholder: 'namespace' });
  const form = h('form', { class: 'filters' }, h('label', { for: 'deliveries-namespace' }, 'Deliveries of namespace '), input, h('button', { type: 'submit' }, 'Show'));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    location.hash = withQuery('/status', { namespace: input.value.trim() });
  });
  return form;
}
