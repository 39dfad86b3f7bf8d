/**
 * How one pack's history is shown (docs/protocol.md §11): a decoded state-of-health frame in
 * display units (the display scale of §2.1.1), ISO 8601 times, field lists checked against the
 * fields a view offers, and the three renderings — RFC 4180 CSV, JSON and an aligned text table.
 * The gateway's `gateway history` and the ledger's history API both render through this file, so
 * a CSV from either opens the same way; each keeps its own row type (the gateway's rows carry the
 * checkpoint covering the entry, the ledger's the sightings across gateways), so the renderers are
 * generic over the row and take the list of fields to show.
 *
 * Pure: no I/O. parseCsv reads text that may come from anywhere (a download, a file) and is capped.
 */
import { ProtocolError } from './errors.js';
import { ALARM_BITS, type SohFrame } from './frame-fields.js';

/** A frame's measurements in display units (docs/protocol.md §2.1.1 and §11.1). */
export interface FrameDisplay {
  counter: number;
  /** The device clock (field 3) as ISO 8601, see isoTime. */
  deviceTime: string;
  socPct: number;
  sohPct: number;
  voltageV: number;
  currentA: number;
  cellMinV: number;
  cellMaxV: number;
  /** Highest minus lowest cell voltage, mV (integer: both are integers on the wire). */
  cellSpreadMv: number;
  tempMinC: number;
  tempMaxC: number;
  cycles: number;
  /** The alarm bit field (field 14) as a number. */
  alarms: number;
  /** Names of the set alarm bits (ALARM_BITS keys), lowest bit first. */
  alarmNames: string[];
}

/** The FrameDisplay fields in the order the history views show them. */
export const FRAME_DISPLAY_FIELDS: readonly (keyof FrameDisplay)[] = Object.freeze([
  'counter', 'deviceTime', 'socPct', 'sohPct', 'voltageV', 'currentA', 'cellMinV', 'cellMaxV', 'cellSpreadMv',
  'tempMinC', 'tempMaxC', 'cycles', 'alarms', 'alarmNames',
]);

/** Rounds to `digits` decimals the way the display scale is specified (0.1 % → 1 digit, mV → 3). */
/**
 * An integer wire value in display units: `n / 10^digits`. No rounding step is needed: n and 10^digits
 * are exact doubles, so the quotient is the double nearest to the decimal n·10^-digits — what
 * Number(x.toFixed(digits)) would give back — without a string per field (history pages run this
 * for 100 k rows).
 */
const scaled = (n: number, digits: 1 | 3): number => n / (digits === 1 ? 10 : 1000);

/**
 * ms since the Unix epoch as ISO 8601 UTC with milliseconds (`Date.prototype.toISOString`). A frame
 * may carry any device time up to 2^53 − 1 ms (§2.1.1), beyond what a Date holds (±8.64 × 10^15 ms);
 * such a time is shown as `out-of-range:<ms>` rather than failing the whole history over one frame.
 */
export function isoTime(ms: number): string {
  // History pages format two times per row for 100 k rows: within the day of the previous call
  // only the clock part is built (same text as toISOString; history-format.test.ts compares them).
  if (Number.isSafeInteger(ms)) {
    const day = Math.floor(ms / DAY_MS);
    if (day === lastDay.day) return lastDay.prefix + clockOf(ms - day * DAY_MS);
  }
  const d = new Date(ms);
  if (Number.isNaN(d.getTime())) return `out-of-range:${ms}`;
  const iso = d.toISOString();
  // Remember the day of a four-digit year ("YYYY-MM-DDT…", 24 characters) for the next call.
  if (Number.isSafeInteger(ms) && iso.length === 24) lastDay = { day: Math.floor(ms / DAY_MS), prefix: iso.slice(0, 11) };
  return iso;
}

const DAY_MS = 86_400_000;
let lastDay = { day: Number.NaN, prefix: '' };
const TWO = Array.from({ length: 60 }, (_, i) => String(i).padStart(2, '0'));
const THREE = Array.from({ length: 1000 }, (_, i) => String(i).padStart(3, '0'));

/** "hh:mm:ss.mmmZ" of a time of day in ms (0 ≤ t < 86,400,000, an integer). */
function clockOf(t: number): string {
  const h = Math.floor(t / 3_600_000);
  const m = Math.floor(t / 60_000) % 60;
  const sec = Math.floor(t / 1000) % 60;
  return `${TWO[h] ?? ''}:${TWO[m] ?? ''}:${TWO[sec] ?? ''}.${THREE[t % 1000] ?? ''}Z`;
}

const ALARM_ENTRIES = Object.entries(ALARM_BITS).sort((a, b) => a[1] - b[1]);

/** Names of the bits set in an alarm mask (§2.1.2), lowest bit first; reserved bits have no name. */
export function alarmNames(mask: number): string[] {
  if (mask === 0) return [];
  return ALARM_ENTRIES.filter(([, bit]) => (mask & bit) !== 0).map(([name]) => name);
}

/** A decoded frame in display units. Never throws for a frame decodeFrame accepted. */
export function frameDisplay(f: SohFrame): FrameDisplay {
  let lo = Infinity;
  let hi = -Infinity;
  for (const c of f.cells) {
    if (c < lo) lo = c;
    if (c > hi) hi = c;
  }
  return {
    counter: f.counter,
    deviceTime: isoTime(f.time),
    socPct: scaled(f.soc, 1),
    sohPct: scaled(f.soh, 1),
    voltageV: scaled(f.voltage, 3),
    currentA: scaled(f.current, 3),
    cellMinV: scaled(lo, 3),
    cellMaxV: scaled(hi, 3),
    cellSpreadMv: hi - lo,
    tempMinC: scaled(f.tempMin, 1),
    tempMaxC: scaled(f.tempMax, 1),
    cycles: f.cycles,
    alarms: f.alarms,
    alarmNames: alarmNames(f.alarms),
  };
}

