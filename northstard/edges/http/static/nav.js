// The hash router: "#/" shows the live page (main), any other route the
// view section, rendered by views.js (loaded on first use). Back/forward
// are the browser's (each route is a history entry); Escape goes back; focus
// moves to the view's heading, and back to the figure that opened it.

import { parseRoute } from './routes.js';

const nav = { route: { view: 'live', params: {} }, inApp: false, opener: null, abort: null, onLive: null };

export const currentRoute = () => nav.route;

function focusOpener() {
  const figure = nav.opener;
  const target = figure && document.querySelector(`[data-figure="${CSS.escape(figure)}"]`);
  if (target) target.focus({ preventScroll: false });
}

async function show() {
  const route = parseRoute(location.hash);
  const main = document.getElementById('main');
  const view = document.getElementById('view');
  const wasLive = nav.route.view === 'live';
  nav.route = route;
  if (nav.abort) nav.abort.abort();
  nav.abort = null;
  for (const link of document.querySelectorAll('[data-nav]')) {
    if (link.dataset.nav === route.view) link.setAttribute('aria-current', 'page'); else link.removeAttribute('aria-current');
  }
  if (route.view === 'live') {
    view.hidden = true;
    view.replaceChildren();
    main.hidden = false;
    if (!wasLive) focusOpener();
    if (nav.onLive) nav.onLive();
    return;
  }
  if (wasLive) {
    const active = document.activeElement;
    nav.opener = active && active.dataset ? active.dataset.figure || null : null;
  }
  main.hidden = true;
  view.hidden = false;
  const ctl = new AbortController();
  nav.abort = ctl;
  if (!document.getElementById('views-css')) {
    document.head.append(Object.assign(document.createElement('link'), { id: 'views-css', rel: 'stylesheet', href: '/static/views.css' }));
  }
  const { RENDERERS } = await import('./views.js');
  if (ctl.signal.aborted) return;
  const done = RENDERERS[route.view](view, route.params, ctl.signal);
  const title = view.querySelector('#view-title');
  if (title) title.focus();
  await done;
  const after = view.querySelector('#view-title');
  if (after && !view.contains(document.activeElement)) after.focus();
  window.scrollTo(0, 0);
}

function back() {
  if (nav.inApp) history.back();
  else location.hash = '#/';
}

export function startRouter({ onLive }) {
  nav.onLive = onLive;
  window.addEventListener('hashchange', () => { nav.inApp = true; show(); });
  document.addEventListener('keydown', (ev) => {
    if (ev.key !== 'Escape' || nav.route.view === 'live' || ev.defaultPrevented) return;
    ev.preventDefault();
    back();
  });
  return show();
}
