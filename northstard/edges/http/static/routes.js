// Hash routes (pure, no DOM): "#/" is the live page; "#/records?…",
// "#/explain?…" and "#/statement?…" are the other views. A route's query
// holds the API's filters plus a few view-only keys (VIEW_KEYS) that are
// never sent to the server.

export const VIEWS = ['live', 'records', 'explain', 'statement'];
export const RECORD_FILTERS = ['source', 'kind', 'agent', 'model', 'ticker', 'from_time', 'to_time', 'status', 'limit'];
const API_KEYS = {
  records: RECORD_FILTERS,
  explain: ['from', 'to', 'from_time', 'to_time', 'limit'],
  statement: ['period', 'from', 'to'],
};
// figure: the dotted amount path whose contributions are summed; focus: a record id to mark.
export const VIEW_KEYS = ['figure', 'focus', 'label'];

// "#/records?kind=cost&model=x" -> {view: 'records', params: {kind: 'cost', model: 'x'}}.
// Anything that is not "#/<view>" (no hash, "#main", an unknown view) is the live page.
export function parseRoute(hash) {
  const m = /^#\/([a-z]*)(?:\?(.*))?$/.exec(hash || '');
  const view = m && VIEWS.includes(m[1]) ? m[1] : (m && m[1] === '' ? 'live' : null);
  if (!view || view === 'live') return { view: 'live', params: {} };
  const params = {};
  for (const [k, v] of new URLSearchParams(m[2] || '')) if (v !== '' && !(k in params)) params[k] = v;
  return { view, params };
}

// The inverse of parseRoute: empty values are left out, keys keep a stable order.
export function routeHref(view, params = {}) {
  if (view === 'live' || !VIEWS.includes(view)) return '#/';
  const order = [...(API_KEYS[view] || []), ...VIEW_KEYS];
  const keys = Object.keys(params).sort((a, b) => rank(order, a) - rank(order, b) || a.localeCompare(b));
  const q = new URLSearchParams();
  for (const k of keys) if (params[k] !== undefined && params[k] !== null && params[k] !== '') q.set(k, String(params[k]));
  const text = q.toString();
  return `#/${view}${text ? `?${text}` : ''}`;
}
const rank = (order, key) => (order.includes(key) ? order.indexOf(key) : order.length);

// The query string sent to the API for a view: its API keys only.
export function apiQuery(view, params, extra = {}) {
  const q = new URLSearchParams();
  for (const k of API_KEYS[view] || []) if (params[k]) q.set(k, params[k]);
  for (const [k, v] of Object.entries(extra)) if (v) q.set(k, v);
  return q.toString();
}

// A figure path's records: the filters that narrow the records to those
// that can contribute to it (the rest contribute nothing to it anyway).
export function figureFilters(path) {
  const parts = String(path).split('.');
  if (parts[0] === 'costs') {
    if (parts[1] === 'by_model' && parts.length > 2) return { kind: 'cost', model: parts.slice(2).join('.') };
    return { kind: 'cost' };
  }
  if (parts[0] === 'agents' && parts.length > 2) {
    const part = parts[parts.length - 1];
    const agent = parts.slice(1, -1).join('.');
    return part === 'costs' ? { agent, kind: 'cost' } : { agent };
  }
  return {};
}

// "#/records?…" for a figure over [from, to) (ISO times; both absent: since the start of the data).
export function figureHref(path, range = {}) {
  return routeHref('records', { ...figureFilters(path), from_time: range.from, to_time: range.to, figure: path });
}

const pad = (n) => String(n).padStart(2, '0');
export const ymd = (d) => `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`;

export const utcMidnight = (nowMs) => `${ymd(new Date(nowMs))}T00:00:00Z`;

// The records behind one explain item: its source, kind and subject, every version, the item's record marked.
export function itemHref(item) {
  if (!item || item.kind === 'other' || !item.source) return null;
  const subject = item.kind === 'price' ? { ticker: item.ticker || item.id } : { agent: item.agent, model: item.model, ticker: item.ticker };
  return routeHref('records', { source: item.source, kind: item.kind, ...subject, status: 'all', figure: 'net_pnl', focus: item.id });
}
