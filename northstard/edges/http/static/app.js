// northstard dashboard: renders the live snapshot document. The stream comes
// from transport.js, the client's copy of it from state.js, charts from chart.js.
//
// URL switches (debugging, tests): ?transport=ws|sse|poll pins one transport
// (no fallback, no step-up); ?stepup=S probes for a WebSocket every S seconds
// while on a fallback (default 30).

import {
  drawHistory, drawTrend, historyIsOld, loadHistory, loadTrend, pushLive, RANGES, setRange, trendIsOld,
} from './chart.js';
import {
  ago, cmpDec, decSum, fmtExact, fmtMoney, fmtPct, hourMinute, localTime, parseDec, roundDec, setCurrency, signOf,
} from './format.js';
import { settleChartKeys, wireChartKeys } from './chartkeys.js';
import { initMoved, refreshMoved } from './moved.js';
import { currentRoute, startRouter } from './nav.js';
import {
  figureFilters, figureHref, parseRoute, routeHref, utcMidnight,
} from './routes.js';
import { applied, loadSaved, mergePatch, onApply, position, readPref, saveNow, state, writePref } from './state.js';
import { connect, LEVELS, retryAt, transitions } from './transport.js';
import { startAlerts } from './alerts.js';

const ALERTS_AFTER_MS = 500; // the figures' first requests go first; alerts follow

const LABELS = {
  connecting: 'Connecting', offline: 'Offline',
  ws: 'Live · WebSocket', sse: 'Live · SSE', poll: 'Live · Polling',
};
// Which figures a source type feeds; any other plugin (the demo, third-party ones) may feed all.
const PLUGIN_SECTIONS = {
  kalshi: ['trading'], anthropic_costs: ['costs'], revenue_http: ['revenue'], stripe: ['revenue'],
};
const ALL_SECTIONS = ['trading', 'revenue', 'costs'];
const TONES = { 1: 'pos', '-1': 'neg', 0: 'zero' };

const params = new URLSearchParams(location.search);
const PINNED = LEVELS.indexOf(params.get('transport'));
const STEP_UP_MS = Math.max(1, Number(params.get('stepup')) || 30) * 1000;

const byId = (id) => document.getElementById(id);
const byTest = (id) => document.querySelector(`[data-testid="${id}"]`);
const get = (obj, ...keys) => keys.reduce((o, k) => (o && typeof o === 'object' ? o[k] : undefined), obj);
const toneClass = (value) => TONES[signOf(value)];

function setText(node, text, tone) {
  if (!node) return;
  if (node.textContent !== text) node.textContent = text;
  if (tone !== undefined) {
    node.classList.remove('pos', 'neg', 'zero');
    if (tone) node.classList.add(tone);
  }
}

const setMoney = (id, value, opts = {}) => setText(byTest(id), fmtMoney(value, opts), opts.tone ? toneClass(value) : undefined);

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

function emptyRow(body, columns, text) {
  const td = el('td', 'empty', text);
  td.colSpan = columns;
  const tr = el('tr');
  tr.append(td);
  body.replaceChildren(tr);
}

// ---------- sections ----------

// A figure as a link to the records behind it (since the start of the data).
function drillLink(path, cls, ...children) {
  const a = el('a', `drill ${cls || ''}`.trim());
  a.dataset.figure = path;
  a.href = figureHref(path);
  a.append(...children);
  return a;
}

// Whether a list's content changed since it was last drawn: an unchanged one is left alone, so a
// render that moves nothing never replaces the link a user (or a test) is clicking.
function changed(node, content) {
  const sig = JSON.stringify(content);
  if (node.dataset.drawn === sig) return false;
  node.dataset.drawn = sig;
  return true;
}

function renderBars(id, map, prefix) {
  const list = byId(id);
  const entries = Object.entries(map || {}).sort((a, b) => cmpDec(b[1], a[1]) || a[0].localeCompare(b[0]));
  if (!changed(list, entries)) return;
  if (!entries.length) { list.replaceChildren(el('li', 'empty', 'None')); return; }
  const top = Math.max(...entries.map(([, v]) => Math.abs(Number(v)) || 0), 1e-9);
  list.replaceChildren(...entries.map(([name, value]) => {
    const li = el('li');
    li.dataset.name = name;
    const bar = el('span', 'bar');
    bar.style.width = `${Math.min(100, (Math.abs(Number(value)) / top) * 100).toFixed(1)}%`;
    const track = el('span', 'bar-track');
    track.append(bar);
    li.append(drillLink(`${prefix}.${name}`, 'bar-link', el('span', 'bar-name', name), el('span', 'bar-value', fmtMoney(value))), track);
    return li;
  }));
}

