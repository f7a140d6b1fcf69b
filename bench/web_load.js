#!/usr/bin/env node
// The dashboard's page loads at scale: a `gpool server` on loopback with simulated nodes (agents
// played through the agent API: 10 nodes of 10 GPUs, heartbeats with measures) and N jobs
// submitted through the API, then Chromium (headless, driven by playwright-core) loads each view
// afresh, RUNS times, from navigation to its data drawn (the page's performance mark
// gpool:ready:VIEW). Prints the median and the worst of each, for each job count.
//
//   node bench/web_load.js [--gpool build/gpool] [--jobs 1000,10000] [--runs 5]
'use strict';
const { spawn, execFileSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const net = require('net');
const { chromium } = require(path.join(__dirname, '..', 'node_modules', 'playwright-core'));

const args = Object.fromEntries(process.argv.slice(2).reduce((acc, a, i, all) =>
  (a.startsWith('--') ? [...acc, [a.slice(2), all[i + 1]]] : acc), []));
const gpool = path.resolve(args.gpool || 'build/gpool');
const counts = (args.jobs || '1000,10000').split(',').map(Number);
const runs = Number(args.runs || 5);
const NODES = 10, GPUS = 10;

const freePort = () => new Promise((resolve) => {
  const s = net.createServer().listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)); });
});

function client(base, token) {
  return async (method, p, body) => {
    const resp = await fetch(base + '/api/v1' + p, {
      method, headers: { Authorization: 'Bearer ' + token }, body: body ? JSON.stringify(body) : undefined,
    });
    if (resp.status >= 300) throw new Error(`${method} ${p}: ${resp.status} ${await resp.text()}`);
    return resp.json();
  };
}

async function startServer(dir) {
  const store = `sqlite:${dir}/gpool.db`;
  const user = os.userInfo().uid === 0 ? 'nobody' : os.userInfo().username;
  const token = execFileSync(gpool, ['server', 'init', '--store', store, '--admin', 'bench', '--unix-user', user]).toString().trim();
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const proc = spawn(gpool, ['server', '--listen', `127.0.0.1:${port}`, '--store', store, '--node-timeout', '3600'],
    { stdio: ['ignore', 'ignore', fs.openSync(`${dir}/server.log`, 'a')] });
  for (let i = 0; i < 100; i++) {
    try { await fetch(base + '/api/v1/status'); break; } catch (e) { await new Promise((r) => setTimeout(r, 100)); }
  }
  return { proc, base, token };
}

// The nodes join and say what they measure: every GPU somewhat busy, a few hundred MiB in use.
async function addNodes(call) {
  await call('PUT', '/projects/research', { deserved_gpus: 0 });
  for (const team of ['vision', 'speech', 'llm', 'robotics']) {
    await call('PUT', `/projects/${team}`, { deserved_gpus: NODES * GPUS / 4, limit_gpus: NODES * GPUS, weight: 1, parent: 'research' });
  }
  for (let n = 0; n < NODES; n++) {
    const gpus = Array.from({ length: GPUS }, (_, g) => ({ uuid: `GPU-bench-${n}-${g}`, model: 'H100-bench', memory_bytes: 80 * 2 ** 30 }));
    await call('POST', '/agent/register', { name: `node-${n}`, cpu_milli: 128000, mem_mib: 1048576, gpus });
    await call('POST', '/agent/heartbeat', { name: `node-${n}`, gpus: gpus.map((_, g) => ({ index: g, memory_used_bytes: 512 * 2 ** 20 * g, utilization_pct: (n * 7 + g * 13) % 100 })) });
  }
}

async function submit(call, from, to) {
  const teams = ['vision', 'speech', 'llm', 'robotics'];
  let next = from;
  const worker = async () => {
    while (next < to) {
      const i = next++;
      const req = i % 3 === 0 ? { gpus: 1 } : { gpu: 0.5 };
      await call('POST', '/jobs', { project: teams[i % 4], name: `bench-${i}`, command: ['sleep', '3600'], ...req });
    }
  };
  await Promise.all(Array.from({ length: 16 }, worker));
}

function stats(ms) {
  const s = [...ms].sort((a, b) => a - b);
  return { median: s[Math.floor(s.length / 2)], max: s[s.length - 1] };
}

async function measure(browser, base, token, views) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  await page.goto(base + '/');
  await page.fill('#token', token);
  await page.click('#login-form button[type=submit]');
  await page.waitForFunction(() => document.getElementById('view').dataset.ready === 'overview');
  const out = {};
  for (const [name, hash, mark] of views) {
    const times = [];
    for (let r = 0; r < runs; r++) {
      await page.goto('about:blank');
      await page.goto(base + '/' + hash);
      await page.waitForFunction((m) => performance.getEntriesByName(m).length > 0, `gpool:ready:${mark}`, { timeout: 30000, polling: 10 });
      times.push(await page.evaluate((m) => performance.getEntriesByName(m)[0].startTime, `gpool:ready:${mark}`));
    }
    out[name] = { ...stats(times), rows: await page.$$eval('#jobs tbody tr, .gpu, tr[data-project]', (e) => e.length) };
  }
  await context.close();
  return out;
}

(async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gpool-web-bench-'));
  const { proc, base, token } = await startServer(dir);
  const call = client(base, token);
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', headless: true, args: ['--no-sandbox'] });
  try {
    await addNodes(call);
    let have = 0;
    console.log(`gpool web_load: ${NODES} nodes x ${GPUS} GPUs, Chromium ${browser.version()}, ${runs} loads of each view, ms from navigation to data drawn`);
    for (const n of counts) {
      const t0 = Date.now();
      await submit(call, have, n);
      have = n;
      await new Promise((r) => setTimeout(r, 2000)); // the loop places what fits
      const last = (await call('GET', `/jobs?limit=1&after=${n - 1}`)).jobs[0];
      const views = [['overview', '#/overview', 'overview'], ['nodes (100 GPUs)', '#/nodes', 'nodes'],
        ['projects', '#/projects', 'projects'], ['jobs, first page', '#/jobs', 'jobs'],
        ['jobs, pending filter', '#/jobs?state=pending', 'jobs'], [`job ${last.id}`, `#/jobs/${last.id}`, 'jobs']];
      const res = await measure(browser, base, token, views);
      console.log(`\n${n} jobs (submitted in ${((Date.now() - t0) / 1000).toFixed(1)} s):`);
      console.log('  view                      median ms   worst ms   rows drawn');
      for (const [name, r] of Object.entries(res)) {
        console.log(`  ${name.padEnd(24)} ${r.median.toFixed(0).padStart(9)} ${r.max.toFixed(0).padStart(10)} ${String(r.rows).padStart(12)}`);
      }
    }
  } finally {
    await browser.close();
    proc.kill('SIGTERM');
    await new Promise((r) => proc.on('exit', r));
    fs.rmSync(dir, { recursive: true, force: true });
  }
})().catch((e) => { console.error('web_load:', e); process.exit(1); });
