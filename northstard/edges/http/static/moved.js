// "What moved" on the live page: the change since 00:00 UTC and since this
// browser's last visit (the position it last saw, from localStorage), each
// from /api/pnl/explain, its largest contributors as links to their records.
// At most one explain request per panel every REFRESH_MS while the page is
// shown and live; TOP items each.

import { apiGet, errorText } from './api.js';
import { fmtExact, localTime, signOf } from './format.js';
import { itemHref, routeHref, utcMidnight } from './routes.js';

const REFRESH_MS = 15000;
const TOP = 5;
const TONES = { 1: 'pos', '-1': 'neg', 0: 'zero' };

const panel = { lastSeen: null, loadedAt: 0, busy: false, day: '' };

function node(tag, cls, text) {
  const n = document.createElement(tag);
  if (cls) n.className = cls;
  if (text !== undefined) n.textContent = text;
  return n;
}

function amountNode(value) {
  return node('span', `amt ${TONES[signOf(value)]}`, fmtExact(value, { plus: true }));
}

function renderBlock(block, query, res, what) {
  const list = block.querySelector('ol');
  const sum = block.querySelector('.moved-net');
  const more = block.querySelector('.moved-more');
  more.href = routeHref('explain', Object.fromEntries(new URLSearchParams(query)));
  if (!res.ok) {
    const gone = res.status === 410;
    sum.textContent = gone ? `${what} is older than the history the daemon holds.` : `Could not explain — ${errorText(res)}`;
    list.replaceChildren();
    block.dataset.state = gone ? 'gone' : 'error';
    return;
  }
  const b = res.body || {};
  const net = (b.difference || {}).net_pnl ?? '0';
  sum.replaceChildren('Net ', amountNode(net), b.from && b.from.as_of ? node('span', 'muted small', ` since ${localTime(b.from.as_of)}`) : '');
  const items = (Array.isArray(b.items) ? b.items : []).slice(0, TOP + 1);
  list.replaceChildren(...items.map((it) => {
    const li = node('li', 'moved-item');
    li.dataset.testid = 'moved-item';
    const href = itemHref(it);
    const label = it.label || `${it.kind} ${it.id || ''}`;
    const text = href ? Object.assign(node('a', null, label), { href }) : node('span', 'muted', label);
    li.append(text, ' ', amountNode((it.contributions || {}).net_pnl ?? '0'));
    return li;
  }));
  if (!items.length) list.append(node('li', 'muted', 'Nothing moved'));
  block.dataset.state = 'ok';
}

async function load(block, query, what) {
  const res = await apiGet(`/api/pnl/explain?${query}&limit=${TOP}`);
  renderBlock(block, query, res, what);
}

// The last position this browser saw on an earlier visit ("E:N"), or null.
export function initMoved(lastSeen) {
  panel.lastSeen = lastSeen && lastSeen.position ? lastSeen : null;
  const visit = document.querySelector('[data-testid="moved-visit"]');
  visit.hidden = !panel.lastSeen;
  if (panel.lastSeen && panel.lastSeen.ts) visit.querySelector('h3').textContent = `Since your last visit (${localTime(panel.lastSeen.ts)})`;
}

// Called on each change; reloads when the panel is due (REFRESH_MS, or a new UTC day).
export async function refreshMoved(force = false) {
  const day = utcMidnight(Date.now());
  if (panel.busy || (!force && Date.now() - panel.loadedAt < REFRESH_MS && day === panel.day)) return;
  panel.busy = true;
  panel.loadedAt = Date.now();
  panel.day = day;
  try {
    const jobs = [load(document.querySelector('[data-testid="moved-today"]'), `from_time=${encodeURIComponent(day)}`, 'Midnight')];
    if (panel.lastSeen) {
      jobs.push(load(document.querySelector('[data-testid="moved-visit"]'), `from=${encodeURIComponent(panel.lastSeen.position)}`, 'Your last visit'));
    }
    await Promise.all(jobs);
    document.getElementById('moved-updated').textContent = `Updated ${localTime(Date.now())}`;
    // Announced only when a net change differs from the last announcement (not every refresh).
    const said = [...document.querySelectorAll('.moved-block:not([hidden])')]
      .map((b) => `${b.querySelector('h3').textContent}: ${b.querySelector('.moved-net').textContent}`).join('; ');
    const status = document.getElementById('moved-status');
    if (status.textContent !== said) status.textContent = said;
  } finally {
    panel.busy = false;
  }
}
