// Executions: the list with the API's filters, kept in the URL, paged with `continue`; and one
// execution, whole, with its environments and targets as a timeline. The first page and one
// execution follow their streams; a later page is long-polled.

import * as api from './api.js';
import { age, collection, executionLink, external, h, keyedRows, notice, phase, time, took, withQuery } from './dom.js';

const FILTERS = ['namespace', 'pipeline', 'phase', 'environment', 'labelSelector'];
const PHASES = ['Pending', 'Running', 'Succeeded', 'Failed', 'Cancelled', 'Unknown'];

export function render(main, route, signal, ui) {
  if (route.variant === 'one') one(main, route.params[0], route.params[1], signal);
  else list(main, route.query, signal, ui);
}

function filterForm(query) {
  const input = (name, label, placeholder) =>
    h('label', {}, `${label} `, h('input', { name, value: query[name] || '', placeholder, autocomplete: 'off' }));
  const form = h('form', { class: 'filters', role: 'search' },
    input('namespace', 'Namespace', 'all'),
    input('pipeline', 'Pipeline', 'any'),
    h('label', {}, 'Phase ', h('select', { name: 'phase' }, h('option', { value: '' }, 'any'),
      PHASES.map((p) => h('option', { value: p, selected: query.phase === p }, p)))),
    input('environment', 'Environment', 'any'),
    input('labelSelector', 'Labels', 'team=payments,tier!=batch'),
    h('button', { type: 'submit' }, 'Filter'));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const data = new FormData(form);
    location.hash = withQuery('/executions', Object.fromEntries(FILTERS.map((f) => [f, String(data.get(f) || '').trim()])));
  });
  return form;
}

function newestFirst(a, b) {
  const t = (b.startedAt || '').localeCompare(a.startedAt || '');
  return t || `${a.namespace}/${a.name}`.localeCompare(`${b.namespace}/${b.name}`);
}

function list(main, query, signal, ui) {
  const filters = Object.fromEntries(FILTERS.map((f) => [f, query[f]]));
  const status = h('div', { class: 'view-status' });
  const tbody = h('tbody');
  const table = h('table', {},
    h('caption', { class: 'sr-only' }, 'Executions, newest first'),
    h('thead', {}, h('tr', {}, ['Execution', 'Pipeline', 'Version', 'Phase', 'Environments', 'Started'].map((c) => h('th', { scope: 'col' }, c)))),
    tbody);
  const pager = h('nav', { class: 'pager', 'aria-label': 'Pages' });
  main.append(h('h1', {}, 'Executions'), filterForm(query), status, h('div', { class: 'scroll' }, table), pager);

  const key = (e) => `${e.namespace}/${e.name}`;
  const draw = () => {
    const rows = [...executions.items.values()].sort(newestFirst);
    status.replaceChildren(rows.length ? '' : notice('No executions match.'));
    keyedRows(tbody, rows, key, (e) => [
      h('th', { scope: 'row' }, executionLink(e.namespace, e.name), archivedTag(e), h('div', { class: 'muted small' }, e.namespace)),
      h('td', {}, e.pipeline),
      h('td', {}, e.application?.version || ''),
      h('td', {}, phase(e.phase)),
      h('td', { class: 'envs' }, h('div', {}, (e.environments || []).map((env) => h('span', { class: 'env' }, env.name, ' ', phase(env.phase))))),
      h('td', {}, age(e.startedAt)),
    ]);
  };
  const pages = (next) => {
    pager.replaceChildren(
      query.continue ? h('a', { href: withQuery('#/executions', filters) }, '« First page') : '',
      next ? h('a', { href: withQuery('#/executions', { ...filters, continue: next }) }, 'Next page »') : '');
  };

  const executions = collection(key, draw);
  const path = withQuery('/api/v1/executions', { ...filters, continue: query.continue });
  api.follow(path, {
    snapshot(body) {
      ui.freshness(body.freshness);
      pages(body.continue);
      executions.replace(body.items);
    },
    change: executions.change,
    error(e) {
      // A module switched off, or filters the API refuses: no rows, and the reason.
      if (e.code === 'ModuleNotInstalled' || e.status === 400) executions.clear();
      status.replaceChildren(notice(e.message, 'error'));
    },
  }, signal, { stream: !query.continue });
}

