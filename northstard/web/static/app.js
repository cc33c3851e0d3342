// northstard dashboard: live P&L over WebSocket, falling back to SSE, then polling.
// Money arrives as decimal strings and is formatted on its digits, never via floats.
(() => {
  'use strict';

  const STORE_KEY = 'northstard.last';
  const LEVELS = ['ws', 'sse', 'poll'];
  const LABELS = {
    connecting: 'Connecting', offline: 'Offline',
    ws: 'Live · WebSocket', sse: 'Live · SSE', poll: 'Live · Polling',
  };
  const SPAN_MS = 3600000;
  const BUCKET_MS = 60000;
  const STEP_UP_MS = 30000;
  const PING_MS = 15000;
  const DEAD_MS = 45000;
  // ?transport=ws|sse|poll pins one transport (debugging, tests): no fallback, no step-up.
  const PINNED = LEVELS.indexOf(new URLSearchParams(location.search).get('transport'));

  const state = { epoch: null, seq: 0, doc: null, ts: null, transport: 'connecting' };
  window.northstard = { state };

  // ---------- decimal strings ----------

  const DEC_RE = /^([+-])?(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d{1,4}))?$/;

  function parseDec(value) {
    if (typeof value !== 'string' && typeof value !== 'number') return null;
    const m = DEC_RE.exec(String(value).trim());
    if (!m || (!m[2] && !m[3])) return null;
    let int = m[2] || '';
    let frac = m[3] || '';
    const exp = m[4] ? parseInt(m[4], 10) : 0;
    if (exp > 0) {
      frac = frac.padEnd(exp, '0');
      int += frac.slice(0, exp);
      frac = frac.slice(exp);
    } else if (exp < 0) {
      int = int.padStart(-exp, '0');
      frac = int.slice(int.length + exp) + frac;
      int = int.slice(0, int.length + exp);
    }
    int = int.replace(/^0+/, '');
    const zero = !/[1-9]/.test(int + frac);
    return { neg: m[1] === '-' && !zero, zero, int, frac };
  }

  function incDigits(digits) {
    const a = digits.split('');
    for (let i = a.length - 1; i >= 0; i--) {
      if (a[i] !== '9') { a[i] = String(Number(a[i]) + 1); return a.join(''); }
      a[i] = '0';
    }
    return '1' + a.join('');
  }

  // Round half-even to `places` decimals on the digit string.
  function roundDec(d, places) {
    const frac = d.frac.padEnd(places + 1, '0');
    let keep = (d.int || '0') + frac.slice(0, places);
    const rest = frac.slice(places);
    const first = Number(rest[0]);
    const tail = /[1-9]/.test(rest.slice(1));
    const odd = Number(keep[keep.length - 1]) % 2 === 1;
    if (first > 5 || (first === 5 && (tail || odd))) keep = incDigits(keep);
    const cut = keep.length - places;
    return { int: keep.slice(0, cut).replace(/^0+(?=\d)/, '') || '0', frac: keep.slice(cut) };
  }

  const group = (int) => int.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  const SYMBOLS = { USD: '$', EUR: '€', GBP: '£', JPY: '¥' };
  const symbol = () => {
    const code = (state.doc && state.doc.currency) || 'USD';
    return SYMBOLS[code] || `${code} `;
  };

  function fmtMoney(value, opts = {}) {
    const d = parseDec(value);
    if (!d) return '—';
    const r = roundDec(d, opts.places === undefined ? 2 : opts.places);
    const sign = d.neg ? '-' : (opts.plus && !d.zero ? '+' : '');
    return `${sign}${opts.symbol === undefined ? symbol() : opts.symbol}${group(r.int)}${r.frac ? '.' + r.frac : ''}`;
  }

  function fmtPct(value) {
    const d = parseDec(value);
    if (!d) return '—';
    const r = roundDec(d, 1);
    return `${d.neg ? '-' : ''}${group(r.int)}.${r.frac}%`;
  }

  const signOf = (value) => {
    const d = parseDec(value);
    return !d || d.zero ? 0 : (d.neg ? -1 : 1);
  };

  function cmpDec(a, b) {
    const x = parseDec(a) || parseDec('0');
    const y = parseDec(b) || parseDec('0');
    const sx = x.zero ? 0 : (x.neg ? -1 : 1);
    const sy = y.zero ? 0 : (y.neg ? -1 : 1);
    if (sx !== sy) return sx - sy;
    let c = x.int.length - y.int.length;
    if (!c) c = x.int < y.int ? -1 : (x.int > y.int ? 1 : 0);
    if (!c) {
      const n = Math.max(x.frac.length, y.frac.length);
      const fx = x.frac.padEnd(n, '0');
      const fy = y.frac.padEnd(n, '0');
      c = fx < fy ? -1 : (fx > fy ? 1 : 0);
    }
    return sx < 0 ? -c : c;
  }

  // ---------- state and protocol ----------

  function mergePatch(target, patch) {
    if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) return patch;
    const out = target && typeof target === 'object' && !Array.isArray(target) ? target : {};
    for (const [key, value] of Object.entries(patch)) {
      if (key === '__proto__') continue;
      if (value === null) delete out[key];
      else out[key] = mergePatch(out[key], value);
    }
    return out;
  }

  const position = () => `${state.epoch}:${state.seq}`;
  const hasPosition = () => state.epoch !== null && state.doc !== null;

  function applySnapshot(m) {
    if (typeof m.epoch !== 'string' || !Number.isInteger(m.seq) || !m.data || typeof m.data !== 'object') return 'ignored';
    // A snapshot is authoritative even if older: the server could not serve our position.
    Object.assign(state, { epoch: m.epoch, seq: m.seq, doc: m.data, ts: m.ts || Date.now() });
    conn.resyncAt = 0;
    conn.noSince = false;
    afterApply(m.ts, true);
    return 'ok';
  }

  function applyDelta(m) {
    if (m.epoch !== state.epoch || !state.doc) return 'resync';
    if (!Number.isInteger(m.seq) || m.seq <= state.seq) return 'ignored';
    if (!Number.isInteger(m.prev) || m.prev > state.seq) return 'resync';
    state.doc = mergePatch(state.doc, m.patch || {});
    state.seq = m.seq;
    state.ts = m.ts || Date.now();
    conn.resyncAt = 0;
    afterApply(m.ts, false);
    return 'ok';
  }

  function handleMessage(m) {
    if (!m || typeof m !== 'object') return 'ignored';
    switch (m.type) {
      case 'snapshot': return applySnapshot(m);
      case 'delta': return applyDelta(m);
      case 'unchanged': return m.epoch === state.epoch && state.doc ? 'ok' : 'resync';
      case 'error': showNotice(`Server: ${m.error || 'error'}${m.detail ? ' — ' + m.detail : ''}`); return 'ok';
      default: return 'ignored';
    }
  }

  // A gap or an epoch change needs a resync; rate-limited so a burst asks once.
  function wantResync() {
    const now = Date.now();
    if (conn.resyncAt && now - conn.resyncAt < 3000) return false;
    conn.resyncAt = now;
    return true;
  }

  function afterApply(ts, isSnapshot) {
    const net = state.doc && state.doc.net_pnl;
    if (net !== undefined) pushSpark(ts || Date.now(), net);
    if (isSnapshot) { saveNow(); maybeReloadHistory(); } else saveSoon();
    scheduleRender();
  }

  // ---------- persistence ----------

  let saveTimer = null;
  function saveNow() {
    clearTimeout(saveTimer);
    saveTimer = null;
    if (!state.doc) return;
    const msg = { type: 'snapshot', epoch: state.epoch, seq: state.seq, ts: state.ts, data: state.doc };
    try { localStorage.setItem(STORE_KEY, JSON.stringify(msg)); } catch (e) { /* storage full or denied */ }
  }
  function saveSoon() { if (!saveTimer) saveTimer = setTimeout(saveNow, 1000); }

  function loadSaved() {
    try {
      const m = JSON.parse(localStorage.getItem(STORE_KEY) || 'null');
      if (m && m.type === 'snapshot' && typeof m.epoch === 'string' && Number.isInteger(m.seq) && m.data && typeof m.data === 'object') {
        Object.assign(state, { epoch: m.epoch, seq: m.seq, doc: m.data, ts: m.ts || null, transport: 'offline' });
        return true;
      }
    } catch (e) { /* corrupt entry: ignore */ }
    return false;
  }

  // ---------- transports ----------

  const conn = {
    level: 0, fails: 0, attempt: 0, token: 0, current: null, retryTimer: null, retryAt: 0,
    probe: null, everOk: [false, false, false], resyncAt: 0, noSince: false,
  };
  const isCurrent = (token) => token === conn.token;
  const wsBase = () => `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;
  const sinceQuery = () => (hasPosition() && !conn.noSince ? `?since=${encodeURIComponent(position())}` : '');

  function setTransport(kind) {
    state.transport = kind;
    renderBadge();
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
    maybeReloadHistory();
  }

  // A transport ended. Healthy = it had worked for a while; else it counts toward stepping down.
  function fail(token, healthy) {
    if (!isCurrent(token)) return;
    stopCurrent();
    conn.token++;
    conn.fails = healthy ? 1 : conn.fails + 1;
    conn.attempt = healthy ? 1 : conn.attempt + 1;
    const limit = conn.everOk[conn.level] ? 3 : 1;
    if (!healthy && conn.fails >= limit && PINNED < 0) {
      conn.fails = 0;
      conn.level = (conn.level + 1) % LEVELS.length;
    }
    setTransport('offline');
    const base = Math.min(30000, 500 * 2 ** Math.min(conn.attempt - 1, 8));
    const delay = Math.round(base / 2 + Math.random() * base / 2);
    conn.retryAt = Date.now() + delay;
    conn.retryTimer = setTimeout(() => start(conn.level), delay);
  }

  function openWs(token) {
    return wireWs(new WebSocket(wsBase() + sinceQuery()), token, false);
  }

  function wireWs(ws, token, alreadyOpen) {
    let openedAt = alreadyOpen ? Date.now() : 0;
    let got = false;
    let pinger = null;
    let lastRx = Date.now();
    const healthy = () => openedAt > 0 && (got || Date.now() - openedAt > 10000);
    const onOpen = () => {
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
      if (msg && msg.type !== 'pong') got = true;
      if (handleMessage(msg) === 'resync' && wantResync()) {
        const resume = hasPosition() ? { type: 'resume', epoch: state.epoch, seq: state.seq } : { type: 'resume' };
        ws.send(JSON.stringify(resume));
      }
    };
    ws.onclose = (ev) => {
      clearInterval(pinger);
      if (ev.code === 1008) conn.noSince = true; // the server refused our position: ask for a snapshot
      if (isCurrent(token)) fail(token, healthy());
    };
    if (alreadyOpen) onOpen();
    return {
      close() {
        clearInterval(pinger);
        ws.onopen = ws.onmessage = ws.onclose = null;
        if (ws.readyState <= WebSocket.OPEN) ws.close(1000, 'client closing');
      },
    };
  }

  function openSse(token) {
    const es = new EventSource(`/api/pnl/stream${sinceQuery()}`);
    let openedAt = 0;
    let got = false;
    es.onopen = () => { if (isCurrent(token)) { openedAt = Date.now(); live('sse', token); } };
    const onEvent = (ev) => {
      if (!isCurrent(token)) return;
      let msg;
      try { msg = JSON.parse(ev.data); } catch (e) { return; }
      got = true;
      // Reopen with ?since= our position: Last-Event-ID may already be past a skipped delta.
      if (handleMessage(msg) === 'resync' && wantResync()) start(conn.level);
    };
    es.addEventListener('snapshot', onEvent);
    es.addEventListener('delta', onEvent);
    es.addEventListener('error', (ev) => {
      if (!isCurrent(token)) return;
      if (ev.data) { onEvent(ev); return; }
      // Take over reconnecting ourselves so backoff and fallback apply.
      fail(token, openedAt > 0 && (got || Date.now() - openedAt > 10000));
    });
    return { close() { es.close(); } };
  }

  async function getJson(url, signal, timeoutMs) {
    const ctl = new AbortController();
    const abort = () => ctl.abort();
    signal.addEventListener('abort', abort);
    const timer = setTimeout(abort, timeoutMs);
    try {
      const res = await fetch(url, { signal: ctl.signal, cache: 'no-store', headers: { Accept: 'application/json' } });
      if (!res.ok) { const err = new Error(`HTTP ${res.status}`); err.status = res.status; throw err; }
      return await res.json();
    } finally {
      clearTimeout(timer);
      signal.removeEventListener('abort', abort);
    }
  }

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  function openPoll(token) {
    const ctl = new AbortController();
    (async () => {
      let needSnapshot = !hasPosition();
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
        const result = handleMessage(msg);
        needSnapshot = result === 'resync';
        if ((msg && msg.type === 'unchanged') || needSnapshot) {
          if (Date.now() - began < 1000) await sleep(2000);
        }
      }
    })();
    return { close() { ctl.abort(); } };
  }

  // While on SSE or polling, periodically try to get back to a WebSocket.
  function probeWs() {
    if (conn.level === 0 || PINNED >= 0 || conn.probe || !LEVELS.includes(state.transport) || document.hidden) return;
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

  function reconnectNow() {
    if (LEVELS.includes(state.transport)) return;
    conn.attempt = 0;
    start(conn.level);
  }

  // ---------- history sparkline ----------

  const spark = { points: [], loadedAt: 0 };

  function pushSpark(ts, net) {
    const t = ts - (ts % BUCKET_MS);
    const pts = spark.points;
    const last = pts[pts.length - 1];
    if (last && last.t === t) { last.close = net; } else if (!last || t > last.t) { pts.push({ t, open: net, close: net }); }
    trimSpark();
    scheduleRender();
  }

  function trimSpark() {
    const last = spark.points[spark.points.length - 1];
    if (!last) return;
    const cutoff = last.t - SPAN_MS;
    while (spark.points.length && spark.points[0].t < cutoff) spark.points.shift();
  }

  async function loadHistory() {
    spark.loadedAt = Date.now();
    const to = new Date();
    const from = new Date(to.getTime() - SPAN_MS);
    const url = `/api/pnl/history?from=${encodeURIComponent(from.toISOString())}&to=${encodeURIComponent(to.toISOString())}&resolution=1m`;
    let body;
    try { body = await getJson(url, new AbortController().signal, 15000); } catch (e) { return; }
    const hist = (body.buckets || [])
      .map((b) => ({ t: Number.isFinite(b.start_ms) ? b.start_ms : Date.parse(b.start), open: b.net && b.net.open, close: b.net && b.net.close }))
      .filter((p) => Number.isFinite(p.t) && parseDec(p.close));
    const lastT = hist.length ? hist[hist.length - 1].t : -Infinity;
    // Live points for the newest bucket(s) are fresher than the stored history.
    const newer = spark.points.filter((p) => p.t >= lastT);
    if (newer.length && newer[0].t === lastT) newer[0].open = hist.pop().open;
    spark.points = hist.concat(newer);
    trimSpark();
    scheduleRender();
  }

  function maybeReloadHistory() {
    if (Date.now() - spark.loadedAt > 30000) loadHistory();
  }

  const SVG_NS = 'http://www.w3.org/2000/svg';
  function svgEl(tag, attrs) {
    const el = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
    return el;
  }

  function drawSpark() {
    const svg = byId('spark');
    const w = Math.max(100, Math.round(svg.clientWidth || 600));
    const h = Math.max(60, Math.round(svg.clientHeight || 160));
    svg.setAttribute('viewBox', `0 0 ${w} ${h}`);
    svg.replaceChildren();
    const pts = spark.points.map((p) => ({ t: p.t, v: Number(p.close), close: p.close })).filter((p) => Number.isFinite(p.v));
    // The first bucket's open, at the bucket's start, anchors the line (and gives a 1-bucket history a segment).
    const head = spark.points.find((p) => Number.isFinite(Number(p.close)));
    if (head && parseDec(head.open)) pts.unshift({ t: head.t - BUCKET_MS / 2, v: Number(head.open), close: head.open });
    if (pts.length < 2) {
      svg.append(svgEl('text', { x: w / 2, y: h / 2, class: 'spark-empty', 'text-anchor': 'middle' }));
      svg.lastChild.textContent = 'Not enough history yet';
      byId('spark-range').textContent = '';
      return;
    }
    const x1 = Math.max(pts[pts.length - 1].t + BUCKET_MS, Date.now() - (Date.now() % BUCKET_MS) + BUCKET_MS);
    const x0 = x1 - SPAN_MS;
    let lo = pts[0];
    let hi = pts[0];
    for (const p of pts) { if (p.v < lo.v) lo = p; if (p.v > hi.v) hi = p; }
    const span = hi.v - lo.v || Math.max(1, Math.abs(hi.v) * 0.01);
    const vMin = lo.v - span * 0.12;
    const vMax = (hi.v === lo.v ? lo.v + span : hi.v) + span * 0.12;
    const pad = 6;
    const X = (t) => ((Math.max(t, x0) - x0) / SPAN_MS) * w;
    const Y = (v) => pad + (1 - (v - vMin) / (vMax - vMin)) * (h - 2 * pad);
    const coords = pts.map((p) => [X(p.t + BUCKET_MS / 2), Y(p.v)]);
    const line = coords.map(([x, y], i) => `${i ? 'L' : 'M'}${x.toFixed(1)},${y.toFixed(1)}`).join('');
    const tone = pts[pts.length - 1].v < 0 ? 'neg' : 'pos';
    svg.setAttribute('class', `spark ${tone}`);
    if (vMin < 0 && vMax > 0) {
      svg.append(svgEl('line', { x1: 0, x2: w, y1: Y(0).toFixed(1), y2: Y(0).toFixed(1), class: 'spark-zero' }));
    }
    const first = coords[0];
    const last = coords[coords.length - 1];
    svg.append(svgEl('path', { d: `${line}L${last[0].toFixed(1)},${h}L${first[0].toFixed(1)},${h}Z`, class: 'spark-area' }));
    svg.append(svgEl('path', { d: line, class: 'spark-line' }));
    svg.append(svgEl('circle', { cx: last[0].toFixed(1), cy: last[1].toFixed(1), r: 3.5, class: 'spark-dot' }));
    byId('spark-range').textContent = `low ${fmtMoney(lo.close)} · high ${fmtMoney(hi.close)}`;
    svg.setAttribute('aria-label', `Net P&L over the last hour, ${pts.length} one-minute points, from ${fmtMoney(pts[0].close)} to ${fmtMoney(pts[pts.length - 1].close)}`);
  }

  // ---------- rendering ----------

  const byId = (id) => document.getElementById(id);
  const byTest = (id) => document.querySelector(`[data-testid="${id}"]`);
  const get = (obj, ...keys) => keys.reduce((o, k) => (o && typeof o === 'object' ? o[k] : undefined), obj);
  const toneClass = (value) => ({ 1: 'pos', '-1': 'neg', 0: 'zero' })[signOf(value)];

  const timeFmt = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' });
  const dateTimeFmt = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit' });
  function localTime(value) {
    const d = new Date(value);
    if (value === undefined || value === null || Number.isNaN(d.getTime())) return '—';
    return (new Date().toDateString() === d.toDateString() ? timeFmt : dateTimeFmt).format(d);
  }

  function setText(el, text, tone) {
    if (!el) return;
    if (el.textContent !== text) el.textContent = text;
    if (tone !== undefined) {
      el.classList.remove('pos', 'neg', 'zero');
      if (tone) el.classList.add(tone);
    }
  }

  const setMoney = (id, value, opts = {}) => setText(byTest(id), fmtMoney(value, opts), opts.tone ? toneClass(value) : undefined);

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function renderBars(id, map) {
    const list = byId(id);
    const entries = Object.entries(map || {}).sort((a, b) => cmpDec(b[1], a[1]) || a[0].localeCompare(b[0]));
    if (!entries.length) { list.replaceChildren(el('li', 'empty', 'None')); return; }
    const top = Math.max(...entries.map(([, v]) => Math.abs(Number(v)) || 0), 1e-9);
    list.replaceChildren(...entries.map(([name, value]) => {
      const li = el('li');
      li.dataset.name = name;
      const bar = el('span', 'bar');
      bar.style.width = `${Math.min(100, (Math.abs(Number(value)) / top) * 100).toFixed(1)}%`;
      li.append(el('span', 'bar-name', name), el('span', 'bar-value', fmtMoney(value)), el('span', 'bar-track'));
      li.lastChild.append(bar);
      return li;
    }));
  }

  function renderAgents(agents) {
    const body = byId('agents-body');
    const rows = Object.entries(agents || {}).sort((a, b) => cmpDec(get(b[1], 'net'), get(a[1], 'net')) || a[0].localeCompare(b[0]));
    if (!rows.length) {
      const td = el('td', 'empty', 'No agent attribution yet');
      td.colSpan = 5;
      body.replaceChildren(el('tr'));
      body.firstChild.append(td);
      return;
    }
    body.replaceChildren(...rows.map(([name, a]) => {
      const tr = el('tr');
      tr.dataset.agent = name;
      const th = el('th', null, name);
      th.scope = 'row';
      tr.append(th);
      for (const key of ['trading', 'revenue', 'costs', 'net']) {
        const td = el('td', key === 'net' ? `num strong ${toneClass(get(a, key))}` : 'num', fmtMoney(get(a, key)));
        td.dataset.testid = `agent-${name}-${key}`;
        td.dataset.label = key[0].toUpperCase() + key.slice(1);
        tr.append(td);
      }
      return tr;
    }));
  }

  function sourceStatus(s) {
    const status = ['ok', 'stale', 'failing'].includes(s.status) ? s.status : 'failing';
    return status === 'ok' && s.stale === true ? 'stale' : status;
  }

  function renderSources(sources) {
    const body = byId('sources-body');
    const names = Object.keys(sources || {}).sort();
    const counts = { ok: 0, stale: 0, failing: 0 };
    body.replaceChildren(...names.map((name) => {
      const s = sources[name] || {};
      const status = sourceStatus(s);
      counts[status]++;
      const tr = el('tr', `src-${status}`);
      tr.dataset.testid = `source-${name}`;
      tr.dataset.status = status;
      const th = el('th', null, name);
      th.scope = 'row';
      const pill = el('span', `pill pill-${status}`, status);
      pill.setAttribute('aria-label', `status ${status}`);
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
    }));
    if (!names.length) {
      const td = el('td', 'empty', 'No sources reported');
      td.colSpan = 5;
      body.replaceChildren(el('tr'));
      body.firstChild.append(td);
    }
    const summary = names.length ? `${counts.ok} of ${names.length} ok` + (counts.stale ? ` · ${counts.stale} stale` : '') + (counts.failing ? ` · ${counts.failing} failing` : '') : '';
    setText(byId('sources-summary'), summary);
  }

  function renderDoc() {
    const d = state.doc;
    if (!d) return;
    const net = byTest('net-pnl');
    setText(net, fmtMoney(d.net_pnl), signOf(d.net_pnl) < 0 ? 'neg' : 'pos');
    setMoney('change-since-midnight', get(d, 'change', 'since_midnight'), { plus: true, tone: true });
    setMoney('change-since-previous', get(d, 'change', 'since_previous'), { plus: true, tone: true });
    const day = get(d, 'change', 'day');
    byId('chg-mid-label').title = day ? `Since ${day} 00:00 UTC` : '';
    for (const k of ['realized', 'unrealized', 'fees', 'total', 'balance']) setMoney(`trading-${k}`, get(d, 'trading', k), { tone: k !== 'balance' && k !== 'fees' });
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
    renderBars('costs-by-category', get(d, 'costs', 'by_category'));
    renderBars('costs-by-model', get(d, 'costs', 'by_model'));
    renderAgents(d.agents);
    renderSources(d.sources);
    const asOf = byId('as-of');
    setText(asOf, localTime(d.as_of));
    if (d.as_of) asOf.dateTime = d.as_of;
    setText(byId('currency'), d.currency || 'USD');
    setText(byId('currency-foot'), d.currency || 'USD');
    setText(byId('position'), position());
    document.title = `${fmtMoney(d.net_pnl)} · northstard P&L`;
  }

  function ago(ms) {
    const s = Math.max(0, Math.round(ms / 1000));
    if (s < 60) return `${s}s`;
    if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
    return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  }

  function renderBadge() {
    const badge = byTest('transport');
    const kind = state.transport;
    const isLive = LEVELS.includes(kind);
    setText(badge, LABELS[kind] || 'Offline');
    badge.className = `badge badge-${isLive ? 'live' : kind}`;
    document.body.classList.toggle('is-offline', !isLive && !!state.doc);
    let age = '';
    if (isLive && state.ts) age = `updated ${ago(Date.now() - state.ts)} ago`;
    else if (!isLive && state.ts) age = `as of ${localTime(state.ts)}`;
    if (!isLive && conn.retryAt) age += `${age ? ' · ' : ''}retrying in ${ago(conn.retryAt - Date.now())}`;
    else if (!isLive) age += `${age ? ' · ' : ''}connecting…`;
    setText(byTest('data-age'), age);
    const banner = byId('banner');
    const offlineText = state.doc && !isLive ? `Offline — showing last known figures from ${state.ts ? localTime(state.ts) : 'an earlier session'}.` : '';
    const text = offlineText || (notice.until > Date.now() ? notice.text : '');
    setText(banner, text);
    banner.hidden = !text;
    banner.className = `banner${offlineText ? ' banner-offline' : ''}`;
  }

  const notice = { text: '', until: 0 };
  function showNotice(text) {
    notice.text = text;
    notice.until = Date.now() + 10000;
    renderBadge();
  }

  let renderQueued = false;
  function scheduleRender() {
    if (renderQueued) return;
    renderQueued = true;
    const run = () => { if (renderQueued) { renderQueued = false; renderAll(); } };
    requestAnimationFrame(run);
    setTimeout(run, 200);
  }

  function renderAll() {
    renderDoc();
    drawSpark();
    renderBadge();
  }

  // ---------- boot ----------

  function boot() {
    window.northstard.format = { fmtMoney, fmtPct, roundDec, parseDec, mergePatch, cmpDec };
    if (loadSaved() && state.doc.net_pnl !== undefined) pushSpark(state.ts || Date.now(), state.doc.net_pnl);
    renderAll();
    loadHistory();
    start(Math.max(PINNED, 0));
    setInterval(renderBadge, 1000);
    setInterval(probeWs, STEP_UP_MS);
    if (window.ResizeObserver) new ResizeObserver(() => scheduleRender()).observe(byId('spark'));
    window.addEventListener('online', reconnectNow);
    window.addEventListener('pagehide', saveNow);
    document.addEventListener('visibilitychange', () => { if (!document.hidden) reconnectNow(); });
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', boot);
  else boot();
})();
