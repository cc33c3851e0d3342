// JSON reads for the views: the body comes back with its status, errors
// included ({error, message}), so a view can say what the server said.

export async function apiGet(url, { signal, timeoutMs = 15000 } = {}) {
  const ctl = new AbortController();
  const abort = () => ctl.abort();
  if (signal) signal.addEventListener('abort', abort);
  const timer = setTimeout(abort, timeoutMs);
  try {
    const res = await fetch(url, { signal: ctl.signal, cache: 'no-store', headers: { Accept: 'application/json' } });
    if (res.status === 401) location.assign('/login'); // the session ended: sign in again
    let body = null;
    try { body = await res.json(); } catch (e) { body = null; }
    return { status: res.status, ok: res.ok, body };
  } catch (e) {
    return { status: 0, ok: false, body: { error: 'unreachable', message: ctl.signal.aborted && !(signal && signal.aborted) ? 'the server did not answer in time' : 'the server could not be reached' } };
  } finally {
    clearTimeout(timer);
    if (signal) signal.removeEventListener('abort', abort);
  }
}

// "position_gone: …" from an error body, whatever its shape ({error, message} or {error, detail}).
export function errorText({ status, body }) {
  const b = body && typeof body === 'object' ? body : {};
  const msg = b.message || b.detail || '';
  return `${b.error || `HTTP ${status}`}${msg ? `: ${msg}` : ''}`;
}
