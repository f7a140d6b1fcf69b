// The queue, a page at a time (GET /jobs pages by id; the page never loads every job), with
// filters and each waiting job's reason; and one job: its fields, its timeline and its logs.
// Job events update the rows in place.

import * as api from './api.js';
import { h, replace, ago, duration, stateBadge, throttle } from './dom.js';
import { timeline } from './charts.js';

const PAGE = 50;
const STATES = ['pending', 'assigned', 'running', 'swapped', 'succeeded', 'failed', 'cancelled'];
const LIVE = new Set(['pending', 'assigned', 'running', 'swapped']);

function jobRow(j) {
  return h('tr', { 'data-job': j.id, 'data-user': j.user },
    h('td', { class: 'num' }, h('a', { href: `#/jobs/${j.id}` }, String(j.id))),
    h('td', {}, j.name), h('td', {}, j.project), h('td', {}, j.user),
    h('td', {}, stateBadge(j.state)),
    h('td', { class: 'reason' }, j.state === 'pending' ? j.reason : j.node ? `${j.node} GPU ${j.gpus}` : j.reason),
    h('td', {}, ago(j.submitted_ms)));
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v) q.set(k, v);
  return q.toString();
}

export function mountList(root, ctx) {
  const params = ctx.params;
  const filter = { state: params.get('state') || '', project: params.get('project') || '' };
  const after = Number(params.get('after') || 0);
  const earlier = ctx.memory.pages || [];
  const rows = h('tbody');
  const status = h('span', { class: 'muted' });
  const prev = h('button', { type: 'button', disabled: earlier.length === 0 || !after }, '← Previous');
  const next = h('button', { type: 'button', disabled: true }, 'Next →');
  let page = { jobs: [], next: null };

  const go = (f, a) => { location.hash = `#/jobs?${query({ ...f, after: a || '' })}`; };
  const stateSel = h('select', { 'aria-label': 'state', onchange: () => { ctx.memory.pages = []; go({ ...filter, state: stateSel.value }); } },
    h('option', { value: '' }, 'every state'), STATES.map((s) => h('option', { value: s, selected: s === filter.state }, s)));
  const projectSel = h('select', { 'aria-label': 'project', onchange: () => { ctx.memory.pages = []; go({ ...filter, project: projectSel.value }); } },
    h('option', { value: '' }, 'every project'));
  prev.addEventListener('click', () => go(filter, ctx.memory.pages.pop()));
  next.addEventListener('click', () => { ctx.memory.pages = [...earlier, after]; go(filter, page.next); });

  replace(root, h('h2', {}, 'Jobs'),
    h('div', { class: 'filters' }, stateSel, projectSel, status),
    h('div', { class: 'panel' }, h('table', { id: 'jobs' },
      h('thead', {}, h('tr', {}, h('th', { class: 'num' }, 'id'), h('th', {}, 'name'), h('th', {}, 'project'),
        h('th', {}, 'user'), h('th', {}, 'state'), h('th', {}, 'why it waits / where it runs'), h('th', {}, 'submitted'))),
      rows),
    h('div', { class: 'pager' }, prev, next)));

  async function refresh() {
    const [list, projects] = await Promise.all([
      api.get(`/jobs?${query({ ...filter, limit: PAGE, after })}`),
      projectSel.options.length > 1 ? null : api.get('/projects'),
    ]);
    if (projects) {
      for (const p of projects.projects) projectSel.append(h('option', { value: p.name, selected: p.name === filter.project }, p.name));
    }
    page = list;
    replace(rows, list.jobs.map(jobRow));
    next.disabled = list.next === null;
    status.textContent = list.jobs.length ? `jobs ${list.jobs[0].id} to ${list.jobs[list.jobs.length - 1].id}` : 'no job here';
    ctx.ready();
  }

  // A job event: its row changes in place; a new job that belongs on this page (the last one,
  // with room left) is added.
  function onJob(j) {
    const old = rows.querySelector(`tr[data-job="${j.id}"]`);
    const fits = (!filter.state || j.state === filter.state) && (!filter.project || j.project === filter.project);
    if (old) {
      const row = jobRow(j);
      row.classList.add('flash');
      old.replaceWith(row);
    } else if (fits && page.next === null && rows.children.length < PAGE && j.id > after &&
               (rows.children.length === 0 || j.id > Number(rows.lastElementChild.dataset.job))) {
      const row = jobRow(j);
      row.classList.add('flash');
      rows.append(row);
      status.textContent = `jobs ${rows.firstElementChild.dataset.job} to ${j.id}`;
    }
  }
  return { refresh, onJob };
}