function renderAgents(agents) {
  const body = byId('agents-body');
  const rows = Object.entries(agents || {}).sort((a, b) => cmpDec(get(b[1], 'net'), get(a[1], 'net')) || a[0].localeCompare(b[0]));
  if (!changed(body, rows)) return;
  if (!rows.length) { emptyRow(body, 5, 'No agent attribution yet'); return; }
  body.replaceChildren(...rows.map(([name, a]) => {
    const tr = el('tr');
    tr.dataset.agent = name;
    const th = el('th', null, name);
    th.scope = 'row';
    tr.append(th);
    for (const key of ['trading', 'revenue', 'costs', 'net']) {
      const td = el('td', key === 'net' ? `num strong ${toneClass(get(a, key))}` : 'num');
      const link = drillLink(`agents.${name}.${key}`, null, fmtMoney(get(a, key)));
      link.setAttribute('aria-label', `${name} ${key}: ${link.textContent}`);
      td.append(link);
      td.dataset.testid = `agent-${name}-${key}`;
      td.dataset.label = key[0].toUpperCase() + key.slice(1);
      tr.append(td);
    }
    return tr;
  }));
}

function sourceStatus(s) {
  const status = ['ok', 'stale', 'degraded', 'failing'].includes(s.status) ? s.status : 'failing';
  return status === 'ok' && s.stale === true ? 'stale' : status;
}

function renderSources(sources) {
  const body = byId('sources-body');
  const names = Object.keys(sources || {}).sort();
  const counts = { ok: 0, stale: 0, degraded: 0, failing: 0 };
  const rows = names.map((name) => {
    const s = sources[name] || {};
    const status = sourceStatus(s);
    counts[status]++;
    const tr = el('tr', `src-${status}`);
    tr.dataset.testid = `source-${name}`;
    tr.dataset.status = status;
    const th = el('th', null, name);
    th.scope = 'row';
    const pill = el('span', `pill pill-${status}`, status);
    const statusTd = el('td');
    statusTd.append(pill);
    const err = el('td', 'err', s.last_error ? String(s.last_error) : '—');
    if (s.last_error) err.title = String(s.last_error);
    const asOf = el('td', 'num', s.as_of ? localTime(s.as_of) : 'never');
    if (s.as_of) asOf.title = s.as_of;
    const plugin = el('td', 'muted', s.plugin || '—');
    [[plugin, 'Plugin'], [statusTd, 'Status'], [asOf, 'As of'], [err, 'Last error']].forEach(([c, l]) => { c.dataset.label = l; });
    tr.append(th, plugin, statusTd, asOf, err);
    return tr;
  });
  if (rows.length) body.replaceChildren(...rows);
  else emptyRow(body, 5, 'No sources reported');
  const summary = names.length ? `${counts.ok} of ${names.length} ok` + (counts.stale ? ` · ${counts.stale} stale` : '') + (counts.degraded ? ` · ${counts.degraded} degraded` : '') + (counts.failing ? ` · ${counts.failing} failing` : '') : '';
  setText(byId('sources-summary'), summary);
}

// A figure fed by a source that is not ok carries a visible "stale" tag naming it.
function renderStale(sources) {
  const bySection = { trading: [], revenue: [], costs: [] };
  for (const [name, s] of Object.entries(sources || {})) {
    if (sourceStatus(s || {}) === 'ok') continue;
    const sections = PLUGIN_SECTIONS[s.plugin] || ALL_SECTIONS;
    for (const section of sections) bySection[section].push({ name, status: sourceStatus(s), asOf: s.as_of });
  }
  const union = (...keys) => [...new Map(keys.flatMap((k) => bySection[k]).map((x) => [x.name, x])).values()];
  const marks = {
    net: union(...ALL_SECTIONS), agents: union(...ALL_SECTIONS), margin: union('revenue', 'costs'),
    trading: bySection.trading, revenue: bySection.revenue, costs: bySection.costs,
  };
  for (const tag of document.querySelectorAll('[data-stale]')) {
    const list = marks[tag.dataset.stale] || [];
    const section = tag.closest('[data-section]');
    if (section) section.classList.toggle('is-stale', list.length > 0);
    tag.hidden = !list.length;
    if (!list.length) continue;
    setText(tag, `⚠ Stale: ${list.map((x) => x.name).join(', ')}`);
    tag.title = list.map((x) => `${x.name} is ${x.status}; last good data ${x.asOf ? localTime(x.asOf) : 'never'}`).join('\n');
  }
}

