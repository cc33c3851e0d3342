// The client's copy of the stream: (epoch, seq, document), kept exact by the
// wire protocol (docs/protocol.md "Wire protocol"), persisted in localStorage.

const STORE_KEY = 'northstard.last';
const LOG_SIZE = 2000;
const LATENCY_SAMPLES = 15;

export const state = { epoch: null, seq: 0, doc: null, ts: null, transport: 'connecting', latency: null, savedAt: null };
// What was applied, in order ({type, prev, seq, via}): lets a test (or a person
// in the console) check that no change was skipped or applied twice.
export const applied = [];
const samples = [];
const listeners = [];

export const onApply = (fn) => listeners.push(fn);
export const position = () => `${state.epoch}:${state.seq}`;
export const hasPosition = () => state.epoch !== null && state.doc !== null;

// RFC 7396 JSON Merge Patch.
export function mergePatch(target, patch) {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) return patch;
  const out = target && typeof target === 'object' && !Array.isArray(target) ? target : {};
  for (const [key, value] of Object.entries(patch)) {
    if (key === '__proto__') continue;
    if (value === null) delete out[key];
    else out[key] = mergePatch(out[key], value);
  }
  return out;
}

function record(m, via) {
  applied.push({ type: m.type, prev: m.type === 'delta' ? m.prev : null, seq: m.seq, via });
  if (applied.length > LOG_SIZE) applied.splice(0, applied.length - LOG_SIZE);
  if (m.type === 'delta' && Number.isFinite(m.ts)) {
    // Delivery latency: now − the time the engine published the change (a
    // snapshot's ts is its last change's, possibly long ago: not a sample).
    samples.push(Math.max(0, Date.now() - m.ts));
    if (samples.length > LATENCY_SAMPLES) samples.shift();
    const sorted = [...samples].sort((a, b) => a - b);
    state.latency = sorted[Math.floor(sorted.length / 2)];
  }
}

function applySnapshot(m, via) {
  if (typeof m.epoch !== 'string' || !Number.isInteger(m.seq) || !m.data || typeof m.data !== 'object') return 'ignored';
  // A snapshot is authoritative even if older: the server could not serve our position.
  Object.assign(state, { epoch: m.epoch, seq: m.seq, doc: m.data, ts: m.ts || Date.now(), savedAt: null });
  record(m, via);
  return 'ok';
}

function applyDelta(m, via) {
  if (m.epoch !== state.epoch || !state.doc) return 'resync';
  if (!Number.isInteger(m.seq) || m.seq <= state.seq) return 'ignored';
  if (!Number.isInteger(m.prev) || m.prev > state.seq) return 'resync';
  state.doc = mergePatch(state.doc, m.patch || {});
  state.seq = m.seq;
  state.ts = m.ts || Date.now();
  state.savedAt = null;
  record(m, via);
  return 'ok';
}

// Apply one server message; 'ok', 'ignored', or 'resync' (we need a snapshot or a resume).
export function handleMessage(m, via) {
  if (!m || typeof m !== 'object') return 'ignored';
  let result;
  switch (m.type) {
    case 'snapshot': result = applySnapshot(m, via); break;
    case 'delta': result = applyDelta(m, via); break;
    case 'unchanged': return m.epoch === state.epoch && state.doc ? 'ok' : 'resync';
    case 'error': listeners.forEach((fn) => fn(m)); return 'ok';
    default: return 'ignored';
  }
  if (result === 'ok') {
    if (m.type === 'snapshot') saveNow(); else saveSoon();
    listeners.forEach((fn) => fn(m));
  }
  return result;
}

// ---------- persistence ----------

let saveTimer = null;
export function saveNow() {
  clearTimeout(saveTimer);
  saveTimer = null;
  if (!state.doc || state.savedAt) return;
  const msg = { type: 'snapshot', epoch: state.epoch, seq: state.seq, ts: state.ts, data: state.doc };
  try { localStorage.setItem(STORE_KEY, JSON.stringify(msg)); } catch (e) { return; }
  state.savedAt = Date.now();
}
function saveSoon() { if (!saveTimer) saveTimer = setTimeout(saveNow, 1000); }

// Before the first message: the last snapshot this browser saw (shown as offline).
export function loadSaved() {
  try {
    const m = JSON.parse(localStorage.getItem(STORE_KEY) || 'null');
    if (m && m.type === 'snapshot' && typeof m.epoch === 'string' && Number.isInteger(m.seq) && m.data && typeof m.data === 'object') {
      Object.assign(state, { epoch: m.epoch, seq: m.seq, doc: m.data, ts: m.ts || null, transport: 'offline', savedAt: Date.now() });
      return true;
    }
  } catch (e) { /* corrupt entry: ignore */ }
  return false;
}

export function readPref(key, fallback) {
  try { return localStorage.getItem(`northstard.${key}`) || fallback; } catch (e) { return fallback; }
}
export function writePref(key, value) {
  try { localStorage.setItem(`northstard.${key}`, value); } catch (e) { /* denied */ }
}
