// The views behind the live page: records (drill-down), explain (what moved
// between two positions) and statement. Loaded on first use. Amounts are the
// server's decimal strings, shown exactly (fmtExact only inserts separators);
// sums are exact (decSum, on the digits).

import { apiGet, errorText } from './api.js';
import { decSum, fmtExact, localTime, signOf } from './format.js';
import { apiQuery, itemHref, RECORD_FILTERS, routeHref, ymd } from './routes.js';

export const PERIODS = ['day', 'week', 'month', 'quarter'];
const SECTION_NAMES = { trading: 'Trading', revenue: 'Revenue', costs: 'Costs' };
// "costs.by_model.claude-opus-4" -> "Costs · by model · claude-opus-4"; "agents.atlas.net" -> "Agent atlas · net".
export function figureLabel(path) {
  const parts = String(path || '').split('.');
  if (parts[0] === 'net_pnl') return 'Net P&L';
  if (parts[0] === 'agents' && parts.length > 2) return `Agent ${parts.slice(1, -1).join('.')} · ${parts[parts.length - 1]}`;
  if (SECTION_NAMES[parts[0]]) {
    const rest = parts.slice(1);
    if (rest[0] && rest[0].startsWith('by_')) return [SECTION_NAMES[parts[0]], rest[0].replace('_', ' '), rest.slice(1).join('.')].join(' · ');
    return [SECTION_NAMES[parts[0]], ...rest].join(' · ');
  }
  return String(path || '');
}

// Figure paths in the order a statement reads: net first, then trading, revenue, costs, agents.
const PATH_ORDER = ['net_pnl', 'trading', 'revenue', 'costs', 'agents'];
export function comparePaths(a, b) {
  const ra = PATH_ORDER.indexOf(a.split('.')[0]);
  const rb = PATH_ORDER.indexOf(b.split('.')[0]);
  return (ra < 0 ? 99 : ra) - (rb < 0 ? 99 : rb) || a.split('.').length - b.split('.').length || a.localeCompare(b);
}

// Default statement range (UTC dates, half-open): the current period and the ones before it.
export function statementRange(period, nowMs) {
  const now = new Date(nowMs);
  const y = now.getUTCFullYear();
  const mo = now.getUTCMonth();
  const day = (yy, mm, dd) => new Date(Date.UTC(yy, mm, dd));
  switch (period) {
    case 'day': return { from: ymd(day(y, mo, now.getUTCDate() - 29)), to: ymd(day(y, mo, now.getUTCDate() + 1)) };
    case 'week': {
      const monday = now.getUTCDate() - ((now.getUTCDay() + 6) % 7);
      return { from: ymd(day(y, mo, monday - 7 * 11)), to: ymd(day(y, mo, monday + 7)) };
    }
    case 'quarter': {
      const q = mo - (mo % 3);
      return { from: ymd(day(y, q - 9, 1)), to: ymd(day(y, q + 3, 1)) };
    }
    default: return { from: ymd(day(y, mo - 11, 1)), to: ymd(day(y, mo + 1, 1)) };
  }
}

const TONES = { 1: 'pos', '-1': 'neg', 0: 'zero' };
const KINDS = ['cost', 'invoice', 'refund', 'revenue_total', 'position', 'price', 'fill', 'settlement', 'balance'];
const PAGE_CAP = 10000; // records kept on one records view ("Load more" stops there)

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') node.className = v;
    else if (k === 'text') node.textContent = v;
    else if (k.startsWith('data-') || k.startsWith('aria-') || k === 'role' || k === 'for' || k === 'scope') node.setAttribute(k, v);
    else node[k] = v;
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}
const amount = (value, opts = {}) => el('span', { class: opts.tone === false ? 'amt' : `amt ${TONES[signOf(value)]}`, text: fmtExact(value, opts) });
const th = (text, scope = 'col') => el('th', { scope, text });