function renderChangeLabel(day) {
  const midnight = day ? Date.parse(`${day}T00:00:00Z`) : NaN;
  const local = Number.isFinite(midnight) && new Date(midnight).getTimezoneOffset() !== 0 ? ` (${hourMinute(midnight)} local)` : '';
  setText(byId('chg-mid-label'), `Since 00:00 UTC${local}`);
  if (Number.isFinite(midnight)) byId('change-since-midnight').href = routeHref('explain', { from_time: utcMidnight(midnight) });
}

function renderDoc() {
  const d = state.doc;
  if (!d) return;
  setCurrency(d.currency);
  setText(byTest('net-pnl'), fmtMoney(d.net_pnl), signOf(d.net_pnl) < 0 ? 'neg' : 'pos');
  setMoney('change-since-midnight', get(d, 'change', 'since_midnight'), { plus: true, tone: true });
  setMoney('change-since-previous', get(d, 'change', 'since_previous'), { plus: true, tone: true });
  renderChangeLabel(get(d, 'change', 'day'));
  for (const k of ['realized', 'unrealized', 'fees', 'total', 'balance']) {
    setMoney(`trading-${k}`, get(d, 'trading', k), { tone: k !== 'balance' && k !== 'fees' });
  }
  setMoney('revenue-invoiced', get(d, 'revenue', 'invoiced'));
  setMoney('revenue-collected', get(d, 'revenue', 'collected'));
  const basis = get(d, 'revenue', 'basis');
  setText(byId('revenue-basis'), basis ? `${basis} basis` : '');
  setMoney('costs-total', get(d, 'costs', 'total'));
  setMoney('costs-estimated', get(d, 'costs', 'estimated'));
  const gm = d.gross_margin_pct;
  setText(byTest('gross-margin'), gm === undefined ? 'n/a' : fmtPct(gm), gm === undefined ? 'zero' : toneClass(gm));
  setText(byId('gm-note'), gm === undefined ? 'Undefined until there is revenue'
    : `(revenue − costs) ÷ revenue${basis ? `, ${basis} basis` : ''}`);
  renderBars('costs-by-category', get(d, 'costs', 'by_category'), 'costs.by_category');
  renderBars('costs-by-model', get(d, 'costs', 'by_model'), 'costs.by_model');
  renderAgents(d.agents);
  renderSources(d.sources);
  renderStale(d.sources);
  const asOf = byId('as-of');
  setText(asOf, localTime(d.as_of));
  if (d.as_of) asOf.dateTime = d.as_of;
  setText(byId('currency'), d.currency || 'USD');
  setText(byId('currency-foot'), d.currency || 'USD');
  setText(byId('position'), position());
  document.title = `${fmtMoney(d.net_pnl)} · northstard P&L`;
}

// ---------- connection state ----------

const notice = { text: '', until: 0 };
function showNotice(text) {
  notice.text = text;
  notice.until = Date.now() + 10000;
  renderBadge();
}

function renderBadge() {
  const badge = byTest('transport');
  const kind = state.transport;
  const isLive = LEVELS.includes(kind);
  const reconnecting = kind === 'connecting' && state.doc;
  setText(badge, reconnecting ? 'Reconnecting' : (LABELS[kind] || 'Offline'));
  badge.className = `badge badge-${isLive ? 'live' : kind}`;
  const offline = kind === 'offline' && !!state.doc;
  document.body.classList.toggle('is-offline', offline);
  let age = '';
  if (isLive && state.ts) age = `updated ${ago(Date.now() - state.ts)} ago`;
  else if (!isLive && state.ts) age = `data from ${localTime(state.ts)}`;
  const retry = retryAt();
  if (!isLive) age += `${age ? ' · ' : ''}${retry ? `retrying in ${ago(retry - Date.now())}` : 'connecting…'}`;
  setText(byTest('data-age'), age);
  const latency = isLive && state.latency !== null ? `latency ${state.latency < 1 ? '<1' : Math.round(state.latency)} ms` : '';
  setText(byTest('latency'), latency);
  byTest('latency').hidden = !latency;
  const banner = byId('banner');
  const offlineText = offline
    ? `Offline — showing the last figures received, from ${state.ts ? `${localTime(state.ts)} (${ago(Date.now() - state.ts)} ago)` : 'an earlier session'}.`
    : '';
  const text = offlineText || (notice.until > Date.now() ? notice.text : '');
  setText(banner, text);
  banner.hidden = !text;
  banner.className = `banner${offline ? ' banner-offline' : ''}`;
}

