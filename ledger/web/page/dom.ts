/**
 * Small DOM helpers for the page: element creation with text (never innerHTML, so data from the
 * ledger is never parsed as markup), lookups that fail loudly when index.html and the code disagree,
 * and number/date formatting in the units of docs/protocol.md §2.1.1.
 */

type Attrs = Record<string, string | number | boolean | undefined>;

/** Creates an element with attributes and children (strings become text nodes). */
export function el<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Attrs = {}, ...kids: (Node | string)[]): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false) continue;
    e.setAttribute(k, v === true ? '' : String(v));
  }
  e.append(...kids);
  return e;
}

/** Creates an SVG element with attributes. */
export function svg<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Attrs = {}, ...kids: (Node | string)[]): SVGElementTagNameMap[K] {
  const e = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== false) e.setAttribute(k, String(v));
  e.append(...kids);
  return e;
}

/** The element with `id`; throws if index.html lacks it (a bug). */
export function byId(id: string): HTMLElement {
  const e = document.getElementById(id);
  if (e === null) throw new Error(`page: #${id} missing from index.html`);
  return e;
}

/** The <input> with `id`; throws if index.html lacks it or it is another element (a bug). */
export function inputById(id: string): HTMLInputElement {
  const e = byId(id);
  if (!(e instanceof HTMLInputElement)) throw new Error(`page: #${id} is not an <input>`);
  return e;
}

/** A table with a caption, column headers (scope=col) and rows of cells. */
export function table(caption: string, headers: readonly string[], rows: readonly (readonly (Node | string)[])[], id?: string): HTMLTableElement {
  const t = el('table', { id });
  t.append(el('caption', {}, caption));
  t.append(el('thead', {}, el('tr', {}, ...headers.map((h) => el('th', { scope: 'col' }, h)))));
  const body = el('tbody');
  for (const r of rows) body.append(el('tr', {}, ...r.map((c) => el('td', {}, c))));
  t.append(body);
  return t;
}

/** ISO time as "2026-06-01 08:00:00Z" (UTC, second precision). */
export function fmtTime(iso: string | number): string {
  const d = new Date(iso);
  return Number.isFinite(d.getTime()) ? `${d.toISOString().slice(0, 19).replace('T', ' ')}Z` : String(iso);
}

export function fmtNum(v: number, digits: number): string {
  return Number.isFinite(v) ? v.toFixed(digits) : '–';
}
