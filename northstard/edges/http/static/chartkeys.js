// Chart buckets from the keyboard: each chart is one Tab stop (a roving
// tabindex over its bucket links); arrows, Home and End move along, Enter
// opens the bucket's records. Charts are redrawn on every change, so the
// bucket that had the focus gets it back after a redraw.

const KEYS = { ArrowLeft: -1, ArrowDown: -1, ArrowRight: 1, ArrowUp: 1, Home: -Infinity, End: Infinity };
const held = new Map(); // svg id -> the bucket start (data-t) the keyboard is on
let focused = null; // svg id whose bucket had the focus when it was redrawn away

const links = (svg) => [...svg.querySelectorAll('a.chart-link')];

function moveTo(svg, link) {
  for (const a of links(svg)) a.setAttribute('tabindex', a === link ? '0' : '-1');
  held.set(svg.id, link.dataset.t);
  link.focus();
}

export function wireChartKeys(svg) {
  svg.addEventListener('keydown', (ev) => {
    const step = KEYS[ev.key];
    const all = links(svg);
    const at = all.indexOf(document.activeElement);
    if (step === undefined || at < 0) return;
    ev.preventDefault();
    moveTo(svg, all[Math.max(0, Math.min(all.length - 1, at + (Number.isFinite(step) ? step : step * all.length)))]);
  });
  svg.addEventListener('focusin', (ev) => {
    const link = ev.target.closest && ev.target.closest('a.chart-link');
    if (link) { held.set(svg.id, link.dataset.t); focused = svg.id; }
  });
  svg.addEventListener('focusout', (ev) => { if (ev.relatedTarget && !svg.contains(ev.relatedTarget)) focused = null; });
  document.addEventListener('pointerdown', (ev) => { if (!svg.contains(ev.target)) focused = focused === svg.id ? null : focused; });
}

// After a redraw: one link takes the Tab stop (the held bucket, else the newest); focus comes back if it was there.
export function settleChartKeys(svg) {
  const all = links(svg);
  if (!all.length) return;
  const link = all.find((a) => a.dataset.t === held.get(svg.id)) || all[all.length - 1];
  link.setAttribute('tabindex', '0');
  const lost = document.activeElement === document.body || document.activeElement === null;
  if (focused === svg.id && lost && !svg.closest('[hidden]')) link.focus({ preventScroll: true });
}
