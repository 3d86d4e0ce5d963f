// Rejections: what a pipeline writer needs to fix a ConfigMap. Each reason with its code and
// JSON pointer, and the commands that check a fix locally. Long-polled: rejections have no stream.

import * as api from './api.js';
import { age, h, notice, withQuery } from './dom.js';

export function render(main, route, signal, ui) {
  const { namespace = '', continue: token } = route.query;
  const form = h('form', { class: 'filters', role: 'search' },
    h('label', {}, 'Namespace ', h('input', { name: 'namespace', value: namespace, placeholder: 'all', autocomplete: 'off' })),
    h('button', { type: 'submit' }, 'Filter'));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    location.hash = withQuery('/rejections', { namespace: new FormData(form).get('namespace').trim() });
  });
  const list = h('div', { class: 'rejections' });
  const pager = h('nav', { class: 'pager', 'aria-label': 'Pages' });
  main.append(h('h1', {}, 'Rejections'),
    h('p', { class: 'muted' }, 'ConfigMaps labelled as executions that are not served, and why.'), form, list, pager);

  let shown = '';
  const path = withQuery('/api/v1/rejections', { namespace, continue: token });
  api.follow(path, {
    snapshot(body) {
      ui.freshness(body.freshness);
      pager.replaceChildren(
        token ? h('a', { href: withQuery('#/rejections', { namespace }) }, '« First page') : '',
        body.continue ? h('a', { href: withQuery('#/rejections', { namespace, continue: body.continue }) }, 'Next page »') : '');
      const json = JSON.stringify(body.items);
      if (json === shown) return;
      shown = json;
      list.replaceChildren(...(body.items.length ? body.items.map(rejection) : [notice('Nothing is rejected.')]));
    },
    error(e) {
      shown = '';
      list.replaceChildren(notice(e.message, 'error'));
    },
  }, signal, { stream: false });
}

function rejection(r) {
  const file = `${r.name}.yaml`;
  const commands = `kubectl get configmap -n ${r.namespace} ${r.name} -o yaml > ${file}\nexecwatch validate ${file}`;
  return h('article', { class: 'rejection', 'data-key': `${r.namespace}/${r.name}` },
    h('h2', {}, r.name, ' ', h('span', { class: 'muted small' }, r.namespace)),
    h('p', { class: 'small muted' }, 'Rejected ', age(r.rejectedAt), ` · resourceVersion ${r.resourceVersion}`),
    h('ul', { class: 'reasons' }, r.reasons.map((reason) =>
      h('li', {}, h('code', { class: 'code' }, reason.code), reason.pointer ? [' at ', h('code', {}, reason.pointer)] : '', ': ', reason.message))),
    h('details', {}, h('summary', {}, 'Check a fix locally'), h('pre', {}, commands)));
}
