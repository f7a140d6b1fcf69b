// Small SVG charts: lines over time, a GPU's shares, quota bars and a job's timeline. Sizes are
// in the SVG's own units; the SVG scales to its box.

import { s, clock, gpus, duration } from './dom.js';

// Series [{key, label, points: [[t_ms, value]]}] on a shared time axis from 0 to yMax.
export function lineChart({ series, yMax, from, to, width = 900, height = 220, area }) {
  const pad = { l: 40, r: 10, t: 10, b: 24 };
  const w = width - pad.l - pad.r, hgt = height - pad.t - pad.b;
  const top = yMax > 0 ? yMax : 1;
  const span = Math.max(1, to - from);
  const x = (t) => pad.l + ((t - from) / span) * w;
  const y = (v) => pad.t + hgt - (v / top) * hgt;
  const svg = s('svg', { class: 'chart', viewBox: `0 0 ${width} ${height}`, role: 'img' });
  for (let i = 0; i <= 4; i++) {
    const v = (top * i) / 4;
    svg.append(s('line', { class: 'axis', x1: pad.l, x2: width - pad.r, y1: y(v), y2: y(v) }),
      s('text', { x: pad.l - 6, y: y(v) + 4, 'text-anchor': 'end' }, gpus(Math.round(v * 10) / 10)));
  }
  for (let i = 0; i <= 4; i++) {
    const t = from + (span * i) / 4;
    svg.append(s('text', { x: x(t), y: height - 6, 'text-anchor': i === 0 ? 'start' : i === 4 ? 'end' : 'middle' }, clock(t)));
  }
  for (const ser of series) {
    if (ser.points.length === 0) continue;
    const pts = ser.points.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`);
    if (ser.points.length === 1) pts.push(`${(x(ser.points[0][0]) + 2).toFixed(1)},${y(ser.points[0][1]).toFixed(1)}`);
    if (area === ser.key) {
      const first = ser.points[0][0], last = ser.points[ser.points.length - 1][0];
      svg.append(s('polygon', { class: `area-${ser.key}`, points: `${x(first)},${y(0)} ${pts.join(' ')} ${x(last)},${y(0)}` }));
    }
    svg.append(s('polyline', { class: `series-${ser.key}`, points: pts.join(' ') },
      s('title', {}, ser.label)));
  }
  return svg;
}

// A GPU's compute: a segment per job share ({job, gpu, swapped, borrowed}), the rest free.
export function fractionBar(shares, { width = 200, height = 18 } = {}) {
  const svg = s('svg', { class: 'bar fraction', viewBox: `0 0 ${width} ${height}`, width: '100%', height, preserveAspectRatio: 'none' });
  svg.append(s('rect', { class: 'free', x: 0, y: 0, width, height, rx: 3 }));
  let at = 0;
  for (const sh of shares) {
    const w = Math.min(width - at, sh.gpu * width);
    const kind = sh.swapped ? 'swapped' : sh.borrowed ? 'borrowed' : sh.job === null ? 'other' : 'mine';
    const label = sh.job === null ? `another user's job: ${gpus(sh.gpu)} GPU`
      : `job ${sh.job}: ${gpus(sh.gpu)} GPU${sh.swapped ? ', swapped out' : ''}`;
    const g = s('g', { class: 'share-group', 'data-job': sh.job ?? '', 'data-fraction': sh.gpu },
      s('rect', { class: `share ${kind}`, x: at, y: 0, width: w, height, rx: 3 }, s('title', {}, label)));
    if (w > 30 && sh.job !== null) g.append(s('text', { x: at + 4, y: height - 5 }, `#${sh.job}`));
    svg.append(g);
    at += w;
  }
  return svg;
}

// A measure out of a total: one bar, a second (darker) one inside it where given.
export function meter(value, total, { cls = 'busy', inner = null, width = 200, height = 8, label = '' } = {}) {
  const svg = s('svg', { class: 'bar meter', viewBox: `0 0 ${width} ${height}`, width: '100%', height, preserveAspectRatio: 'none' });
  const f = (v) => (total > 0 && v ? Math.min(1, v / total) * width : 0);
  svg.append(s('rect', { class: 'free', x: 0, y: 0, width, height, rx: 2 }, s('title', {}, label)));
  if (value !== null && value !== undefined) svg.append(s('rect', { class: cls, x: 0, y: 0, width: f(value), height, rx: 2 }));
  if (inner !== null && inner !== undefined) svg.append(s('rect', { class: `${cls}-used`, x: 0, y: 2, width: f(inner), height: height - 4 }));
  return svg;
}

// A project's quota: allocated and used bars against the scale, deserved and fair share marked.
export function quotaBar({ deserved, fair, allocated, used, limit }, scale, { width = 320, height = 22 } = {}) {
  const x = (v) => (scale > 0 ? Math.min(1, v / scale) * width : 0);
  const svg = s('svg', { class: 'bar quota', viewBox: `0 0 ${width} ${height}`, width: '100%', height, preserveAspectRatio: 'none' });
  svg.append(s('rect', { class: 'free', x: 0, y: 0, width, height, rx: 3 }),
    s('rect', { class: 'share', x: 0, y: 3, width: x(allocated), height: height - 6, rx: 2 },
      s('title', {}, `allocated ${gpus(allocated)} GPUs`)),
    s('rect', { class: 'busy', x: 0, y: 8, width: x(used), height: height - 16 },
      s('title', {}, `used ${gpus(used)} GPUs`)));
  const mark = (v, color, title, dash) => svg.append(s('line', {
    x1: x(v), x2: x(v), y1: 0, y2: height, stroke: color, 'stroke-width': 2, 'stroke-dasharray': dash,
  }, s('title', {}, title)));
  mark(deserved, '#111827', `deserved ${gpus(deserved)} GPUs`);
  mark(fair, '#d97706', `fair share ${gpus(fair)} GPUs`, '3 2');
  if (limit !== null && limit !== undefined) mark(limit, '#dc2626', `limit ${gpus(limit)} GPUs`, '1 2');
  return svg;
}

// A job's states over time: [{state, at_ms}], the last lasting until `end`.
export function timeline(states, end, { width = 900, height = 46 } = {}) {
  const svg = s('svg', { class: 'chart tl', viewBox: `0 0 ${width} ${height}` });
  if (states.length === 0) return svg;
  const from = states[0].at_ms, span = Math.max(1, end - from);
  const x = (t) => ((t - from) / span) * width;
  states.forEach((st, i) => {
    const until = i + 1 < states.length ? states[i + 1].at_ms : end;
    const w = Math.max(2, x(until) - x(st.at_ms));
    svg.append(s('rect', { class: `seg ${st.state}`, x: x(st.at_ms), y: 0, width: w, height: 24 },
      s('title', {}, `${st.state} for ${duration(until - st.at_ms)}`)));
    if (w > 60) svg.append(s('text', { x: x(st.at_ms) + 4, y: 40 }, st.state));
  });
  return svg;
}