function header(title, sub) {
  return el('div', { class: 'view-head' },
    el('a', { class: 'back', href: '#/', text: '← Live', title: 'Back to the live figures (Escape)' }),
    el('h1', { id: 'view-title', tabIndex: -1, text: title }),
    sub ? el('p', { class: 'muted view-sub', 'data-testid': 'view-sub', text: sub }) : null);
}

function status(text, role = 'status') {
  return el('p', { class: role === 'alert' ? 'view-error' : 'view-status', role, 'data-testid': 'view-status', text });
}

const rangeText = (from, to) => (from || to
  ? `from ${from ? localTime(from) : 'the start of the data'} to ${to ? localTime(to) : 'now'}`
  : 'since the start of the data');

// ---------- records ----------

function filterForm(params) {
  const field = (name, label, input) => el('label', { class: 'field' }, el('span', { text: label }), input);
  const text = (name, placeholder) => el('input', { name, value: params[name] || '', placeholder, autocomplete: 'off' });
  const select = (name, options, value) => el('select', { name },
    ...options.map(([v, t]) => el('option', { value: v, text: t, selected: v === (value || '') })));
  const form = el('form', { class: 'filters', 'aria-label': 'Record filters', 'data-testid': 'record-filters' },
    field('source', 'Source', text('source', 'any')),
    field('kind', 'Kind', select('kind', [['', 'any'], ...KINDS.map((k) => [k, k])], params.kind)),
    field('agent', 'Agent', text('agent', 'any')),
    field('model', 'Model', text('model', 'any')),
    field('ticker', 'Ticker', text('ticker', 'any')),
    field('from_time', 'From (UTC, ISO 8601)', text('from_time', 'start of the data')),
    field('to_time', 'To (UTC, excluded)', text('to_time', 'now')),
    field('status', 'Versions', select('status', [['', 'current'], ['all', 'all (replaced, retracted)']], params.status === 'current' ? '' : params.status)),
    field('limit', 'Per page', text('limit', '100')),
    el('button', { type: 'submit', class: 'btn', text: 'Apply filters' }));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const next = { figure: params.figure };
    for (const k of RECORD_FILTERS) next[k] = form.elements[k].value.trim();
    location.hash = routeHref('records', next);
  });
  return form;
}

const changesText = (changes) => (Array.isArray(changes) ? changes : [])
  .map((c) => `${c.action || 'changed'} ${localTime(c.at)}`).join(' · ');

function fieldsText(fields) {
  return Object.entries(fields || {}).filter(([, v]) => v !== null && v !== undefined && v !== '')
    .map(([k, v]) => `${k} ${typeof v === 'object' ? JSON.stringify(v) : v}`).join(' · ');
}

function contributionList(contribs, figure) {
  const entries = Object.entries(contribs || {}).sort((a, b) => comparePaths(a[0], b[0]));
  if (!entries.length) return el('span', { class: 'muted', text: 'none' });
  return el('ul', { class: 'contribs' }, ...entries.map(([path, v]) => el('li', { class: path === figure ? 'hit' : '' },
    el('span', { class: 'path', text: path }), ' ', amount(v, { plus: true }))));
}

function recordRow(r, figure, focus) {
  const st = ['current', 'replaced', 'retracted'].includes(r.status) ? r.status : 'current';
  const contrib = (r.contributions || {})[figure];
  const row = el('tr', { class: `rec rec-${st}${focus && r.id === focus ? ' rec-focus' : ''}`, 'data-status': st, 'data-testid': 'record' },
    el('td', { class: 'num', 'data-label': 'Time', title: r.time || '', text: r.time ? localTime(r.time) : '—' }),
    el('th', { scope: 'row', class: 'rec-id' }, el('span', { class: 'muted', text: `${r.source} · ${r.kind} · ` }), el('span', { text: r.id })),
    el('td', { class: 'rec-fields', 'data-label': 'Fields', text: fieldsText(r.fields) }));
  if (figure) {
    row.append(el('td', { class: 'num', 'data-label': figureLabel(figure), 'data-testid': 'record-contribution' },
      contrib === undefined ? el('span', { class: 'muted', text: '—' }) : amount(contrib, { plus: true })));
  }
  row.append(el('td', { 'data-label': 'Contributions' }, contributionList(r.contributions, figure)),
    el('td', { 'data-label': 'Status' },
      el('span', { class: `pill pill-${st === 'current' ? 'ok' : st === 'replaced' ? 'stale' : 'failing'}`, text: st }),
      el('span', { class: 'muted small rec-changes', text: ` ${changesText(r.changes)}` })));
  return row;
}

