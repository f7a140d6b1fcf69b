// The pool at a glance: each node pool's GPUs allocated, used, borrowed, swapped and idle over
// the last hours (GET /utilization), with the figures of now on top.

import * as api from './api.js';
import { h, replace, gpus } from './dom.js';
import { lineChart } from './charts.js';

const KEYS = [
  ['allocated', 'allocated'], ['used', 'used (measured)'], ['idle', 'idle'],
  ['borrowed', 'borrowed'], ['swapped', 'swapped out'],
];

function tile(value, label, key) {
  return h('div', { class: 'tile', 'data-figure': key },
    h('div', { class: 'value' }, value), h('div', { class: 'label' }, label));
}

function poolPanel(pool, columns, hours) {
  const col = (name) => columns.indexOf(name);
  const rows = pool.samples;
  const last = rows[rows.length - 1];
  const now = Date.now();
  const series = KEYS.map(([key, label]) => ({
    key, label,
    points: rows.map((r) => [r[col('t_ms')], key === 'idle' ? r[col('gpus')] - r[col('allocated')] : r[col(key)]]),
  }));
  const yMax = Math.max(1, ...rows.map((r) => r[col('gpus')]));
  return h('section', { class: 'panel', 'data-pool': pool.name },
    h('h3', {}, `Node pool ${pool.name}`),
    h('div', { class: 'tiles' },
      tile(gpus(last[col('gpus')]), 'GPUs', 'gpus'),
      tile(gpus(last[col('allocated')]), 'allocated', 'allocated'),
      tile(gpus(last[col('used')]), 'used (measured)', 'used'),
      tile(gpus(last[col('borrowed')]), 'borrowed', 'borrowed'),
      tile(gpus(last[col('gpus')] - last[col('allocated')]), 'idle', 'idle')),
    lineChart({ series, yMax, from: now - hours * 3600 * 1000, to: now, area: 'allocated' }),
    h('div', { class: 'legend' }, KEYS.map(([key, label]) => h('span', {}, h('i', { class: `k-${key}` }), label))));
}

export function mount(root, ctx) {
  let hours = 1;
  const body = h('div');
  const pick = h('select', { 'aria-label': 'hours shown', onchange: () => { hours = Number(pick.value); refresh(); } },
    [1, 3, 6].map((n) => h('option', { value: n }, `last ${n} hour${n > 1 ? 's' : ''}`)));
  replace(root, h('div', { class: 'row' }, h('h2', {}, 'Overview'), pick), body);

  async function refresh() {
    const u = await api.get(`/utilization?hours=${hours}`);
    const pools = u.pools.filter((p) => p.samples.length > 0);
    if (pools.length === 0) {
      replace(body, h('p', { class: 'panel muted' },
        `No samples yet: the server samples the pool every ${u.interval_s} s once a node has joined.`));
    } else {
      replace(body, pools.map((p) => poolPanel(p, u.columns, hours)));
    }
    ctx.ready();
  }
  const timer = setInterval(() => refresh().catch(ctx.failed), 10000);
  return { refresh, unmount: () => clearInterval(timer) };
}
