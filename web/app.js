// The dashboard: log in (a token exchanged for a session cookie), then one view at a time,
// chosen by the address's #fragment, kept current by the server's event stream.

import * as api from './api.js';
import { replace, h } from './dom.js';
import * as overview from './overview.js';
import * as nodes from './nodes.js';
import * as projects from './projects.js';
import * as jobs from './jobs.js';

const routes = [
  [/^#\/overview$/, 'overview', overview.mount],
  [/^#\/nodes$/, 'nodes', nodes.mount],
  [/^#\/projects$/, 'projects', projects.mount],
  [/^#\/jobs(?:\?.*)?$/, 'jobs', jobs.mountList],
  [/^#\/jobs\/(\d+)$/, 'jobs', jobs.mountDetail],
];

const $ = (id) => document.getElementById(id);
const main = $('view');
const memory = {}; // what a view keeps across visits (the jobs list's earlier pages)
let current = null;
let unsubscribe = null;

function showLogin(message) {
  if (unsubscribe) unsubscribe();
  unsubscribe = null;
  if (current && current.unmount) current.unmount();
  current = null;
  $('bar').hidden = true;
  replace(main);
  $('login').hidden = false;
  $('login-error').textContent = message || '';
  $('token').focus();
}

// A view's failure: a lost session sends the user to log in again, anything else is shown.
function failed(err) {
  if (err instanceof api.ApiError && err.status === 401) {
    showLogin('Your session has ended: log in again.');
    return;
  }
  replace(main, h('div', { class: 'panel error', role: 'alert' }, `Could not load this view: ${err.message}`));
}

function route() {
  const hash = location.hash || '#/overview';
  const found = routes.map(([re, name, mount]) => ({ m: hash.match(re), name, mount })).find((r) => r.m);
  if (!found) {
    location.hash = '#/overview';
    return;
  }
  if (current && current.unmount) current.unmount();
  for (const a of document.querySelectorAll('[data-nav]')) a.classList.toggle('current', a.dataset.nav === found.name);
  delete main.dataset.ready;
  main.dataset.view = found.name;
  const q = hash.indexOf('?');
  const view = found.mount(main, {
    match: found.m,
    params: new URLSearchParams(q >= 0 ? hash.slice(q + 1) : ''),
    memory: (memory[found.name] ||= {}),
    ready: () => {
      if (current !== view || main.dataset.ready) return;
      main.dataset.ready = found.name;
      performance.mark(`gpool:ready:${found.name}`); // what bench/web_load.js measures
    },
    failed,
  });
  current = view;
  view.refresh().catch(failed);
}

function setLive(state) {
  $('live').dataset.state = state;
  $('live').textContent = state;
}

async function start() {
  let status;
  try {
    status = await api.get('/status');
  } catch (err) {
    showLogin(err.status === 401 ? '' : `The server did not answer: ${err.message}`);
    return;
  }
  $('login').hidden = true;
  $('bar').hidden = false;
  $('who').textContent = status.user;
  unsubscribe = api.subscribe({
    job: (j) => current && current.onJob && current.onJob(j),
    node: (n) => current && current.onNode && current.onNode(n),
    resync: () => current && current.refresh().catch(failed),
    status: setLive,
  });
  route();
}

$('login-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const input = $('token');
  try {
    await api.login(input.value);
    input.value = '';
    await start();
  } catch (err) {
    $('login-error').textContent = err.status === 401 ? 'That token is not valid.' : err.message;
  }
});
$('logout').addEventListener('click', async () => {
  await api.logout();
  showLogin('Logged out.');
});
window.addEventListener('hashchange', () => { if (unsubscribe) route(); });
start();
