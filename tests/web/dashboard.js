// The dashboard in a real browser: Playwright drives Debian's Chromium (headless) against a
// running `gpool dev`. Prints one line per check, "ok DESC" or "not ok DESC" (tests/integration/
// web.sh numbers them as TAP), and keeps a screenshot of each view in SCREENS.
//
// Environment: GPOOL_SERVER, GPOOL_TOKEN (an admin's), DORA_TOKEN (a plain user's, member of
// project "default"), SCREENS (a directory), CHROMIUM (default /usr/bin/chromium).
'use strict';
const path = require('path');
const { chromium } = require(path.join(__dirname, '..', '..', 'node_modules', 'playwright-core'));

const base = process.env.GPOOL_SERVER;
const admin = process.env.GPOOL_TOKEN;
const dora = process.env.DORA_TOKEN;
const screens = process.env.SCREENS;
let failures = 0;

function check(desc, cond, detail) {
  if (!cond) failures++;
  console.log(`${cond ? 'ok' : 'not ok'} ${desc}${!cond && detail ? ` (${detail})` : ''}`);
}

async function api(token, method, p, body) {
  const resp = await fetch(base + '/api/v1' + p, {
    method,
    headers: { Authorization: 'Bearer ' + token, 'Content-Type': 'application/json' },
    body: body ? JSON.stringify(body) : undefined,
  });
  return resp.json();
}

// Waits for cond, the answer of a function run in the page; false after `ms`.
async function until(page, fn, arg, ms = 15000) {
  try {
    await page.waitForFunction(fn, arg, { timeout: ms, polling: 50 });
    return true;
  } catch (e) {
    return false;
  }
}

async function view(page, hash, name) {
  await page.evaluate((h) => { location.hash = h; }, hash);
  return until(page, (n) => document.getElementById('view').dataset.ready === n, name);
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(screens, name + '.png'), fullPage: true });
}

async function login(page, token) {
  await page.goto(base + '/');
  await page.waitForSelector('#login-form', { state: 'visible', timeout: 10000 });
  await page.fill('#token', token);
  await page.click('#login-form button[type=submit]');
}