export async function renderRecords(root, params, signal) {
  const figure = params.figure;
  const title = figure ? `Records behind ${figureLabel(figure)}` : 'Records';
  const summary = el('div', { class: 'view-summary', 'aria-live': 'polite', 'data-testid': 'records-summary' });
  const body = el('tbody');
  const more = el('button', { type: 'button', class: 'btn', hidden: true, 'data-testid': 'records-more', text: 'Load more records' });
  const table = el('table', { class: 'rec-table', 'data-testid': 'records' },
    el('caption', { class: 'sr-only', text: title }),
    el('thead', {}, el('tr', {}, th('Time'), th('Record'), th('Fields'),
      figure ? th(`Contribution to ${figureLabel(figure)}`) : null, th('Contributions'), th('Status'))),
    body);
  root.replaceChildren(header(title, `${rangeText(params.from_time, params.to_time)} · amounts exact, as stored`),
    filterForm(params), summary, el('div', { class: 'table-wrap' }, table), more);
  const loaded = [];
  let cursor = null;
  const show = () => {
    const current = loaded.filter((r) => r.status === undefined || r.status === 'current');
    let text = `${loaded.length} record${loaded.length === 1 ? '' : 's'}${cursor ? ' so far (more to load)' : ''}`;
    if (figure) {
      const sum = decSum(['0', 1], ...current.map((r) => [(r.contributions || {})[figure] ?? '0', 1]));
      summary.replaceChildren(`${text}; their contributions to ${figureLabel(figure)} add up to `,
        el('strong', { 'data-testid': 'records-sum', class: TONES[signOf(sum)], text: fmtExact(sum) }),
        cursor ? ' on the records loaded' : '');
      return;
    }
    summary.textContent = text;
  };
  const load = async () => {
    more.disabled = true;
    summary.textContent = 'Loading…';
    const res = await apiGet(`/api/records?${apiQuery('records', params, { cursor })}`, { signal });
    if (signal.aborted) return;
    more.disabled = false;
    if (!res.ok) { summary.replaceChildren(status(`Could not load the records — ${errorText(res)}`, 'alert')); return; }
    const records = Array.isArray(res.body.records) ? res.body.records : [];
    loaded.push(...records);
    body.append(...records.map((r) => recordRow(r, figure, params.focus)));
    cursor = res.body.next_cursor || null;
    more.hidden = !cursor || loaded.length >= PAGE_CAP;
    if (!loaded.length) body.replaceChildren(el('tr', {}, el('td', { class: 'empty', colSpan: figure ? 6 : 5, text: 'No records match these filters' })));
    show();
  };
  more.addEventListener('click', load);
  await load();
}

// ---------- explain ----------

function differenceTable(diff) {
  const paths = Object.keys(diff || {}).sort(comparePaths);
  return el('table', { class: 'num-table', 'data-testid': 'explain-difference' },
    el('caption', { class: 'sr-only', text: 'Change of each figure' }),
    el('thead', {}, el('tr', {}, th('Figure'), th('Change'))),
    el('tbody', {}, ...paths.map((p) => el('tr', {}, th(figureLabel(p), 'row'), el('td', { 'data-label': 'Change' }, amount(diff[p], { plus: true }))))));
}

