// Net P&L history (range picker, live tail) and the 30-day daily trend,
// both drawn as SVG from /api/pnl/history. Figures in labels and tables are
// formatted from the decimal strings; floats only place the shapes.

import {
  decSub, decSum, fmtMoney, hourMinute, localDay, parseDec, signOf, utcDay, utcWeekday,
} from './format.js';
import { getJson } from './transport.js';

// Resolution per range: at most a few hundred buckets (the server caps a request at 5,000).
export const RANGES = {
  '1h': { span: 3600e3, resolution: '1m', bucket: 60e3, label: 'last hour' },
  '24h': { span: 86400e3, resolution: '5m', bucket: 300e3, label: 'last 24 hours' },
  '7d': { span: 7 * 86400e3, resolution: '1h', bucket: 3600e3, label: 'last 7 days' },
  '30d': { span: 30 * 86400e3, resolution: '1h', bucket: 3600e3, label: 'last 30 days' },
};
const DAY = 86400e3;
const TREND_DAYS = 30;
const SERIES = ['revenue', 'costs', 'trading', 'net'];
const SVG_NS = 'http://www.w3.org/2000/svg';
const TONES = { 1: 'pos', '-1': 'neg', 0: 'zero' };

const byId = (id) => document.getElementById(id);

function svgEl(tag, attrs, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

const bucketsOf = (body) => (Array.isArray(body && body.buckets) ? body.buckets : [])
  .map((b) => ({ ...b, t: Number.isFinite(b.start_ms) ? b.start_ms : Date.parse(b.start) }))
  .filter((b) => Number.isFinite(b.t));

// ---------- net P&L history ----------

const hist = { range: '1h', points: [], loadedAt: 0, request: 0 };

export const currentRange = () => hist.range;

// Fold a live value into the chart's newest bucket (same UTC-aligned buckets as the server).
export function pushLive(ts, net) {
  if (!parseDec(net)) return;
  const { bucket, span } = RANGES[hist.range];
  const t = ts - (ts % bucket);
  const pts = hist.points;
  const last = pts[pts.length - 1];
  if (last && last.t === t) last.close = net;
  else if (!last || t > last.t) pts.push({ t, open: net, close: net });
  const cutoff = t - span;
  while (pts.length && pts[0].t < cutoff) pts.shift();
}

export async function loadHistory(range = hist.range) {
  const spec = RANGES[range];
  const request = ++hist.request;
  hist.loadedAt = Date.now();
  const to = Date.now();
  const url = `/api/pnl/history?resolution=${spec.resolution}`
    + `&from=${encodeURIComponent(new Date(to - spec.span).toISOString())}&to=${encodeURIComponent(new Date(to).toISOString())}`;
  let body;
  try { body = await getJson(url, null, 15000); } catch (e) { return false; }
  if (request !== hist.request) return false; // a newer range was picked meanwhile
  const loaded = bucketsOf(body)
    .map((b) => ({ t: b.t, open: b.net && b.net.open, close: b.net && b.net.close }))
    .filter((p) => parseDec(p.close));
  // Live points for the newest bucket(s) are fresher than what was stored.
  const lastT = loaded.length ? loaded[loaded.length - 1].t : -Infinity;
  const newer = hist.points.filter((p) => p.t >= lastT);
  if (newer.length && newer[0].t === lastT) newer[0].open = loaded.pop().open;
  hist.points = loaded.concat(newer);
  return true;
}

export function setRange(range) {
  if (!RANGES[range] || range === hist.range) return false;
  hist.range = range;
  hist.points = [];
  return true;
}

export const historyIsOld = () => Date.now() - hist.loadedAt > 30000;

function axisLabels(x0, x1, span) {
  const fmt = span > DAY ? localDay : hourMinute;
  return [fmt(x0), fmt((x0 + x1) / 2), 'now'];
}

export function drawHistory() {
  const svg = byId('spark');
  const { span, bucket, label } = RANGES[hist.range];
  const w = Math.max(100, Math.round(svg.clientWidth || 600));
  const h = Math.max(60, Math.round(svg.clientHeight || 160));
  svg.setAttribute('viewBox', `0 0 ${w} ${h}`);
  svg.replaceChildren();
  byId('spark-label').textContent = `Net P&L · ${label}`;
  const pts = hist.points.map((p) => ({ t: p.t + bucket / 2, v: Number(p.close), text: p.close }));
  // The first bucket's open, at the bucket's start, anchors the line (and gives one bucket a segment).
  const head = hist.points[0];
  if (head && parseDec(head.open)) pts.unshift({ t: head.t, v: Number(head.open), text: head.open });
  const now = Date.now();
  const x1 = Math.max(now - (now % bucket) + bucket, pts.length ? pts[pts.length - 1].t + bucket / 2 : 0);
  const x0 = x1 - span;
  const axis = axisLabels(x0, x1, span);
  byId('spark-axis').replaceChildren(...axis.map((t) => Object.assign(document.createElement('span'), { textContent: t })));
  if (pts.length < 2) {
    svg.append(svgEl('text', { x: w / 2, y: h / 2, class: 'spark-empty', 'text-anchor': 'middle' }, 'Not enough history yet'));
    byId('spark-range').textContent = '';
    svg.setAttribute('aria-label', `Net P&L, ${label}: not enough history yet`);
    return;
  }
  let lo = pts[0];
  let hi = pts[0];
  for (const p of pts) { if (p.v < lo.v) lo = p; if (p.v > hi.v) hi = p; }
  const spread = hi.v - lo.v || Math.max(1, Math.abs(hi.v) * 0.01);
  const vMin = lo.v - spread * 0.12;
  const vMax = (hi.v === lo.v ? lo.v + spread : hi.v) + spread * 0.12;
  const pad = 6;
  const X = (t) => ((Math.max(t, x0) - x0) / span) * (w - 5); // room for the end dot
  const Y = (v) => pad + (1 - (v - vMin) / (vMax - vMin)) * (h - 2 * pad);
  // A gap of more than three buckets (the daemon was down) breaks the line.
  const segments = [];
  pts.forEach((p, i) => {
    if (!i || p.t - pts[i - 1].t > 3 * bucket) segments.push([]);
    segments[segments.length - 1].push([X(p.t), Y(p.v)]);
  });
  const tone = pts[pts.length - 1].v < 0 ? 'neg' : 'pos';
  svg.setAttribute('class', `spark ${tone}`);
  if (vMin < 0 && vMax > 0) svg.append(svgEl('line', { x1: 0, x2: w, y1: Y(0).toFixed(1), y2: Y(0).toFixed(1), class: 'spark-zero' }));
  const path = (seg) => seg.map(([x, y], i) => `${i ? 'L' : 'M'}${x.toFixed(1)},${y.toFixed(1)}`).join('');
  const base = Math.min(h, Y(Math.max(vMin, Math.min(0, vMax)))).toFixed(1);
  for (const seg of segments) {
    const first = seg[0];
    const last = seg[seg.length - 1];
    svg.append(svgEl('path', { d: `${path(seg)}L${last[0].toFixed(1)},${base}L${first[0].toFixed(1)},${base}Z`, class: 'spark-area' }));
    svg.append(svgEl('path', { d: path(seg), class: 'spark-line' }));
  }
  const end = segments[segments.length - 1].slice(-1)[0];
  svg.append(svgEl('circle', { cx: end[0].toFixed(1), cy: end[1].toFixed(1), r: 3.5, class: 'spark-dot' }));
  const change = decSub(pts[pts.length - 1].text, pts[0].text);
  byId('spark-range').textContent = `${fmtMoney(change, { plus: true })} · low ${fmtMoney(lo.text)} · high ${fmtMoney(hi.text)}`;
  svg.setAttribute('aria-label', `Net P&L, ${label}: from ${fmtMoney(pts[0].text)} to ${fmtMoney(pts[pts.length - 1].text)}, low ${fmtMoney(lo.text)}, high ${fmtMoney(hi.text)}`);
}

// ---------- the 30-day daily trend ----------

const trend = { days: [], loadedAt: 0, loadedDay: '' };
const utcDayKey = (ms) => new Date(ms).toISOString().slice(0, 10);

export async function loadTrend() {
  trend.loadedAt = Date.now();
  const now = Date.now();
  const from = now - (now % DAY) - (TREND_DAYS - 1) * DAY;
  let body;
  try {
    body = await getJson(`/api/pnl/history?resolution=1d&from=${encodeURIComponent(new Date(from).toISOString())}`, null, 15000);
  } catch (e) { return false; }
  trend.days = bucketsOf(body).filter((b) => SERIES.every((k) => b[k]));
  trend.loadedDay = utcDayKey(now);
  return true;
}

export const trendIsOld = () => Date.now() - trend.loadedAt > 600e3 || utcDayKey(Date.now()) !== trend.loadedDay;

// Each day's revenue, costs and net: its close minus the previous day's close
// (or, with no bucket the day before, minus its own open). Today's close is
// the live document.
function dailyRows(doc) {
  const days = trend.days.map((b) => ({ t: b.t, open: b, close: b }));
  if (doc && doc.net_pnl !== undefined && doc.revenue && doc.costs && doc.trading) {
    const live = {
      net: { close: doc.net_pnl }, revenue: { close: doc.revenue[doc.revenue.basis] },
      costs: { close: doc.costs.total }, trading: { close: doc.trading && doc.trading.total },
    };
    const today = Date.now() - (Date.now() % DAY);
    const last = days[days.length - 1];
    if (last && last.t === today) last.close = live;
    else if (last && last.t < today) days.push({ t: today, open: null, close: live });
  }
  return days.map((d, i) => {
    const prev = i > 0 && days[i - 1].t === d.t - DAY ? days[i - 1].close : null;
    const delta = (k) => decSub(d.close[k] && d.close[k].close, prev ? prev[k].close : d.open && d.open[k].open);
    return { t: d.t, revenue: delta('revenue'), costs: delta('costs'), trading: delta('trading'), net: delta('net') };
  }).filter((r) => SERIES.every((k) => r[k] !== undefined));
}

function trendTable(rows) {
  const body = byId('trend-body');
  if (!rows.length) {
    const tr = document.createElement('tr');
    const td = Object.assign(document.createElement('td'), { className: 'empty', colSpan: 5, textContent: 'No history yet' });
    tr.append(td);
    body.replaceChildren(tr);
    return;
  }
  body.replaceChildren(...rows.slice().reverse().map((r) => {
    const tr = document.createElement('tr');
    const th = Object.assign(document.createElement('th'), { scope: 'row', textContent: utcWeekday(r.t) });
    tr.append(th);
    for (const key of SERIES) {
      const td = document.createElement('td');
      td.className = key === 'net' ? `num strong ${TONES[signOf(r.net)]}` : 'num';
      td.textContent = fmtMoney(r[key], { plus: key === 'net' || key === 'trading' });
      td.dataset.label = key[0].toUpperCase() + key.slice(1);
      tr.append(td);
    }
    return tr;
  }));
}

export function drawTrend(doc) {
  const svg = byId('trend');
  const rows = dailyRows(doc);
  trendTable(rows);
  const sum = (key) => (rows.length ? decSum(...rows.map((r) => [r[key], 1])) : undefined);
  const totals = { revenue: sum('revenue'), costs: sum('costs'), net: sum('net') };
  byId('trend-summary').textContent = rows.length
    ? `${rows.length === 1 ? 'Today' : `${rows.length} days`}: revenue ${fmtMoney(totals.revenue)} · costs ${fmtMoney(totals.costs)} · net ${fmtMoney(totals.net, { plus: true })}`
    : '';
  const w = Math.max(100, Math.round(svg.clientWidth || 600));
  const h = Math.max(80, Math.round(svg.clientHeight || 180));
  svg.setAttribute('viewBox', `0 0 ${w} ${h}`);
  svg.replaceChildren();
  const today = Date.now() - (Date.now() % DAY);
  const first = today - (TREND_DAYS - 1) * DAY;
  byId('trend-axis').replaceChildren(...[utcDay(first), utcDay(first + 15 * DAY), 'today'].map(
    (t) => Object.assign(document.createElement('span'), { textContent: t })));
  if (!rows.length) {
    svg.append(svgEl('text', { x: w / 2, y: h / 2, class: 'spark-empty', 'text-anchor': 'middle' }, 'No history yet'));
    svg.setAttribute('aria-label', 'Daily revenue, costs and net: no history yet');
    return;
  }
  const vals = rows.map((r) => ({ t: r.t, rev: Number(r.revenue), cost: -Number(r.costs), net: Number(r.net), r }));
  const top = Math.max(0, ...vals.map((v) => Math.max(v.rev, v.cost, v.net)));
  const bottom = Math.min(0, ...vals.map((v) => Math.min(v.rev, v.cost, v.net)));
  const pad = 8;
  const Y = (v) => pad + (1 - (v - bottom) / ((top - bottom) || 1)) * (h - 2 * pad);
  const slot = w / TREND_DAYS;
  const barW = Math.max(1.5, Math.min(14, slot * 0.32));
  const zero = Y(0);
  svg.append(svgEl('line', { x1: 0, x2: w, y1: zero.toFixed(1), y2: zero.toFixed(1), class: 'trend-zero' }));
  const netPts = [];
  for (const v of vals) {
    const cx = ((v.t - first) / DAY + 0.5) * slot;
    if (cx < 0) continue;
    const g = svgEl('g', { class: 'trend-day' });
    g.append(svgEl('title', {}, `${utcDay(v.t)} (UTC): revenue ${fmtMoney(v.r.revenue)}, costs ${fmtMoney(v.r.costs)}, trading ${fmtMoney(v.r.trading, { plus: true })}, net ${fmtMoney(v.r.net, { plus: true })}`));
    const bar = (value, x, cls) => svgEl('rect', {
      x: x.toFixed(1), width: barW.toFixed(1), class: cls,
      y: Math.min(Y(value), zero).toFixed(1), height: Math.max(0.5, Math.abs(Y(value) - zero)).toFixed(1),
    });
    g.append(bar(v.rev, cx - barW, 'trend-rev'), bar(v.cost, cx, 'trend-cost'));
    svg.append(g);
    netPts.push([cx, Y(v.net), v.net]);
  }
  if (netPts.length > 1) {
    svg.append(svgEl('path', { d: netPts.map(([x, y], i) => `${i ? 'L' : 'M'}${x.toFixed(1)},${y.toFixed(1)}`).join(''), class: 'trend-net' }));
  }
  for (const [x, y, v] of netPts) svg.append(svgEl('circle', { cx: x.toFixed(1), cy: y.toFixed(1), r: 3, class: `trend-dot ${v < 0 ? 'neg' : 'pos'}` }));
  svg.setAttribute('aria-label', `Daily revenue, costs and net over the last ${TREND_DAYS} days; totals: ${byId('trend-summary').textContent}. The figures are in the table below.`);
}