export function mountDetail(root, ctx) {
  const id = Number(ctx.match[1]);
  const head = h('div');
  const tl = h('div');
  const log = h('pre', { class: 'log', id: 'log', 'aria-live': 'polite' });
  const logState = h('span', { class: 'muted' });
  let stream = 'stdout', offset = 0, complete = false, job = null, stopped = false, reading = false;
  const tabs = ['stdout', 'stderr'].map((name) => h('button', {
    type: 'button', 'aria-pressed': String(name === stream), 'data-stream': name,
    onclick: () => { stream = name; offset = 0; complete = false; log.textContent = '';
      tabs.forEach((t) => t.setAttribute('aria-pressed', String(t.dataset.stream === stream))); readLog(); },
  }, name));

  replace(root, h('p', {}, h('a', { href: '#/jobs' }, '← all jobs')), head,
    h('section', { class: 'panel' }, h('h3', {}, 'Timeline'), tl),
    h('section', { class: 'panel' }, h('div', { class: 'row' }, h('h3', {}, 'Logs'), h('div', { class: 'tabs' }, tabs), logState), log));

  function drawHead() {
    const end = job.finished_ms || 0;
    replace(head, h('section', { class: 'panel', id: 'job', 'data-job': job.id, 'data-state': job.state },
      h('h2', {}, `Job ${job.id} `, job.name ? `· ${job.name} ` : '', stateBadge(job.state)),
      h('dl', { class: 'fields' },
        h('dt', {}, 'project'), h('dd', {}, job.project),
        h('dt', {}, 'user'), h('dd', {}, job.user),
        h('dt', {}, job.state === 'pending' ? 'why it waits' : 'reason'), h('dd', { class: 'reason' }, job.reason || '–'),
        h('dt', {}, 'where'), h('dd', {}, job.node ? `${job.node}, GPU ${job.gpus}` : '–'),
        h('dt', {}, 'submitted'), h('dd', {}, ago(job.submitted_ms)),
        h('dt', {}, 'ran'), h('dd', {}, job.started_ms ? duration((end || Date.now()) - job.started_ms) : '–'),
        job.exit_code !== undefined && !LIVE.has(job.state) ? [h('dt', {}, 'exit code'), h('dd', {}, String(job.exit_code))] : [],
        job.swap ? [h('dt', {}, 'swap'), h('dd', {}, JSON.stringify(job.swap))] : [],
        job.spec ? [h('dt', {}, 'command'), h('dd', { class: 'mono' }, (job.spec.command || []).join(' '))] : [])));
  }

  async function drawTimeline() {
    const t = await api.get(`/jobs/${id}/timeline`);
    const end = LIVE.has(job.state) ? Date.now() : (t.states.length ? t.states[t.states.length - 1].at_ms : Date.now());
    replace(tl, timeline(t.states, end), h('table', { id: 'timeline' }, h('tbody', {}, t.states.map((st, i) =>
      h('tr', { 'data-state': st.state }, h('td', {}, stateBadge(st.state)),
        h('td', {}, new Date(st.at_ms).toLocaleString()),
        h('td', {}, i + 1 < t.states.length ? duration(t.states[i + 1].at_ms - st.at_ms) : LIVE.has(st.state) ? 'so far' : ''),
        h('td', { class: 'reason' }, st.reason))))));
  }

  // Reads the log on from `offset`; follows it, once a second, until the server says it is whole.
  async function readLog() {
    if (reading) return;
    reading = true;
    try {
      while (!stopped && !complete) {
        const want = stream;
        const part = await api.getLog(id, stream, offset);
        if (stopped) break;
        if (want !== stream) continue; // the other stream was picked meanwhile: from its start
        log.textContent += part.text;
        offset = part.next;
        complete = part.complete && offset >= part.size;
        logState.textContent = complete ? `${offset} bytes, complete` : `${offset} bytes, following`;
        log.dataset.complete = String(complete);
        if (offset < part.size) continue;
        if (!complete) await new Promise((r) => setTimeout(r, 1000));
      }
    } finally {
      reading = false;
    }
  }

  async function refresh() {
    job = await api.get(`/jobs/${id}`);
    drawHead();
    await drawTimeline();
    ctx.ready();
    readLog().catch(ctx.failed);
  }
  const redraw = throttle(() => drawTimeline().catch(ctx.failed), 500);
  function onJob(j) {
    if (j.id !== id) return;
    job = { ...j, spec: job ? job.spec : null };
    drawHead();
    redraw();
    if (!LIVE.has(j.state) && !reading) readLog().catch(ctx.failed);
  }
  return { refresh, onJob, unmount: () => { stopped = true; } };
}
