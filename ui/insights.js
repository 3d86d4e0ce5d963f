// Insights: for each application × environment, deployments per bucket (bars), change fail rate
// as "3 of 20 (15 %)", lead time and recovery medians, and run-duration percentiles over time
// (lines). Charts are SVG drawn here (docs/design.md says why), each with its numbers in a table
// beside it for screen readers and copy-paste. The answer is long-polled: a finished run shows
// without a reload.

import * as api from './api.js';
import { h, notice, withQuery } from './dom.js';

const RANGES = ['30d', '90d', '180d', '365d'];
const INTERVALS = ['day', 'week', 'month'];
const SVG = 'http://www.w3.org/2000/svg';
const WAIT = 60;

/** An SVG element from data, as `h` makes HTML ones. */
function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) el.setAttribute(k, v);
  el.append(...children.flat(Infinity).filter((c) => c !== undefined && c !== null));
  return el;
}

/** "3 of 20 (15 %)", or "no deployments". */
export function rate(r) {
  if (!r || !r.of) return 'no deployments';
  return `${r.count} of ${r.of} (${Math.round(r.value * 1000) / 10} %)`;
}

/** Seconds as people read them: "45 s", "12 min", "3.1 h", "2.5 d"; "—" when unmeasured. */
export function span(seconds) {
  if (seconds === undefined || seconds === null) return '—';
  if (seconds < 60) return `${Math.round(seconds)} s`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min`;
  if (seconds < 86400) return `${Math.round(seconds / 360) / 10} h`;
  return `${Math.round(seconds / 8640) / 10} d`;
}

const label = (b, interval, tz) => new Date(b.start).toLocaleDateString(undefined, interval === 'month'
  ? { year: 'numeric', month: 'short', timeZone: tz } : { month: 'short', day: 'numeric', timeZone: tz });

/** Stacked bars of succeeded and failed deployments per bucket. */
function bars(buckets, id, labels) {
  const width = 640, height = 160, pad = 24;
  const max = Math.max(1, ...buckets.map((b) => b.deployments.succeeded + b.deployments.failed));
  const step = (width - pad) / Math.max(1, buckets.length);
  const y = (v) => height - pad - (v / max) * (height - 2 * pad);
  const bar = (i, from, to, cls) => s('rect', { x: pad + i * step + 1, y: y(to), width: Math.max(1, step - 2), height: y(from) - y(to), class: cls });
  return s('svg', { viewBox: `0 0 ${width} ${height}`, class: 'chart', role: 'img', 'aria-labelledby': id, preserveAspectRatio: 'none' },
    s('line', { x1: pad, y1: y(0), x2: width, y2: y(0), class: 'axis' }),
    s('text', { x: 0, y: y(max) + 4, class: 'tick' }, String(max)),
    buckets.map((b, i) => [
      bar(i, 0, b.deployments.succeeded, 'bar-ok'),
      bar(i, b.deployments.succeeded, b.deployments.succeeded + b.deployments.failed, 'bar-bad'),
      s('title', {}, `${labels[i]}: ${b.deployments.succeeded} succeeded, ${b.deployments.failed} failed`),
    ]));
}

/** Lines of run-duration p50, p90 and p99 per bucket (gaps where nothing ran). */
function lines(buckets, id) {
  const width = 640, height = 160, pad = 24;
  const keys = ['p50', 'p90', 'p99'];
  const max = Math.max(1, ...buckets.flatMap((b) => keys.map((k) => b.durations.run[k] || 0)));
  const step = (width - pad) / Math.max(1, buckets.length);
  const x = (i) => pad + i * step + step / 2;
  const y = (v) => height - pad - (v / max) * (height - 2 * pad);
  const path = (k) => {
    let d = '', pen = 'M';
    buckets.forEach((b, i) => {
      const v = b.durations.run[k];
      if (v === undefined) { pen = 'M'; return; }
      d += `${pen}${x(i).toFixed(1)},${y(v).toFixed(1)} `;
      pen = 'L';
    });
    return s('path', { d: d.trim(), class: `line line-${k}` });
  };
  return s('svg', { viewBox: `0 0 ${width} ${height}`, class: 'chart', role: 'img', 'aria-labelledby': id, preserveAspectRatio: 'none' },
    s('line', { x1: pad, y1: y(0), x2: width, y2: y(0), class: 'axis' }),
    s('text', { x: 0, y: y(max) + 4, class: 'tick' }, span(max)),
    keys.map(path));
}

/** One application × environment: its headline numbers, two charts and their tables. */
function card(group, interval, tz, n) {
  const { application, environment } = group.key;
  const t = group.total;
  const labels = group.buckets.map((b) => label(b, interval, tz));
  const id = `insight-${n}`;
  const rows = group.buckets.map((b, i) => h('tr', {},
    h('th', { scope: 'row' }, labels[i]), h('td', {}, String(b.deployments.succeeded)), h('td', {}, String(b.deployments.failed)),
    h('td', {}, rate(b.changeFailRate)), h('td', {}, span(b.durations.run.p50)), h('td', {}, span(b.durations.run.p90)),
    h('td', {}, span(b.durations.run.p99))));
  return h('article', { class: 'insight', 'data-key': `${application}/${environment}` },
    h('h2', {}, application, ' · ', environment),
    h('dl', { class: 'figures' },
      h('div', {}, h('dt', {}, 'Deployments'), h('dd', { 'data-figure': 'deployments' }, String(t.deployments.succeeded))),
      h('div', {}, h('dt', {}, 'Change fail rate'), h('dd', { 'data-figure': 'change-fail-rate' }, rate(t.changeFailRate))),
      h('div', {}, h('dt', {}, 'Lead time (median)'), h('dd', { 'data-figure': 'lead-time' }, span(t.leadTime.p50))),
      h('div', {}, h('dt', {}, 'Recovery (median)'), h('dd', { 'data-figure': 'recovery' },
        span(t.recovery.time.p50), t.recovery.open ? ` · ${t.recovery.open} open` : ''))),
    h('div', { class: 'charts' },
      h('figure', {}, h('figcaption', { id: `${id}-bars` }, `Deployments per ${interval} (succeeded, failed)`), bars(group.buckets, `${id}-bars`, labels)),
      h('figure', {}, h('figcaption', { id: `${id}-lines` }, 'Run duration p50, p90, p99'), lines(group.buckets, `${id}-lines`))),
    h('details', {}, h('summary', {}, 'Numbers'),
      h('div', { class: 'scroll' }, h('table', { class: 'numbers' },
        h('caption', { class: 'sr-only' }, `${application} in ${environment}, per ${interval}`),
        h('thead', {}, h('tr', {}, [interval[0].toUpperCase() + interval.slice(1), 'Succeeded', 'Failed', 'Change fail rate', 'Run p50', 'Run p90', 'Run p99']
          .map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', {}, rows)))));
}

export function render(main, route, signal, ui) {
  const q = route.query;
  const tz = q.tz || Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
  const range = RANGES.includes(q.since) ? q.since : '90d';
  const interval = INTERVALS.includes(q.interval) ? q.interval : 'week';
  // A link may name the range exactly (`from`, `to`: times or dates); the menu offers the usual ones.
  const go = (change) => { location.hash = withQuery('/insights', { since: range, interval, tz, namespace: q.namespace, ...change }); };
  const select = (name, values, value) => h('label', {}, name,
    h('select', { onchange: (e) => go({ [name]: e.target.value }) }, values.map((v) => h('option', { value: v, selected: v === value }, v))));
  const body = h('div', { 'aria-live': 'polite' }, h('p', { class: 'muted' }, 'Loading…'));
  main.append(h('h1', {}, 'Insights'),
    h('div', { class: 'filters' }, select('since', RANGES, range), select('interval', INTERVALS, interval),
      h('span', { class: 'muted small' }, `Time zone ${tz}. Definitions: docs/insights.md`)),
    body);
  const path = withQuery('/api/v1/insights',
    { groupBy: 'application,environment', interval, from: q.from || range, to: q.to, tz, namespace: q.namespace });
  let etag = null;
  const draw = (answer) => {
    ui.freshness(answer.freshness);
    body.replaceChildren(...(answer.groups.length
      ? answer.groups.map((g, n) => card(g, interval, tz, n))
      : [notice(`No deployments between ${answer.from} and ${answer.to}.`)]));
  };
  (async () => {
    while (!signal.aborted) {
      try {
        const answer = await api.get(etag ? `${path}&timeoutSeconds=${WAIT}` : path, { etag, signal });
        if (!answer.notModified) {
          etag = answer.etag;
          draw(answer.body);
        }
      } catch (e) {
        if (signal.aborted) return;
        body.replaceChildren(notice(e.message, 'error'));
        etag = null;
        await new Promise((r) => setTimeout(r, 3000));
      }
    }
  })();
}
