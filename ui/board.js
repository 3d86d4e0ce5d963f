// The pipelines board: a row per pipeline, a column per environment in promotion order. Each
// cell is that environment's latest phase and the version that got it there. Live through the
// pipelines stream; filtered by namespace (on the server) and by name (here), both in the URL.

import * as api from './api.js';
import { age, collection, executionLink, h, keyedRows, notice, phase, withQuery } from './dom.js';

const PHASES = ['Running', 'Pending', 'Failed', 'Succeeded', 'Cancelled', 'Unknown'];

/** Environment names in promotion order, merged over every pipeline's own order. */
function environments(pipelines) {
  const order = [];
  for (const p of pipelines) {
    let at = -1;
    for (const env of p.environments || []) {
      const i = order.indexOf(env.name);
      if (i >= 0) at = i;
      else order.splice(++at, 0, env.name);
    }
  }
  return order;
}

function counts(c) {
  const parts = PHASES.filter((p) => c && c[p]).map((p) => `${c[p]} ${p}`);
  return parts.length ? parts.join(' · ') : '—';
}

export function render(main, route, signal, ui) {
  const { namespace = '', q = '' } = route.query;
  const form = h('form', { class: 'filters', role: 'search' },
    h('label', {}, 'Namespace ', h('input', { name: 'namespace', value: namespace, placeholder: 'all', autocomplete: 'off' })),
    h('label', {}, 'Pipeline ', h('input', { name: 'q', value: q, placeholder: 'name contains', autocomplete: 'off' })),
    h('button', { type: 'submit' }, 'Filter'));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const data = new FormData(form);
    location.hash = withQuery('/', { namespace: data.get('namespace').trim(), q: data.get('q').trim() });
  });
  const status = h('div', { class: 'view-status' });
  const table = h('table', { class: 'board' });
  const more = h('p', { class: 'muted', hidden: true });
  main.append(h('h1', {}, 'Pipelines'), form, status, h('div', { class: 'scroll' }, table), more);

  const key = (p) => `${p.namespace}/${p.name}`;
  let columns = [];
  const draw = () => {
    const rows = [...pipelines.items.values()]
      .filter((p) => !q || p.name.includes(q))
      .sort((a, b) => key(a).localeCompare(key(b)));
    const wanted = environments(rows);
    if (wanted.join('\n') !== columns.join('\n') || !table.tHead) {
      columns = wanted;
      table.replaceChildren(
        h('caption', { class: 'sr-only' }, 'Pipelines by environment: latest phase and version'),
        h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Pipeline'), columns.map((c) => h('th', { scope: 'col' }, c)),
          h('th', { scope: 'col' }, 'Latest execution'), h('th', { scope: 'col' }, 'Runs'))),
        h('tbody'));
    }
    status.replaceChildren(rows.length ? '' : notice(pipelines.items.size ? 'No pipeline matches.' : 'No pipelines yet.'));
    keyedRows(table.tBodies[0], rows, key, (p) => {
      const byName = new Map((p.environments || []).map((e) => [e.name, e]));
      const latest = p.latestExecution;
      return [
        h('th', { scope: 'row' },
          h('a', { href: withQuery('#/executions', { namespace: p.namespace, pipeline: p.name }) }, p.name),
          h('div', { class: 'muted small' }, p.namespace)),
        columns.map((c) => {
          const env = byName.get(c);
          if (!env) return h('td', { class: 'empty' }, h('span', { class: 'muted' }, '—'));
          return h('td', { 'data-environment': c },
            phase(env.phase),
            h('div', { class: 'small' }, env.execution ? executionLink(p.namespace, env.execution, env.version) : env.version));
        }),
        h('td', {}, latest ? [executionLink(latest.namespace, latest.name), ' ', phase(latest.phase),
          h('div', { class: 'muted small' }, latest.application?.version || '', ' · ', age(latest.startedAt))] : '—'),
        h('td', { class: 'small' }, `${p.executionCount ?? 0}: ${counts(p.counts)}`),
      ];
    });
  };

  const pipelines = collection(key, draw);
  const path = withQuery('/api/v1/pipelines', { namespace, limit: 500 });
  api.follow(path, {
    snapshot(body) {
      more.hidden = !body.continue;
      more.textContent = 'Showing the first 500 pipelines: filter by namespace to see the others.';
      ui.freshness(body.freshness);
      pipelines.replace(body.items);
    },
    change: pipelines.change,
    error(e) {
      // A module switched off shows as such, in place of its data; other failures keep the last.
      if (e.code === 'ModuleNotInstalled') pipelines.clear();
      status.replaceChildren(notice(e.message, 'error'));
    },
  }, signal);
}
