// Every GPU of every node: the jobs sharing it (each job's fraction), its memory allocated and
// used, its busy percentage, and whether a job on it is swapped out or borrowing.

import * as api from './api.js';
import { h, replace, gpus, bytes, ago, throttle } from './dom.js';
import { fractionBar, meter } from './charts.js';

function gpuTile(node, g) {
  const shares = g.shares || [];
  const swapped = shares.some((sh) => sh.swapped);
  const borrowed = shares.some((sh) => sh.borrowed);
  const busy = g.utilization_pct;
  return h('div', { class: 'gpu', 'data-gpu': `${node.name}/${g.index}` },
    h('div', { class: 'title' }, h('span', {}, `GPU ${g.index}`), h('span', { class: 'muted' }, g.model || '')),
    fractionBar(shares),
    h('div', { class: 'meta' }, h('span', { 'data-figure': 'allocated' }, `${gpus(g.allocated)} of 1 allocated`),
      h('span', {}, [swapped && h('span', { class: 'badge state-swapped' }, 'swapped'),
        borrowed && h('span', { class: 'badge' }, 'borrowed')])),
    meter(g.memory_allocated_bytes, g.memory_bytes, {
      cls: 'mem', inner: g.memory_used_bytes,
      label: `memory: ${bytes(g.memory_allocated_bytes)} allocated, ${bytes(g.memory_used_bytes)} used`,
    }),
    h('div', { class: 'meta' }, h('span', {}, `memory ${bytes(g.memory_allocated_bytes)} / ${bytes(g.memory_bytes)}`),
      h('span', {}, g.memory_used_bytes !== undefined ? `used ${bytes(g.memory_used_bytes)}` : '')),
    meter(busy ?? null, 100, { label: `busy ${busy ?? '–'}%` }),
    h('div', { class: 'meta' }, h('span', { 'data-figure': 'busy' }, `busy ${busy === undefined ? '–' : busy + '%'}`),
      h('span', {}, g.other_jobs ? `+${g.other_jobs} other` : '')));
}

function nodeCard(n) {
  return h('section', { class: 'panel node', 'data-node': n.name },
    h('header', {}, h('h3', {}, n.name),
      h('span', { class: `badge ${n.state}` }, n.state),
      !n.alive && h('span', { class: 'badge silent' }, 'silent'),
      h('span', { class: 'muted' }, `${gpus(n.allocated_gpus)} of ${n.gpus.length} GPUs allocated · heartbeat ${ago(Date.now() - n.heartbeat_age_s * 1000)}`)),
    h('div', { class: 'gpus' }, n.gpus.map((g) => gpuTile(n, g))));
}

export function mount(root, ctx) {
  const body = h('div');
  replace(root, h('h2', {}, 'Nodes'),
    h('div', { class: 'legend' }, h('span', {}, h('i', { class: 'k-allocated' }), 'your job'),
      h('span', {}, h('i', { class: 'k-other' }), "another user's job"),
      h('span', {}, h('i', { class: 'k-swapped' }), 'swapped out'),
      h('span', {}, h('i', { class: 'k-borrowed' }), 'borrowed'),
      h('span', {}, h('i', { class: 'k-used' }), 'busy')),
    body);

  async function refresh() {
    const { nodes } = await api.get('/nodes');
    replace(body, nodes.length ? nodes.map(nodeCard)
      : h('p', { class: 'panel muted' }, 'No node has joined the pool yet: start a gpool agent.'));
    ctx.ready();
  }
  const soon = throttle(() => refresh().catch(ctx.failed), 500);
  const timer = setInterval(soon, 3000);
  return { refresh, onJob: soon, onNode: soon, unmount: () => clearInterval(timer) };
}
