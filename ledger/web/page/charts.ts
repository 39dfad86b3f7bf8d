/**
 * Hand-made SVG line charts (no chart library: nothing to load from elsewhere, one vertex per frame
 * that tests and screen readers can count, and markup that carries its own accessible name). Each
 * chart: a time axis over the rows' device time, a value axis with rounded ticks, one polyline per
 * series (gaps where a value is missing), and alarm markers — a red tick at each frame with alarms,
 * its <title> naming them. Charts scale with the page (viewBox).
 */
import type { HistoryRow } from '../api-types.js';
import { el, fmtTime, svg } from './dom.js';

export interface Series {
  readonly key: string;
  readonly label: string;
  readonly value: (r: HistoryRow) => number;
}

export interface ChartSpec {
  readonly id: string;
  readonly title: string;
  readonly unit: string;
  readonly series: readonly Series[];
}

const W = 760;
const H = 190;
const M = { left: 56, right: 12, top: 10, bottom: 26 };

/** Round tick steps (1, 2, 5 × 10^k) giving about `n` ticks over [lo, hi]. */
export function ticks(lo: number, hi: number, n = 4): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / n;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = ([1, 2, 5, 10].find((s) => s * mag >= raw) ?? 10) * mag;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toFixed(10)));
  return out;
}

function decimals(step: number): number {
  return step >= 1 ? 0 : Math.min(4, Math.ceil(-Math.log10(step)));
}

/** Renders one chart of `rows` into a <figure>. */
export function renderChart(spec: ChartSpec, rows: readonly HistoryRow[]): HTMLElement {
  const times = rows.map((r) => Date.parse(r.deviceTime));
  const values = spec.series.map((s) => rows.map((r) => s.value(r)));
  const finite = values.flat().filter((v) => Number.isFinite(v));
  let lo = finite.length > 0 ? Math.min(...finite) : 0;
  let hi = finite.length > 0 ? Math.max(...finite) : 1;
  if (hi - lo < 1e-9) {
    lo -= 1;
    hi += 1;
  }
  const pad = (hi - lo) * 0.08;
  lo -= pad;
  hi += pad;
  const t0 = times.length > 0 ? Math.min(...times) : 0;
  const t1 = times.length > 0 ? Math.max(...times) : 1;
  const x = (t: number): number => M.left + (t1 > t0 ? ((t - t0) / (t1 - t0)) * (W - M.left - M.right) : (W - M.left - M.right) / 2);
  const y = (v: number): number => M.top + (1 - (v - lo) / (hi - lo)) * (H - M.top - M.bottom);

  const titleId = `${spec.id}-title`;
  const descId = `${spec.id}-desc`;
  const summary = spec.series
    .map((s, i) => {
      const vs = (values[i] ?? []).filter((v) => Number.isFinite(v));
      return vs.length === 0 ? `${s.label}: no data` : `${s.label} from ${Math.min(...vs)} to ${Math.max(...vs)} ${spec.unit}`;
    })
    .join('; ');
  const root = svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-labelledby': `${titleId} ${descId}`, class: 'chart', id: spec.id });
  root.append(svg('title', { id: titleId }, `${spec.title} (${spec.unit})`));
  root.append(svg('desc', { id: descId }, `${rows.length} frames${rows.length > 0 ? ` from ${fmtTime(t0)} to ${fmtTime(t1)}` : ''}. ${summary}.`));

  const grid = svg('g', { class: 'axis' });
  const yt = ticks(lo + pad, hi - pad);
  const step = yt.length > 1 ? (yt[1] ?? 1) - (yt[0] ?? 0) : 1;
  for (const v of yt) {
    grid.append(svg('line', { x1: M.left, x2: W - M.right, y1: y(v), y2: y(v), class: 'grid' }));
    grid.append(svg('text', { x: M.left - 6, y: y(v) + 4, 'text-anchor': 'end' }, v.toFixed(decimals(step))));
  }
  if (rows.length > 0) {
    for (const t of t1 > t0 ? [t0, t0 + (t1 - t0) / 2, t1] : [t0]) {
      grid.append(svg('text', { x: x(t), y: H - 8, 'text-anchor': t === t0 && t1 > t0 ? 'start' : t === t1 && t1 > t0 ? 'end' : 'middle' }, fmtTime(t).slice(0, 16)));
    }
  }
  root.append(grid);

  spec.series.forEach((s, i) => {
    const vs = values[i] ?? [];
    // One polyline per run of finite values; data-points counts the vertices drawn.
    let run: string[] = [];
    let drawn = 0;
    const g = svg('g', { class: `series series-${i}`, 'data-series': s.key });
    const flush = (): void => {
      if (run.length > 0) g.append(svg('polyline', { points: run.join(' ') }));
      run = [];
    };
    vs.forEach((v, j) => {
      if (!Number.isFinite(v)) {
        flush();
        return;
      }
      run.push(`${x(times[j] ?? 0).toFixed(1)},${y(v).toFixed(1)}`);
      drawn++;
    });
    flush();
    if (vs.length === 1) {
      const v = vs[0] ?? 0;
      g.append(svg('circle', { cx: x(times[0] ?? 0), cy: y(v), r: 3 }));
    }
    g.setAttribute('data-points', String(drawn));
    root.append(g);
  });

  const marks = svg('g', { class: 'alarm-marks' });
  rows.forEach((r, j) => {
    if (r.alarms === 0) return;
    const mx = x(times[j] ?? 0);
    marks.append(
      svg('path', { d: `M${mx},${M.top} v${H - M.top - M.bottom}`, class: 'alarm-mark', 'data-counter': r.counter }, svg('title', {}, `frame ${r.counter}: ${r.alarmNames.join(', ')}`)),
    );
  });
  root.append(marks);

  const legend = el('figcaption', {}, el('strong', {}, spec.title), ` (${spec.unit})`);
  spec.series.forEach((s, i) => {
    legend.append(' ', el('span', { class: `key key-${i}` }, s.label));
  });
  return el('figure', { class: 'chart-figure' }, root, legend);
}

export const CHARTS: readonly ChartSpec[] = [
  { id: 'chart-soh', title: 'State of health', unit: '%', series: [{ key: 'sohPct', label: 'SoH', value: (r) => r.sohPct }] },
  { id: 'chart-soc', title: 'State of charge', unit: '%', series: [{ key: 'socPct', label: 'SoC', value: (r) => r.socPct }] },
  { id: 'chart-voltage', title: 'Pack voltage', unit: 'V', series: [{ key: 'voltageV', label: 'Voltage', value: (r) => r.voltageV }] },
  {
    id: 'chart-temp',
    title: 'Temperature',
    unit: '°C',
    series: [
      { key: 'tempMinC', label: 'min', value: (r) => r.tempMinC },
      { key: 'tempMaxC', label: 'max', value: (r) => r.tempMaxC },
    ],
  },
  { id: 'chart-spread', title: 'Cell-voltage spread (max − min)', unit: 'mV', series: [{ key: 'cellSpreadMv', label: 'spread', value: (r) => r.cellSpreadMv }] },
];
