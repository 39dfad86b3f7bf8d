/**
 * Validation of the service-engineer API's query strings and path parameters (api.md): every
 * parameter is checked against its type and range and a bad one is 400 BAD_QUERY naming it
 * (`ledger: query: limit: expected an integer 1..100000, got "0"`); unknown parameters are refused
 * the same way, so a misspelt `untill=` is never silently ignored. Times are ISO 8601 (with a zone
 * or Z) or integer ms since the epoch. Values come from the network: lengths are capped and nothing
 * is echoed back unquoted or at length.
 */
import { PACK_SERIAL_PATTERN, parseFieldList } from '../../protocol/index.js';
import { LedgerError } from '../errors.js';
import { HISTORY_ROW_FIELDS, type HistoryRow } from '../types.js';

export type Query = Readonly<Record<string, unknown>>;

const shown = (v: unknown): string => {
  const s = typeof v === 'string' ? v : (JSON.stringify(v) as string | undefined) ?? String(v);
  return JSON.stringify(s.length > 40 ? `${s.slice(0, 40)}…` : s);
};

export function badQuery(name: string, expected: string, got: unknown): LedgerError {
  return new LedgerError('BAD_QUERY', `ledger: query: ${name}: expected ${expected}, got ${shown(got)}`);
}

/** Refuses parameters not in `allowed`, and repeated ones (fastify gives arrays for `a=1&a=2`). */
export function onlyParams(q: Query, allowed: readonly string[]): void {
  for (const [k, v] of Object.entries(q)) {
    if (!allowed.includes(k)) throw new LedgerError('BAD_QUERY', `ledger: query: unknown parameter ${shown(k)}; expected some of ${allowed.join(', ')}`);
    if (typeof v !== 'string') throw badQuery(k, 'one value', v);
  }
}

function str(q: Query, name: string): string | undefined {
  const v = q[name];
  return typeof v === 'string' ? v : undefined;
}

/** An integer parameter in [min, max], `def` when absent. */
export function intParam(q: Query, name: string, min: number, max: number, def: number): number;
export function intParam(q: Query, name: string, min: number, max: number): number | undefined;
export function intParam(q: Query, name: string, min: number, max: number, def?: number): number | undefined {
  const v = str(q, name);
  if (v === undefined) return def;
  if (!/^-?\d{1,16}$/.test(v)) throw badQuery(name, `an integer ${min}..${max}`, v);
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < min || n > max) throw badQuery(name, `an integer ${min}..${max}`, v);
  return n;
}

const ISO = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2}))?$/;

/** A time parameter: ISO 8601 (date, or date-time with Z or an offset) or integer ms since the epoch. */
export function timeParam(q: Query, name: string): number | undefined {
  const v = str(q, name);
  if (v === undefined) return undefined;
  const what = 'ISO 8601 (e.g. 2026-03-01T00:00:00Z) or integer ms since the epoch';
  if (/^\d{1,16}$/.test(v)) {
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n > 8.64e15) throw badQuery(name, what, v);
    return n;
  }
  if (!ISO.test(v)) throw badQuery(name, what, v);
  const t = Date.parse(v);
  if (Number.isNaN(t)) throw badQuery(name, what, v);
  return t;
}

/** The `fields` list of a history request (default: all, in api.md order). */
export function fieldsParam(q: Query): (keyof HistoryRow)[] {
  const v = str(q, 'fields');
  if (v !== undefined && v.length > 1024) throw badQuery('fields', 'a comma-separated list of field names', v);
  try {
    const f = parseFieldList(v, HISTORY_ROW_FIELDS);
    if (f.length === 0) throw new Error('empty');
    return f;
  } catch {
    throw new LedgerError('BAD_QUERY', `ledger: query: fields: expected a comma-separated list of ${HISTORY_ROW_FIELDS.join(',')}, got ${shown(v)}`);
  }
}

export function oneOfParam<T extends string>(q: Query, name: string, values: readonly T[], def: T): T {
  const v = str(q, name);
  if (v === undefined) return def;
  const hit = values.find((x) => x === v);
  if (hit === undefined) throw badQuery(name, `one of ${values.join(', ')}`, v);
  return hit;
}

/** A pack serial path parameter (the certificate's pattern); else BAD_QUERY. */
export function serialParam(v: unknown): string {
  if (typeof v !== 'string' || !PACK_SERIAL_PATTERN.test(v)) throw badQuery('serial', `a pack serial matching ${String(PACK_SERIAL_PATTERN)}`, v);
  return v;
}

/** A pack-serial prefix (may be empty). */
export function prefixParam(q: Query): string {
  const v = str(q, 'prefix') ?? '';
  if (v !== '' && !/^[A-Za-z0-9][A-Za-z0-9.-]{0,63}$/.test(v)) throw badQuery('prefix', 'the start of a pack serial (A-Z a-z 0-9 . -, at most 64)', v);
  return v;
}