/**
 * Parses a comma-separated field list (`a,b,c`; blanks around names and empty items ignored)
 * against `allowed`; undefined means all of `allowed`. `label` names the option in messages
 * (`--fields`, `fields`). Throws HISTORY_FIELDS naming the unknown field and listing the allowed
 * ones, or when the list names no field.
 */
export function parseFieldList<K extends string>(list: string | undefined, allowed: readonly K[], label = 'fields'): K[] {
  if (list === undefined) return [...allowed];
  const names = list.split(',').map((s) => s.trim()).filter((s) => s !== '');
  for (const n of names) {
    if (!(allowed as readonly string[]).includes(n)) {
      const shown = n.length > 40 ? `${n.slice(0, 40)}…` : n;
      throw new ProtocolError('HISTORY_FIELDS', `${label}: unknown field ${JSON.stringify(shown)}; expected some of ${allowed.join(',')}`);
    }
  }
  if (names.length === 0) throw new ProtocolError('HISTORY_FIELDS', `${label}: expected a comma-separated list of ${allowed.join(',')}`);
  return names as K[];
}

/** One value as cell text: null and undefined → empty, arrays joined with '|', objects as JSON, the rest String(). */
export function cellText(v: unknown): string {
  if (v === null || v === undefined) return '';
  if (Array.isArray(v)) return v.map((x) => cellText(x)).join('|');
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return String(v);
  return typeof v === 'object' ? JSON.stringify(v) : ''; // symbols and functions have no cell text
}

/** RFC 4180 §2 rules 6–7: a field holding '"', ',', CR or LF is quoted, its quotes doubled. */
export function csvField(text: string): string {
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

/** RFC 4180 CSV: a header line of the field names, one record per row, every line ending CRLF. */
export function historyCsv<R extends object>(rows: readonly R[], fields: readonly (keyof R & string)[]): string {
  const lines = [fields.map(csvField).join(','), ...rows.map((r) => fields.map((f) => csvField(cellText(r[f]))).join(','))];
  return lines.map((l) => `${l}\r\n`).join('');
}

/** A JSON array of one object per row holding `fields` in that order (values as they are), 2-space indented. */
export function historyJson<R extends object>(rows: readonly R[], fields: readonly (keyof R & string)[]): string {
  return `${JSON.stringify(rows.map((r) => Object.fromEntries(fields.map((f) => [f, r[f]]))), null, 2)}\n`;
}

/**
 * An aligned text table: a header line of the field names, then one line per row, columns padded to
 * the widest cell and separated by two spaces, trailing blanks trimmed, each line ending LF.
 * `render` may replace a cell's text (return undefined to keep cellText).
 */
export function historyTable<R extends object, K extends keyof R & string>(
  rows: readonly R[],
  fields: readonly K[],
  render?: (row: R, field: K) => string | undefined,
): string {
  const body = rows.map((r) => fields.map((f) => render?.(r, f) ?? cellText(r[f])));
  const widths = fields.map((h, i) => Math.max(h.length, ...body.map((b) => (b[i] ?? '').length)));
  const line = (cols: readonly string[]): string => cols.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd();
  return [line(fields), ...body.map(line)].map((l) => `${l}\n`).join('');
}

/** Largest CSV text parseCsv accepts, in UTF-16 code units (a 100 000-row history is ~25 M). */
export const MAX_CSV_CHARS = 64 * 1024 * 1024;

/**
 * Parses RFC 4180 CSV into records of fields. Lines end CRLF or LF (a lone CR inside an unquoted
 * field is data); the last line's terminator is optional. Throws HISTORY_CSV for text over
 * `maxChars`, a quote inside an unquoted field, text after a closing quote, or an unterminated quoted
 * field. Empty text is no records.
 */
export function parseCsv(text: string, maxChars = MAX_CSV_CHARS): string[][] {
  if (text.length > maxChars) throw new ProtocolError('HISTORY_CSV', `csv: ${text.length} characters, over the cap of ${maxChars}`);
  const records: string[][] = [];
  let record: string[] = [];
  let i = 0;
  const n = text.length;
  if (n === 0) return records;
  for (;;) {
    let field = '';
    if (text[i] === '"') {
      const start = i;
      i++;
      for (;;) {
        const q = text.indexOf('"', i);
        if (q < 0) throw new ProtocolError('HISTORY_CSV', `csv: quoted field opened at offset ${start} is not closed`);
        field += text.slice(i, q);
        if (text[q + 1] === '"') {
          field += '"';
          i = q + 2;
        } else {
          i = q + 1;
          break;
        }
      }
      const c = text[i];
      if (i < n && c !== ',' && c !== '\n' && !(c === '\r' && text[i + 1] === '\n')) {
        throw new ProtocolError('HISTORY_CSV', `csv: unexpected ${JSON.stringify(c)} after the closing quote at offset ${i - 1}`);
      }
    } else {
      let j = i;
      while (j < n && text[j] !== ',' && text[j] !== '\n' && !(text[j] === '\r' && text[j + 1] === '\n')) {
        if (text[j] === '"') throw new ProtocolError('HISTORY_CSV', `csv: quote inside an unquoted field at offset ${j}`);
        j++;
      }
      field = text.slice(i, j);
      i = j;
    }
    record.push(field);
    if (i >= n) {
      records.push(record);
      return records;
    }
    if (text[i] === ',') {
      i++;
      continue;
    }
    i += text[i] === '\r' ? 2 : 1;
    records.push(record);
    record = [];
    if (i >= n) return records;
  }
}