// At most one render per RENDER_MS however fast changes arrive (an all-day tab stays cheap).
const RENDER_MS = 150;
let renderQueued = false;
let renderedAt = 0;
function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  setTimeout(() => {
    renderQueued = false;
    renderedAt = Date.now();
    renderAll();
  }, Math.max(0, renderedAt + RENDER_MS - Date.now()));
}

function renderAll() {
  renderDoc();
  drawHistory();
  drawTrend(state.doc);
  settleChartKeys(byId('spark'));
  settleChartKeys(byId('trend'));
  renderBadge();
}

// ---------- charts ----------

async function reloadHistory() {
  if (await loadHistory()) scheduleRender();
}
async function reloadTrend() {
  if (await loadTrend()) scheduleRender();
}
function reloadIfOld() {
  if (historyIsOld()) reloadHistory();
  if (trendIsOld()) reloadTrend();
}

function pickRange(range) {
  for (const b of document.querySelectorAll('[data-range]')) b.setAttribute('aria-pressed', String(b.dataset.range === range));
  if (!setRange(range)) return false;
  writePref('range', range);
  if (state.doc && state.ts) pushLive(state.ts, state.doc.net_pnl);
  scheduleRender();
  return true;
}

function wireRangePicker() {
  const buttons = [...document.querySelectorAll('[data-range]')];
  for (const [i, b] of buttons.entries()) {
    b.addEventListener('click', () => { if (pickRange(b.dataset.range)) reloadHistory(); });
    // Arrow keys move along the group (Tab, Enter and Space work as for any button).
    b.addEventListener('keydown', (ev) => {
      const step = { ArrowRight: 1, ArrowDown: 1, ArrowLeft: -1, ArrowUp: -1 }[ev.key];
      if (!step) return;
      ev.preventDefault();
      const next = buttons[(i + step + buttons.length) % buttons.length];
      next.focus();
      if (pickRange(next.dataset.range)) reloadHistory();
    });
  }
}

// ---------- boot ----------

function boot() {
  window.northstard = {
    state, applied, transitions,
    format: { fmtMoney, fmtPct, fmtExact, roundDec, parseDec, mergePatch, cmpDec, decSum },
    routes: { parseRoute, routeHref, figureFilters, figureHref },
  };
  for (const a of document.querySelectorAll('a[data-figure]')) a.href = figureHref(a.dataset.figure);
  byId('tz').textContent = Intl.DateTimeFormat().resolvedOptions().timeZone || 'local';
  wireRangePicker();
  wireChartKeys(byId('spark'));
  wireChartKeys(byId('trend'));
  const saved = readPref('range', '1h');
  pickRange(RANGES[saved] ? saved : '1h');
  if (loadSaved() && state.ts) pushLive(state.ts, state.doc.net_pnl);
  // The position this browser saw last (an earlier visit): "What moved" explains from it.
  initMoved(state.doc ? { position: position(), ts: state.ts } : null);
  const movedDue = () => { if (currentRoute().view === 'live' && LEVELS.includes(state.transport)) refreshMoved(); };
  onApply((m) => {
    if (m.type === 'error') { showNotice(`Server: ${m.error || 'error'}${m.detail ? ' — ' + m.detail : ''}`); return; }
    if (state.doc) pushLive(state.ts, state.doc.net_pnl);
    if (m.type === 'snapshot') reloadIfOld();
    scheduleRender();
    movedDue();
  });
  renderAll();
  reloadHistory();
  reloadTrend();
  connect({ pinned: PINNED, stepUpMs: STEP_UP_MS, onChange: () => { renderBadge(); movedDue(); }, onLive: reloadIfOld });
  setTimeout(startAlerts, ALERTS_AFTER_MS);
  setInterval(renderBadge, 1000);
  setInterval(() => { if (trendIsOld()) reloadTrend(); }, 60000);
  if (window.ResizeObserver) new ResizeObserver(() => scheduleRender()).observe(byId('main'));
  window.addEventListener('pagehide', saveNow);
  setInterval(movedDue, 15000);
  startRouter({ onLive: () => { scheduleRender(); movedDue(); } });
}

boot();