function itemsTable(items) {
  return el('table', { class: 'num-table', 'data-testid': 'explain-items' },
    el('caption', { class: 'sr-only', text: 'Contributors, largest first' }),
    el('thead', {}, el('tr', {}, th('What'), th('Net P&L'), th('Source'), th('Kind'))),
    el('tbody', {}, ...items.map((it) => {
      const href = itemHref(it);
      const label = it.label || `${it.kind} ${it.id || ''}`;
      return el('tr', { 'data-testid': 'explain-item' },
        el('th', { scope: 'row' }, href ? el('a', { href, text: label }) : el('span', { text: label })),
        el('td', { 'data-label': 'Net P&L' }, amount((it.contributions || {}).net_pnl ?? '0', { plus: true })),
        el('td', { 'data-label': 'Source', text: it.source || '—' }), el('td', { 'data-label': 'Kind', text: it.kind || '—' }));
    })));
}

function groupsBlock(groups) {
  const blocks = Object.entries(groups || {}).filter(([, g]) => g && Object.keys(g).length).map(([dim, g]) => el('div', { class: 'group' },
    el('h3', { text: `By ${dim}` }),
    el('table', { class: 'num-table' }, el('thead', {}, el('tr', {}, th(dim), th('Net P&L'))),
      el('tbody', {}, ...Object.entries(g).map(([name, d]) => el('tr', {}, th(name, 'row'),
        el('td', { 'data-label': 'Net P&L' }, amount((d || {}).net_pnl ?? '0', { plus: true }))))))));
  return blocks.length ? el('div', { class: 'groups' }, ...blocks) : null;
}

export async function renderExplain(root, params, signal) {
  const from = params.from || (params.from_time ? localTime(params.from_time) : 'the start');
  root.replaceChildren(header('What moved', `from ${from} to ${params.to || (params.to_time ? localTime(params.to_time) : 'now')}`), status('Loading…'));
  const res = await apiGet(`/api/pnl/explain?${apiQuery('explain', params)}`, { signal });
  if (signal.aborted) return;
  if (!res.ok) {
    const gone = res.status === 410;
    root.replaceChildren(header('What moved'), status(gone
      ? `That position is older than the history the daemon holds — ${errorText(res)}` : `Could not explain the change — ${errorText(res)}`, 'alert'));
    return;
  }
  const b = res.body || {};
  const pos = (p) => (p ? `${p.position || '?'}${p.as_of ? ` (${localTime(p.as_of)})` : ''}` : '?');
  const items = Array.isArray(b.items) ? b.items : [];
  root.replaceChildren(header('What moved', `from ${pos(b.from)} to ${pos(b.to)} · amounts exact`),
    el('p', { class: 'view-summary', 'aria-live': 'polite', 'data-testid': 'explain-net' }, 'Net P&L ',
      amount((b.difference || {}).net_pnl ?? '0', { plus: true }), ` · ${items.length} contributor${items.length === 1 ? '' : 's'}`),
    el('div', { class: 'explain-grid' },
      el('section', { 'aria-label': 'Contributors' }, el('h2', { text: 'Largest contributors' }), el('div', { class: 'table-wrap' }, itemsTable(items))),
      el('section', { 'aria-label': 'Figures' }, el('h2', { text: 'Every figure' }), el('div', { class: 'table-wrap' }, differenceTable(b.difference)))),
    groupsBlock(b.groups));
}

// ---------- statement ----------

const STATEMENT_COLUMNS = [
  ['trading_realized', 'Realized'], ['trading_unrealized', 'Unrealized'], ['trading_fees', 'Fees (in realized)'],
  ['revenue_invoiced', 'Invoiced'], ['revenue_collected', 'Collected'], ['costs_total', 'Costs'],
];

export function statementParams(params, nowMs) {
  const period = PERIODS.includes(params.period) ? params.period : 'month';
  const range = statementRange(period, nowMs);
  return { period, from: params.from || range.from, to: params.to || range.to };
}

