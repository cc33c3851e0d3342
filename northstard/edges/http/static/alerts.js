// Alerts on the dashboard: a banner per firing alert (severity colour, since when, a link to what
// moved), a badge count, an alerts list with history, acknowledge per browser (localStorage).
// Fed by GET /api/alerts long-polls (after=last id, wait=25 s): works on every transport.

const ACK_KEY = 'northstard.alerts.ack';
const ACK_MAX = 200; // acknowledged event ids kept in localStorage (oldest forgotten)
const HISTORY_SHOWN = 50;
const WAIT_S = 25;
const RETRY_MS = 5000;

const byId = (id) => document.getElementById(id);

function readAcks() {
  try {
    const ids = JSON.parse(localStorage.getItem(ACK_KEY) || '[]');
    return new Set(Array.isArray(ids) ? ids.filter(Number.isInteger) : []);
  } catch (e) {
    return new Set();
  }
}

function acknowledge(id) {
  const ids = [...readAcks(), id].slice(-ACK_MAX);
  try { localStorage.setItem(ACK_KEY, JSON.stringify(ids)); } catch (e) { /* storage full or off */ }
}

export function explainHash(event) {
  return `#/explain?from=${encodeURIComponent(event.epoch)}:${Math.max(event.seq - 1, 0)}&to=${encodeURIComponent(event.epoch)}:${event.seq}`;
}

function since(ts) {
  return new Date(ts).toLocaleString(undefined, { dateStyle: 'short', timeStyle: 'medium' });
}

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

function bannerRow(event, render) {
  const row = el('div', `alert-row alert-${event.severity}`);
  row.dataset.testid = 'alert-banner-row';
  row.dataset.alert = event.alert;
  row.dataset.severity = event.severity;
  row.append(el('strong', '', `${event.severity.toUpperCase()} · ${event.alert}`),
    el('span', '', ` ${event.description || ''}${event.value ? ` — ${event.value}` : ''} · since `),
    el('time', '', since(event.ts)));
  row.querySelector('time').dateTime = new Date(event.ts).toISOString();
  const link = el('a', 'alert-link', 'what moved');
  link.href = explainHash(event);
  link.dataset.testid = 'alert-explain';
  const ack = el('button', 'alert-ack', 'Acknowledge');
  ack.type = 'button';
  ack.dataset.testid = 'alert-ack';
  ack.addEventListener('click', () => { acknowledge(event.id); render(); });
  row.append(' ', link, ' ', ack);
  return row;
}

function historyRow(event) {
  const row = el('li', `alert-event alert-${event.severity}`);
  row.dataset.testid = 'alert-history-row';
  row.append(el('time', 'muted', since(event.ts)), ' ',
    el('strong', '', `${event.alert} ${event.event}`), ' ', el('span', 'muted', event.text || ''));
  return row;
}

export function startAlerts() {
  const banner = byId('alerts-banner');
  const badge = byId('alerts-badge');
  const list = byId('alerts-history');
  if (!banner || !badge || !list) return;
  let current = [];
  let history = [];
  let lastId = 0;

  function render() {
    const acks = readAcks();
    const firing = current.filter((e) => e.event === 'firing' && !acks.has(e.id));
    banner.replaceChildren(...firing.map((e) => bannerRow(e, render)));
    banner.hidden = firing.length === 0;
    badge.textContent = String(firing.length);
    badge.hidden = firing.length === 0;
    list.replaceChildren(...history.slice(0, HISTORY_SHOWN).map(historyRow));
  }

  async function poll() {
    for (;;) {
      try {
        const query = lastId ? `?after=${lastId}&wait=${WAIT_S}&limit=${HISTORY_SHOWN}` : `?limit=${HISTORY_SHOWN}`;
        const response = await fetch(`/api/alerts${query}`, { headers: { Accept: 'application/json' } });
        if (response.status === 404) return; // alerts off
        if (!response.ok) throw new Error(`HTTP ${response.status}`);
        const body = await response.json();
        current = body.current || [];
        history = body.history || [];
        lastId = Math.max(lastId, body.last_id || 0);
        render();
      } catch (e) {
        await new Promise((resolve) => { setTimeout(resolve, RETRY_MS); });
      }
    }
  }
  render();
  poll();
}
