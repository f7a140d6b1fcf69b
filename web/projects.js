// Quotas by department: each project's deserved quota, fair share, allocation and use
// (GET /shares), as a tree under its parents, with a bar each.

import * as api from './api.js';
import { h, replace, gpus, throttle } from './dom.js';
import { quotaBar } from './charts.js';

// Projects in tree order, each with its depth; a department's figures add up its children's.
function tree(projects) {
  const byParent = new Map();
  for (const p of projects) {
    if (!byParent.has(p.parent)) byParent.set(p.parent, []);
    byParent.get(p.parent).push(p);
  }
  const names = new Set(projects.map((p) => p.name));
  const out = [];
  const walk = (p, depth) => {
    const row = { ...p, depth, children: byParent.get(p.name) || [] };
    out.push(row);
    for (const c of row.children) {
      const sub = walk(c, depth + 1);
      row.allocated_gpus += sub.allocated_gpus;
      row.used_gpus += sub.used_gpus;
    }
    return row;
  };
  for (const p of projects) if (!p.parent || !names.has(p.parent)) walk(p, 0);
  return out;
}

export function mount(root, ctx) {
  const body = h('div');
  replace(root, h('h2', {}, 'Projects'),
    h('div', { class: 'legend' }, h('span', {}, h('i', { class: 'k-allocated' }), 'allocated'),
      h('span', {}, h('i', { class: 'k-used' }), 'used'),
      h('span', {}, '│ deserved'), h('span', {}, '┆ fair share (orange)'), h('span', {}, '┊ limit (red)')),
    body);

  async function refresh() {
    const { projects } = await api.get('/shares');
    const rows = tree(projects);
    const scale = Math.max(1, ...rows.map((p) => Math.max(p.deserved_gpus, p.fair_share_gpus,
      p.allocated_gpus, p.limit_gpus ?? 0)));
    replace(body, h('div', { class: 'panel' }, rows.length === 0 ? h('p', { class: 'muted' }, 'No project yet.')
      : h('table', {},
        h('thead', {}, h('tr', {}, h('th', {}, 'project'), h('th', { class: 'num' }, 'deserved'),
          h('th', { class: 'num' }, 'fair share'), h('th', { class: 'num' }, 'allocated'),
          h('th', { class: 'num' }, 'used'), h('th', { class: 'num' }, 'limit'), h('th', {}, ''))),
        h('tbody', {}, rows.map((p) => h('tr', { 'data-project': p.name },
          h('td', { class: `indent-${Math.min(p.depth, 3)}` }, p.name,
            p.children.length ? h('span', { class: 'muted' }, ' (department)') : ''),
          h('td', { class: 'num' }, gpus(p.deserved_gpus)),
          h('td', { class: 'num' }, gpus(p.fair_share_gpus)),
          h('td', { class: 'num', 'data-figure': 'allocated' }, gpus(p.allocated_gpus)),
          h('td', { class: 'num' }, gpus(p.used_gpus)),
          h('td', { class: 'num' }, p.limit_gpus === null ? 'none' : gpus(p.limit_gpus)),
          h('td', {}, quotaBar({ deserved: p.deserved_gpus, fair: p.fair_share_gpus,
            allocated: p.allocated_gpus, used: p.used_gpus, limit: p.limit_gpus }, scale))))))));
    ctx.ready();
  }
  const soon = throttle(() => refresh().catch(ctx.failed), 1000);
  const timer = setInterval(soon, 5000);
  return { refresh, onJob: soon, unmount: () => clearInterval(timer) };
}
