// Getting the stream: WebSocket, else SSE, else long-polling /api/pnl/changes.
// Every (re)connection resumes from (epoch, seq); failures back off
// exponentially with jitter; from SSE or polling we keep probing for a
// WebSocket and step back up as soon as one opens.

import { handleMessage, hasPosition, position, state } from './state.js';

export const LEVELS = ['ws', 'sse', 'poll'];
const PING_MS = 15000;
const DEAD_MS = 45000;
const HEALTHY_MS = 10000; // a connection that lasted this long was healthy: a blip, not a failure
const OPEN_MS = 10000; // a handshake that hangs (some proxies) counts as a failure

const conn = {
  level: 0, fails: 0, attempt: 0, token: 0, current: null, retryTimer: null, retryAt: 0,
  probe: null, everOk: [false, false, false], resyncAt: 0, noSince: false,
  pinned: -1, onChange: () => {}, onLive: () => {},
};

export const retryAt = () => conn.retryAt;
const isCurrent = (token) => token === conn.token;
const isLive = () => LEVELS.includes(state.transport);
const wsBase = () => `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;
const sinceQuery = () => (hasPosition() && !conn.noSince ? `?since=${encodeURIComponent(position())}` : '');

// Recent transport changes, for a person debugging in the console (and for tests).
export const transitions = [];

function setTransport(kind) {
  if (state.transport !== kind) {
    transitions.push({ kind, at: Date.now() });
    if (transitions.length > 100) transitions.shift();
  }
  state.transport = kind;
  conn.onChange();
}

// A gap or an epoch change needs a resync; rate-limited so a burst asks once.
function wantResync() {
  const now = Date.now();
  if (conn.resyncAt && now - conn.resyncAt < 3000) return false;
  conn.resyncAt = now;
  return true;
}

function receive(msg, via) {
  const result = handleMessage(msg, via);
  if (result === 'ok' && msg.type !== 'unchanged') {
    conn.resyncAt = 0;
    if (msg.type === 'snapshot') conn.noSince = false;
  }
  return result;
}

function stopCurrent() {
  clearTimeout(conn.retryTimer);
  conn.retryTimer = null;
  conn.retryAt = 0;
  if (conn.current) { try { conn.current.close(); } catch (e) { /* already closed */ } }
  conn.current = null;
}

function start(level) {
  stopCurrent();
  conn.level = level;
  const token = ++conn.token;
  const open = { ws: openWs, sse: openSse, poll: openPoll }[LEVELS[level]];
  try { conn.current = open(token); } catch (e) { fail(token, false); }
}

function live(kind, token) {
  if (!isCurrent(token)) return;
  conn.everOk[conn.level] = true; // fails/attempt reset only once it proves healthy (see fail)
  setTransport(kind);
  conn.onLive(kind);
}

// A transport ended. Healthy = it had worked for a while; else it counts
// toward stepping down: once if that transport never worked here, after
// three failures in a row if it did (a blip should not cost the WebSocket).
function fail(token, healthy) {
  if (!isCurrent(token)) return;
  stopCurrent();
  conn.token++;
  conn.fails = healthy ? 1 : conn.fails + 1;
  conn.attempt = healthy ? 1 : conn.attempt + 1;
  const limit = conn.everOk[conn.level] ? 3 : 1;
  if (!healthy && conn.fails >= limit && conn.pinned < 0) {
    conn.fails = 0;
    conn.level = (conn.level + 1) % LEVELS.length;
  }
  const base = Math.min(30000, 500 * 2 ** Math.min(conn.attempt - 1, 8));
  const delay = Math.round(base / 2 + Math.random() * base / 2);
  conn.retryAt = Date.now() + delay;
  conn.retryTimer = setTimeout(() => start(conn.level), delay);
  // A blip after a healthy run shows as reconnecting; anything else is offline.
  setTransport(healthy ? 'connecting' : 'offline');
}

function openWs(token) {
  return wireWs(new WebSocket(wsBase() + sinceQuery()), token, false);
}

function wireWs(ws, token, alreadyOpen) {
  let openedAt = 0;
  let pinger = null;
  let lastRx = Date.now();
  const healthy = () => openedAt > 0 && Date.now() - openedAt > HEALTHY_MS;
  const opening = alreadyOpen ? null : setTimeout(() => fail(token, false), OPEN_MS);
  const onOpen = () => {
    clearTimeout(opening);
    openedAt = Date.now();
    lastRx = openedAt;
    pinger = setInterval(ping, PING_MS);
    live('ws', token);
  };
  const ping = () => {
    if (Date.now() - lastRx > DEAD_MS) { fail(token, healthy()); return; }
    if (ws.readyState === WebSocket.OPEN) ws.send('{"type":"ping"}');
  };
  ws.onopen = () => { if (isCurrent(token)) onOpen(); };
  ws.onmessage = (ev) => {
    if (!isCurrent(token)) return;
    lastRx = Date.now();
    let msg;
    try { msg = JSON.parse(ev.data); } catch (e) { return; }
    if (receive(msg, 'ws') === 'resync' && wantResync()) {
      const resume = hasPosition() ? { type: 'resume', epoch: state.epoch, seq: state.seq } : { type: 'resume' };
      ws.send(JSON.stringify(resume));
    }
  };
  ws.onclose = (ev) => {
    clearTimeout(opening);
    clearInterval(pinger);
    if (ev.code === 1008) conn.noSince = true; // the server refused our position: ask for a snapshot
    if (isCurrent(token)) fail(token, healthy());
  };
  if (alreadyOpen) onOpen();
  return {
    close() {
      clearTimeout(opening);
      clearInterval(pinger);
      ws.onopen = ws.onmessage = ws.onclose = null;
      if (ws.readyState <= WebSocket.OPEN) ws.close(1000, 'client closing');
    },
  };
}

function openSse(token) {
  const es = new EventSource(`/api/pnl/stream${sinceQuery()}`);
  let openedAt = 0;
  const opening = setTimeout(() => fail(token, false), OPEN_MS);
  es.onopen = () => {
    clearTimeout(opening);
    if (isCurrent(token)) { openedAt = Date.now(); live('sse', token); }
  };
  const onEvent = (ev) => {
    if (!isCurrent(token)) return;
    let msg;
    try { msg = JSON.parse(ev.data); } catch (e) { return; }
    // Reopen with ?since= our position: Last-Event-ID may already be past a skipped delta.
    if (receive(msg, 'sse') === 'resync' && wantResync()) start(conn.level);
  };
  es.addEventListener('snapshot', onEvent);
  es.addEventListener('delta', onEvent);
  es.addEventListener('error', () => {
    clearTimeout(opening);
    // Take over reconnecting ourselves so that backoff and fallback apply.
    if (isCurrent(token)) fail(token, openedAt > 0 && Date.now() - openedAt > HEALTHY_MS);
  });
  return { close() { clearTimeout(opening); es.close(); } };
}

export async function getJson(url, signal, timeoutMs) {
  const ctl = new AbortController();
  const abort = () => ctl.abort();
  if (signal) signal.addEventListener('abort', abort);
  const timer = setTimeout(abort, timeoutMs);
  try {
    const res = await fetch(url, { signal: ctl.signal, cache: 'no-store', headers: { Accept: 'application/json' } });
    // 401: no session (it expired, or its token was withdrawn): sign in again.
    if (res.status === 401) location.assign('/login');
    if (!res.ok) { const err = new Error(`HTTP ${res.status}`); err.status = res.status; throw err; }
    return await res.json();
  } finally {
    clearTimeout(timer);
    if (signal) signal.removeEventListener('abort', abort);
  }
}

const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

function openPoll(token) {
  const ctl = new AbortController();
  (async () => {
    let needSnapshot = !hasPosition() || conn.noSince;
    let ok = 0;
    while (isCurrent(token)) {
      const began = Date.now();
      let msg;
      try {
        msg = needSnapshot
          ? await getJson('/api/pnl/current', ctl.signal, 10000)
          : await getJson(`/api/pnl/changes?since=${encodeURIComponent(position())}&wait=25`, ctl.signal, 35000);
      } catch (e) {
        if (!isCurrent(token)) return;
        if (e.status === 400 && !needSnapshot) { needSnapshot = true; continue; }
        fail(token, ok > 1);
        return;
      }
      if (!isCurrent(token)) return;
      if (ok++ === 0) live('poll', token);
      needSnapshot = receive(msg, 'poll') === 'resync';
      if ((msg && msg.type === 'unchanged') || needSnapshot) {
        if (Date.now() - began < 1000) await sleep(2000);
      }
    }
  })();
  return { close() { ctl.abort(); } };
}

// While on SSE or polling, try to get back to a WebSocket.
function probeWs() {
  if (conn.level === 0 || conn.pinned >= 0 || conn.probe || !isLive() || document.hidden) return;
  let ws;
  try { ws = new WebSocket(wsBase() + sinceQuery()); } catch (e) { return; }
  conn.probe = ws;
  const timer = setTimeout(() => { ws.onclose = null; ws.close(); conn.probe = null; }, 5000);
  ws.onopen = () => {
    clearTimeout(timer);
    conn.probe = null;
    stopCurrent();
    conn.level = 0;
    conn.fails = 0;
    const token = ++conn.token;
    conn.current = wireWs(ws, token, true);
  };
  ws.onclose = () => { clearTimeout(timer); conn.probe = null; };
}

// The network or the tab came back: retry now rather than at the end of a long backoff.
function reconnectNow() {
  if (isLive()) { probeWs(); return; }
  conn.attempt = 0;
  start(conn.level);
}

// pinned: -1, or the index of the one transport to use (no fallback, no step-up).
export function connect({ pinned = -1, stepUpMs = 30000, onChange, onLive }) {
  Object.assign(conn, { pinned, onChange, onLive });
  start(Math.max(pinned, 0));
  setInterval(probeWs, stepUpMs);
  window.addEventListener('online', reconnectNow);
  document.addEventListener('visibilitychange', () => { if (!document.hidden) reconnectNow(); });
}