function statementForm(params) {
  const form = el('form', { class: 'filters', 'aria-label': 'Statement period', 'data-testid': 'statement-form' },
    el('label', { class: 'field' }, el('span', { text: 'Period' }), el('select', { name: 'period' },
      ...PERIODS.map((p) => el('option', { value: p, text: p, selected: p === params.period })))),
    el('label', { class: 'field' }, el('span', { text: 'From (UTC date)' }), el('input', { name: 'from', type: 'date', value: params.from })),
    el('label', { class: 'field' }, el('span', { text: 'To (UTC date, excluded)' }), el('input', { name: 'to', type: 'date', value: params.to })),
    el('button', { type: 'submit', class: 'btn', text: 'Show' }));
  // A new period comes with its own default range (a year of days would be 365 rows).
  form.elements.period.addEventListener('change', () => {
    const range = statementRange(form.elements.period.value, Date.now());
    form.elements.from.value = range.from;
    form.elements.to.value = range.to;
  });
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    location.hash = routeHref('statement', { period: form.elements.period.value, from: form.elements.from.value, to: form.elements.to.value });
  });
  return form;
}

export async function renderStatement(root, raw, signal) {
  const params = statementParams(raw, Date.now());
  if (raw.period !== params.period || raw.from !== params.from || raw.to !== params.to) {
    history.replaceState(history.state, '', routeHref('statement', params)); // the URL names what is shown
  }
  const query = apiQuery('statement', params);
  const csv = el('a', { class: 'btn', href: `/api/pnl/statement?${query}&format=csv`, download: `northstard-statement-${params.period}-${params.from}-${params.to}.csv`, 'data-testid': 'statement-csv', text: 'Download CSV' });
  root.replaceChildren(header('Statement', `one row per ${params.period}, ${params.from} to ${params.to} (UTC) · amounts exact`),
    statementForm(params), el('p', { class: 'view-actions' }, csv), status('Loading…'));
  const res = await apiGet(`/api/pnl/statement?${query}`, { signal });
  if (signal.aborted) return;
  if (!res.ok) { root.lastChild.replaceWith(status(`Could not load the statement — ${errorText(res)}`, 'alert')); return; }
  const rows = Array.isArray(res.body.rows) ? res.body.rows : [];
  const cats = [...new Set(rows.flatMap((r) => Object.keys(r.costs_by_category || {})))].sort();
  const cols = [...STATEMENT_COLUMNS, ...cats.map((c) => [`cat:${c}`, `Costs · ${c}`]), ['net', 'Net'], ['margin_pct', 'Margin %']];
  const cell = (r, key) => (key.startsWith('cat:') ? (r.costs_by_category || {})[key.slice(4)] : r[key]);
  const table = el('table', { class: 'num-table', 'data-testid': 'statement' },
    el('caption', { class: 'sr-only', text: `Statement by ${params.period}, ${res.body.currency || 'USD'}` }),
    el('thead', {}, el('tr', {}, th(params.period === 'day' ? 'Day (UTC)' : 'Period (UTC, end excluded)'), ...cols.map(([, t]) => th(t)))),
    el('tbody', {}, ...(rows.length ? rows.map((r) => el('tr', { 'data-testid': 'statement-row', 'data-start': r.start },
      th(params.period === 'day' ? r.start : `${r.start} – ${r.end}`, 'row'),
      ...cols.map(([k, t]) => el('td', { 'data-label': t, 'data-col': k },
        cell(r, k) === null || cell(r, k) === undefined ? el('span', { class: 'muted', text: k === 'margin_pct' ? 'n/a' : '—' }) : amount(cell(r, k), { tone: k === 'net' }))))) : [el('tr', {}, el('td', { class: 'empty', colSpan: cols.length + 1, text: 'No data in this range' }))])));
  root.lastChild.replaceWith(el('p', { class: 'muted small', text: `Amounts in ${res.body.currency || 'USD'}; fees are already inside realized.` }), el('div', { class: 'table-wrap' }, table));
}

export const RENDERERS = { records: renderRecords, explain: renderExplain, statement: renderStatement };