async function adminSession(browser) {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const problems = [];
  // The 401s of the first look for a session and of the bad token are expected.
  page.on('console', (m) => {
    if (m.type() === 'error' && !m.text().includes('status of 401')) problems.push(m.text());
  });
  page.on('pageerror', (e) => problems.push(String(e)));
  let loads = 0;
  page.on('load', () => loads++);

  await page.goto(base + '/');
  check('the page asks for a token first', await page.isVisible('#login-form'));
  await shot(page, 'login');
  await page.fill('#token', 'gp_not-a-token');
  await page.click('#login-form button[type=submit]');
  check('a bad token is refused on the page', await until(page, () =>
    document.getElementById('login-error').textContent.includes('not valid')));
  await page.fill('#token', admin);
  await page.click('#login-form button[type=submit]');
  check('logging in with a token shows the overview', await until(page, () =>
    document.getElementById('view').dataset.ready === 'overview'));
  const cookies = await page.context().cookies();
  check('the token became an HttpOnly session cookie', cookies.some((c) => c.name === 'gpool_session' && c.httpOnly));
  check('the event stream is live', await until(page, () => document.getElementById('live').dataset.state === 'live'));
  check('the overview charts the dev node pool', await until(page, () =>
    document.querySelector('[data-pool] svg.chart polyline') !== null));
  await shot(page, 'overview');

  // A 0.5-GPU job submitted through the API shows on its GPU's fraction bar.
  check('the nodes view shows the node', await view(page, '#/nodes', 'nodes'));
  const a = await api(admin, 'POST', '/jobs', { project: 'default', name: 'web-half', gpu: 0.5,
    command: ['sh', '-c', 'sleep 6'] });
  check('a fraction bar shows the 0.5-GPU job, without a reload', await until(page, (id) => {
    const g = document.querySelector(`.share-group[data-job="${id}"]`);
    return g !== null && g.dataset.fraction === '0.5';
  }, a.id));
  await shot(page, 'nodes');

  // A job appears in the queue and changes state live.
  check('the jobs view lists the jobs', await view(page, '#/jobs', 'jobs'));
  await page.evaluate(() => {
    window.seen = [];
    new MutationObserver(() => {
      for (const tr of document.querySelectorAll('#jobs tbody tr')) {
        const st = tr.querySelector('[data-state]').dataset.state;
        const key = `${tr.dataset.job}:${st}`;
        if (window.seen[window.seen.length - 1] !== key && !window.seen.includes(key)) window.seen.push(key);
      }
    }).observe(document.getElementById('jobs'), { childList: true, subtree: true });
  });
  // The nodes are cordoned while the job is submitted, so that its row is seen pending however
  // fast the scheduler places it; uncordoned once the row shows it.
  const nodes = (await api(admin, 'GET', '/nodes')).nodes.map((n) => n.name);
  for (const n of nodes) await api(admin, 'POST', `/nodes/${n}/cordon`);
  const b = await api(admin, 'POST', '/jobs', { project: 'default', name: 'web-watch', gpu: 0.25,
    command: ['sh', '-c', 'echo hello from the dashboard test; sleep 2; echo bye >&2'] });
  check('a submitted job appears in the list without a reload', await until(page, (id) =>
    document.querySelector(`#jobs tr[data-job="${id}"] [data-state="pending"]`) !== null, b.id));
  for (const n of nodes) await api(admin, 'POST', `/nodes/${n}/uncordon`);
  check('and goes on to succeeded', await until(page, (id) =>
    document.querySelector(`#jobs tr[data-job="${id}"] [data-state="succeeded"]`) !== null, b.id, 30000));
  const seen = (await page.evaluate(() => window.seen)).filter((k) => k.startsWith(`${b.id}:`)).map((k) => k.split(':')[1]);
  const order = ['pending', 'running', 'succeeded'].map((s) => seen.indexOf(s));
  check('its row showed pending, then running, then succeeded', order.every((i) => i >= 0) &&
    order[0] < order[1] && order[1] < order[2], seen.join(' '));
  await shot(page, 'jobs');

  // The job's page: its timeline and its logs.
  await page.click(`#jobs tr[data-job="${b.id}"] a`);
  check("a job's page opens from the list", await until(page, () => document.getElementById('view').dataset.ready === 'jobs' && document.getElementById('job') !== null));
  check('its logs show its output', await until(page, () =>
    document.getElementById('log').textContent.includes('hello from the dashboard test') &&
    document.getElementById('log').dataset.complete === 'true'));
  const states = await page.$$eval('#timeline tr', (rows) => rows.map((r) => r.dataset.state));
  check('its timeline lists pending, assigned, running, succeeded',
    states.join(' ') === 'pending assigned running succeeded', states.join(' '));
  await page.click('button[data-stream="stderr"]');
  check('its stderr is a click away', await until(page, () =>
    document.getElementById('log').textContent.trim() === 'bye'));
  await shot(page, 'job');

  check('the projects view shows the quota bars', await view(page, '#/projects', 'projects') &&
    await page.$('tr[data-project="default"] svg.quota') !== null);
  await shot(page, 'projects');

  check('the page was never reloaded', loads === 1, `${loads} loads`);
  check('no script error or Content-Security-Policy violation', problems.length === 0, problems.join(' | '));
  await page.click('#logout');
  check('logging out asks for a token again', await until(page, () =>
    !document.getElementById('login').hidden));
  await page.close();
}

// A plain user sees their own jobs only, and others' jobs unnamed on the GPUs.
async function userSession(browser) {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const adminJob = (await api(admin, 'POST', '/jobs', { project: 'default', name: 'admin-long',
    gpu: 0.5, command: ['sh', '-c', 'sleep 20'] })).id;
  await login(page, dora);
  await until(page, () => document.getElementById('view').dataset.ready === 'overview');
  const mine = await api(dora, 'POST', '/jobs', { project: 'default', name: 'dora-1', gpu: 0.25,
    command: ['sh', '-c', 'sleep 5'] });
  check("a user's jobs view lists their job", await view(page, '#/jobs', 'jobs') &&
    await until(page, (id) => document.querySelector(`#jobs tr[data-job="${id}"]`) !== null, mine.id));
  const users = await page.$$eval('#jobs tbody tr', (rows) => rows.map((r) => r.dataset.user));
  check("  ... and no one else's", users.length > 0 && users.every((u) => u === 'dora'), users.join(' '));
  await view(page, '#/nodes', 'nodes');
  const named = await page.$(`.share-group[data-job="${adminJob}"]`);
  check("another user's job on a GPU is shown unnamed", named === null &&
    await until(page, () => document.querySelector('.share.other') !== null));
  await shot(page, 'nodes-user');
  await page.close();
}

(async () => {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  try {
    await adminSession(browser);
    await userSession(browser);
  } finally {
    await browser.close();
  }
  process.exit(failures ? 1 : 0);
})().catch((e) => {
  console.log(`not ok the browser test ran to its end (${String(e).split('\n')[0]})`);
  process.exit(1);
});
