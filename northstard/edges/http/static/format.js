// Amounts arrive as decimal strings. They are parsed, rounded, added and
// formatted on their digits (strings and BigInt), never through a float.
// Floats appear only for geometry (bar widths, chart coordinates).

const DEC_RE = /^([+-])?(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d{1,4}))?$/;

// "−12.5e1" -> {neg, zero, int: "125", frac: ""}; null when not a number.
export function parseDec(value) {
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

// Round half-even to `places` decimals on the digit string: {int, frac, zero}.
export function roundDec(d, places) {
  const frac = d.frac.padEnd(places + 1, '0');
  let keep = (d.int || '0') + frac.slice(0, places);
  const rest = frac.slice(places);
  const first = Number(rest[0]);
  const tail = /[1-9]/.test(rest.slice(1));
  const odd = Number(keep[keep.length - 1]) % 2 === 1;
  if (first > 5 || (first === 5 && (tail || odd))) keep = incDigits(keep);
  const cut = keep.length - places;
  const int = keep.slice(0, cut).replace(/^0+(?=\d)/, '') || '0';
  return { int, frac: keep.slice(cut), zero: !/[1-9]/.test(keep) };
}

const group = (int) => int.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
const SYMBOLS = { USD: '$', EUR: '€', GBP: '£', JPY: '¥' };
let currency = 'USD';

export function setCurrency(code) { currency = typeof code === 'string' && code ? code : 'USD'; }

// "-1234.565" -> "-$1,234.56"; opts: places (2), plus (show "+"), symbol.
export function fmtMoney(value, opts = {}) {
  const d = parseDec(value);
  if (!d) return '—';
  const r = roundDec(d, opts.places === undefined ? 2 : opts.places);
  const sign = r.zero ? '' : (d.neg ? '-' : (opts.plus ? '+' : ''));
  const sym = opts.symbol === undefined ? (SYMBOLS[currency] || `${currency} `) : opts.symbol;
  return `${sign}${sym}${group(r.int)}${r.frac ? '.' + r.frac : ''}`;
}

export function fmtPct(value) {
  const d = parseDec(value);
  if (!d) return '—';
  const r = roundDec(d, 1);
  return `${d.neg && !r.zero ? '-' : ''}${group(r.int)}.${r.frac}%`;
}

export function signOf(value) {
  const d = parseDec(value);
  return !d || d.zero ? 0 : (d.neg ? -1 : 1);
}

// Exact sum of decimal strings, each with a sign: decSum([a, 1], [b, -1]) = a − b.
// Returns a decimal string, or undefined when a term is not a number.
export function decSum(...terms) {
  const parsed = terms.map(([value, sign]) => [parseDec(value), sign]);
  if (parsed.some(([d]) => !d)) return undefined;
  const scale = Math.max(0, ...parsed.map(([d]) => d.frac.length));
  let total = 0n;
  for (const [d, sign] of parsed) {
    const digits = BigInt((d.int || '0') + d.frac.padEnd(scale, '0'));
    total += (d.neg ? -digits : digits) * (sign < 0 ? -1n : 1n);
  }
  const neg = total < 0n;
  const text = (neg ? -total : total).toString().padStart(scale + 1, '0');
  const int = text.slice(0, text.length - scale);
  return `${neg ? '-' : ''}${int}${scale ? '.' + text.slice(text.length - scale) : ''}`;
}

export const decSub = (a, b) => decSum([a, 1], [b, -1]);

export function cmpDec(a, b) {
  return signOf(decSub(a ?? '0', b ?? '0') ?? '0');
}

// ---------- time, always shown in the browser's zone ----------

const timeFmt = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' });
const dateTimeFmt = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit' });
const hmFmt = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const dayFmt = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric' });
const utcDayFmt = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric', timeZone: 'UTC' });
const utcWeekdayFmt = new Intl.DateTimeFormat(undefined, { weekday: 'short', month: 'short', day: 'numeric', timeZone: 'UTC' });

const toDate = (value) => {
  const d = new Date(value);
  return value === undefined || value === null || Number.isNaN(d.getTime()) ? null : d;
};

// A time today as "20:10:57"; another day as "Nov 20, 20:10:57".
export function localTime(value) {
  const d = toDate(value);
  if (!d) return '—';
  return (new Date().toDateString() === d.toDateString() ? timeFmt : dateTimeFmt).format(d);
}

export const hourMinute = (ms) => hmFmt.format(new Date(ms));
export const localDay = (ms) => dayFmt.format(new Date(ms));
// History day buckets are UTC days: label them as such.
export const utcDay = (ms) => utcDayFmt.format(new Date(ms));
export const utcWeekday = (ms) => utcWeekdayFmt.format(new Date(ms));

export function ago(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}
