// Small SVG charts drawn by our own code: bars for the day's total volume, lines per kind.
// Each chart has a text description and a data table for screen readers and keyboards.

import { h, svg } from './dom.js';

const W = 600;
const H = 220;
const PAD = { left: 56, right: 12, top: 12, bottom: 28 };

export function dailyChart({ title, days, bars, lines, format }) {
  const all = [...(bars ? bars.values : []), ...lines.flatMap((l) => l.values)];
  const max = Math.max(1, ...all);
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const step = plotW / Math.max(1, days.length);
  const x = (i) => PAD.left + step * i + step / 2;
  const y = (v) => PAD.top + plotH - (v / max) * plotH;
  const parts = [];
  for (const frac of [0, 0.5, 1]) {
    const gy = y(max * frac);
    parts.push(svg('line', { class: 'grid', x1: PAD.left, x2: W - PAD.right, y1: gy, y2: gy }),
      svg('text', { x: PAD.left - 6, y: gy + 4, 'text-anchor': 'end' }, format(Math.round(max * frac))));
  }
  if (bars) {
    bars.values.forEach((v, i) => {
      if (v > 0) {
        parts.push(svg('rect', { class: `bar ${bars.cls}`, x: x(i) - step * 0.35, width: step * 0.7,
                                 y: y(v), height: PAD.top + plotH - y(v) },
          svg('title', {}, `${days[i]}: ${format(v)}`)));
      }
    });
  }
  for (const line of lines) {
    if (!line.values.some((v) => v > 0)) continue;
    const d = line.values.map((v, i) => `${i ? 'L' : 'M'}${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(' ');
    parts.push(svg('path', { class: `line ${line.cls}`, d }));
  }
  parts.push(svg('line', { class: 'axis', x1: PAD.left, x2: W - PAD.right, y1: PAD.top + plotH, y2: PAD.top + plotH }));
  if (days.length) {
    parts.push(svg('text', { x: x(0), y: H - 8, 'text-anchor': 'start' }, days[0]),
      svg('text', { x: x(days.length - 1), y: H - 8, 'text-anchor': 'end' }, days[days.length - 1]));
  }
  const series = [...(bars ? [bars] : []), ...lines];
  const total = (values) => values.reduce((a, b) => a + b, 0);
  const summary = series.map((s) => `${s.name} ${format(total(s.values))}`).join(', ');
  return h('figure', { class: 'card chart' },
    h('figcaption', {}, h('h3', {}, title)),
    svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img',
                 'aria-label': `${title}, ${days.length} days: ${summary}` }, parts),
    h('ul', { class: 'legend' }, series.map((s) => h('li', {},
      h('span', { class: `swatch ${s.cls}`, 'aria-hidden': 'true' }), `${s.name}: ${format(total(s.values))}`))),
    h('details', {}, h('summary', {}, 'Data table'),
      h('div', { class: 'table-wrap' }, h('table', {},
        h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Day'),
          series.map((s) => h('th', { scope: 'col' }, s.name)))),
        h('tbody', {}, days.map((d, i) => (series.some((s) => s.values[i])
          ? h('tr', {}, h('td', {}, d), series.map((s) => h('td', { class: 'num' }, format(s.values[i]))))
          : null)))))));
}