// An execution whose ConfigMap is gone, served from the archive.
function archivedTag(e) {
  return e.archived ? h('span', { class: 'archived', title: `ConfigMap deleted ${new Date(e.deletedAt).toLocaleString()}` }, 'archived') : '';
}

function one(main, namespace, name, signal) {
  const body = h('div');
  main.append(h('p', { class: 'crumbs' }, h('a', { href: '#/executions' }, 'Executions'), ' / ', namespace, ' / '), body);
  body.append(h('h1', {}, name), h('p', { class: 'muted' }, 'Loading…'));
  const path = `/api/v1/namespaces/${encodeURIComponent(namespace)}/executions/${encodeURIComponent(name)}`;
  let shown = '';
  let archived = false;
  const show = (detail) => {
    archived = detail.archived === true;
    const json = JSON.stringify(detail);
    if (json === shown) return;
    shown = json;
    body.replaceChildren(...execution(detail));
    if (detail.archived) {
      body.prepend(notice(`Archived: its ConfigMap was deleted ${new Date(detail.deletedAt).toLocaleString()}. This is its last state.`));
    }
  };
  api.follow(path, {
    snapshot: show,
    finished: () => archived,
    change(event, detail) {
      if (event === 'deleted') {
        body.prepend(notice('This execution was deleted.', 'error'));
        return;
      }
      show(detail);
    },
    error(e) {
      body.replaceChildren(h('h1', {}, name), notice(e.message, 'error'));
      shown = '';
    },
  }, signal);
}

function execution(detail) {
  const x = detail.execution || {};
  const app = x.application || {};
  const trigger = x.trigger;
  const facts = [
    ['Pipeline', h('a', { href: withQuery('#/executions', { namespace: detail.namespace, pipeline: x.pipeline }) }, x.pipeline)],
    ['Application', `${app.name || ''} ${app.version || ''}${app.revision ? ` (${app.revision})` : ''}`],
    ['Phase', phase(x.phase)],
    ['Trigger', trigger ? `${trigger.type}${trigger.by ? ` by ${trigger.by}` : ''}${trigger.ref ? ` (${trigger.ref})` : ''}` : '—'],
    ['Started', time(x.startedAt)],
    ['Finished', time(x.finishedAt)],
    ['Duration', took(x.phase, x.startedAt, x.finishedAt) || '—'],
    ['Logs', x.logsUrl ? external(x.logsUrl) : '—'],
  ];
  if (x.message) facts.push(['Message', x.message]);
  return [
    h('h1', {}, detail.name, ' ', phase(x.phase)),
    h('dl', { class: 'facts' }, facts.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)])),
    h('h2', {}, 'Environments'),
    h('ol', { class: 'timeline' }, (x.environments || []).map((env) =>
      h('li', { class: `step phase-${(env.phase || 'unknown').toLowerCase()}` },
        h('h3', {}, env.name, ' ', phase(env.phase)),
        h('p', { class: 'small' }, 'Started ', time(env.startedAt), ' · finished ', time(env.finishedAt),
          env.startedAt ? ` · ${took(env.phase, env.startedAt, env.finishedAt)}` : ''),
        env.message ? h('p', {}, env.message) : '',
        h('ul', { class: 'targets' }, (env.targets || []).map((t) =>
          h('li', {}, phase(t.phase), ' ', h('strong', {}, t.cluster), ` / ${t.namespace}`, t.message ? h('div', { class: 'small' }, t.message) : '')))))),
    h('details', {},
      h('summary', {}, 'Labels and the whole document'),
      h('pre', { class: 'document' }, JSON.stringify({ labels: detail.labels, resourceVersion: detail.resourceVersion, execution: x }, null, 2))),
  ];
}
