/**
 * A small declarative schema for the gateway's config file (config.ts), written here rather than
 * taken from a schema library because the gateway needs only a dozen value kinds and wants three
 * things from one description: typed results (each spec is a `Spec<T>`, so the compiler checks the
 * schema against the config interface), error messages that name the key path and say what was
 * expected (`transports.serial.ports[1]: expected an absolute path or glob, got 42`), and the
 * config reference table of docs/gateway.md (`describeSchema`). Objects reject unknown keys, naming
 * them and suggesting the nearest known key, so a typo is never silently ignored. Validation
 * collects every problem instead of stopping at the first; it never throws — config.ts turns the
 * problems into one GatewayError CONFIG.
 */

/** A key path, e.g. ['transports', 'serial', 'ports', 1]. */
export type KeyPath = readonly (string | number)[];

export interface Problem {
  readonly path: KeyPath;
  readonly message: string;
  /** True when the problem is the key itself (unknown key): its position is the key's. */
  readonly atKey?: boolean;
}

/** What validation knows besides the value: where relative paths start (the config file's directory). */
export interface SchemaContext {
  readonly baseDir: string;
  readonly problems: Problem[];
}

/** Returned by a spec for an invalid value; the problem is already recorded. */
export const INVALID: unique symbol = Symbol('invalid');
export type Parsed<T> = T | typeof INVALID;

export interface Spec<T> {
  /** Short type text for the reference table and messages, e.g. "integer 1..1000000". */
  readonly type: string;
  parse(value: unknown, path: KeyPath, ctx: SchemaContext): Parsed<T>;
  /** Objects only: their fields, for the reference table and for defaults of missing sections. */
  readonly fields?: Readonly<Record<string, Field<unknown>>>;
}

export interface Field<T> {
  readonly spec: Spec<T>;
  /**
   * The value used when the key is missing, as it would be written in the file ("8GiB",
   * "gateway.key"): it goes through `spec` like a written value, so relative paths resolve and the
   * schema's own tests catch a default out of range. Without one the key is required (objects
   * default to `{}`, so their own defaults apply).
   */
  readonly default?: unknown;
  /** The default as the reference table shows it, when it differs from JSON of `default`. */
  readonly defaultText?: string;
  readonly doc: string;
}

/** `a.b[2].c` */
export function pathText(path: KeyPath): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : out === '' ? p : `.${p}`;
  return out === '' ? '(top level)' : out;
}

/** How a bad value is shown after "got": 42, "abc", a list, a mapping, null. */
export function describeValue(v: unknown): string {
  if (v === null || v === undefined) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 39)}…` : v);
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return String(v);
  return typeof v;
}

function fail(ctx: SchemaContext, path: KeyPath, expected: string, value: unknown): typeof INVALID {
  ctx.problems.push({ path, message: `expected ${expected}, got ${describeValue(value)}` });
  return INVALID;
}

/** A spec from a type text and a check that returns the value or undefined (then "expected <type>"). */
export function custom<T>(type: string, check: (v: unknown, ctx: SchemaContext) => T | undefined): Spec<T> {
  return {
    type,
    parse(v, path, ctx) {
      const r = check(v, ctx);
      return r === undefined ? fail(ctx, path, type, v) : r;
    },
  };
}

export function int(min: number, max: number): Spec<number> {
  return custom(`an integer ${min}..${max}`, (v) => (typeof v === 'number' && Number.isSafeInteger(v) && v >= min && v <= max ? v : undefined));
}

export function bool(): Spec<boolean> {
  return custom('true or false', (v) => (typeof v === 'boolean' ? v : undefined));
}

export function oneOf<const T extends string | number>(values: readonly T[]): Spec<T> {
  const type = `one of ${values.map((x) => JSON.stringify(x)).join(', ')}`;
  return custom(type, (v) => values.find((x) => x === v));
}

/** A string matching `pattern` (whole string), described as `type`. */
export function str(type: string, pattern: RegExp = /^[^\0]+$/): Spec<string> {
  return custom(type, (v) => (typeof v === 'string' && pattern.test(v) ? v : undefined));
}

const UNITS: Readonly<Record<string, number>> = { '': 1, B: 1, KB: 1e3, MB: 1e6, GB: 1e9, TB: 1e12, KIB: 2 ** 10, MIB: 2 ** 20, GIB: 2 ** 30, TIB: 2 ** 40 };

/** A byte count: an integer, or a string with a unit ("8GiB", "500 MB", "1.5GiB"). */
export function bytes(min: number, max: number): Spec<number> {
  return custom(`a size in bytes ${min}..${max} (an integer or a string like "8GiB", "500MB")`, (v) => {
    let n: number | undefined;
    if (typeof v === 'number') n = v;
    else if (typeof v === 'string') {
      const m = /^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)?\s*$/i.exec(v);
      const unit = UNITS[(m?.[2] ?? '').toUpperCase()];
      if (m?.[1] !== undefined && unit !== undefined) n = Math.floor(Number(m[1]) * unit);
    }
    return n !== undefined && Number.isSafeInteger(n) && n >= min && n <= max ? n : undefined;
  });
}

export function nullable<T>(spec: Spec<T>): Spec<T | null> {
  return {
    type: `${spec.type}, or null`,
    parse: (v, path, ctx) => (v === null ? null : spec.parse(v, path, ctx)),
  };
}

/** A list of `item`, `min`..`max` long; every bad item is reported with its index. */
export function list<T>(item: Spec<T>, min = 0, max = 1000): Spec<T[]> {
  return {
    type: `a list of ${min}..${max} × ${item.type}`,
    parse(v, path, ctx) {
      if (!Array.isArray(v)) return fail(ctx, path, `a list (${min}..${max} entries)`, v);
      if (v.length < min || v.length > max) {
        ctx.problems.push({ path, message: `expected ${min}..${max} entries, got ${v.length}` });
        return INVALID;
      }
      const out: T[] = [];
      let ok = true;
      for (let i = 0; i < v.length; i++) {
        const r = item.parse(v[i] as unknown, [...path, i], ctx);
        if (r === INVALID) ok = false;
        else out.push(r);
      }
      return ok ? out : INVALID;
    },
  };
}

/** Edit distance, for "did you mean" on unknown keys. */
function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0] ?? 0;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j] ?? 0;
      row[j] = Math.min(cur + 1, (row[j - 1] ?? 0) + 1, prev + (a[i - 1]?.toLowerCase() === b[j - 1]?.toLowerCase() ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length] ?? 0;
}

function suggestion(key: string, known: readonly string[]): string {
  let best: string | undefined;
  let bestD = Infinity;
  for (const k of known) {
    const d = distance(key, k);
    if (d < bestD) [best, bestD] = [k, d];
  }
  return best !== undefined && bestD <= Math.max(2, Math.floor(key.length / 3)) ? `; did you mean "${best}"?` : '';
}

/**
 * A mapping with exactly these keys. A missing key takes its field's default; a missing object
 * field is parsed from `{}` (its own defaults apply); a missing key without a default is reported
 * as required. Unknown keys are reported with the known keys (and the nearest one).
 */
export function obj<T extends object>(fields: { readonly [K in keyof T]-?: Field<T[K]> }): Spec<T> {
  const all = fields as Readonly<Record<string, Field<unknown>>>;
  const known = Object.keys(all);
  return {
    type: 'a mapping',
    fields: all,
    parse(v, path, ctx) {
      if (v === null || typeof v !== 'object' || Array.isArray(v)) return fail(ctx, path, 'a mapping of keys to values', v);
      const input = v as Record<string, unknown>;
      let ok = true;
      for (const key of Object.keys(input)) {
        if (!Object.hasOwn(all, key)) {
          ctx.problems.push({ path: [...path, key], atKey: true, message: `unknown key "${key}"${suggestion(key, known)} (known here: ${known.join(', ')})` });
          ok = false;
        }
      }
      const out: Record<string, unknown> = {};
      for (const key of known) {
        const f = all[key];
        if (f === undefined) continue;
        let r: unknown;
        if (Object.hasOwn(input, key)) r = f.spec.parse(input[key], [...path, key], ctx);
        else if ('default' in f) r = f.spec.parse(f.default, [...path, key], ctx);
        else if (f.spec.fields !== undefined) r = f.spec.parse({}, [...path, key], ctx);
        else {
          ctx.problems.push({ path: [...path, key], message: `required: expected ${f.spec.type}` });
          r = INVALID;
        }
        if (r === INVALID) ok = false;
        else out[key] = r;
      }
      return ok ? (out as T) : INVALID;
    },
  };
}

export interface ReferenceRow {
  readonly key: string;
  readonly type: string;
  readonly default: string;
  readonly doc: string;
}

/** One row per leaf key, depth first in declaration order: the config reference of docs/gateway.md. */
export function describeSchema(spec: Spec<unknown>, prefix = ''): ReferenceRow[] {
  const rows: ReferenceRow[] = [];
  for (const [key, f] of Object.entries(spec.fields ?? {})) {
    const name = prefix === '' ? key : `${prefix}.${key}`;
    if (f.spec.fields !== undefined && !('default' in f)) {
      rows.push(...describeSchema(f.spec, name));
      continue;
    }
    const def = f.defaultText ?? ('default' in f ? JSON.stringify(f.default) : 'required');
    rows.push({ key: name, type: f.spec.type, default: def, doc: f.doc });
  }
  return rows;
}

/** The reference rows as a Markdown table. */
export function referenceTable(rows: readonly ReferenceRow[]): string {
  const cell = (s: string): string => s.replace(/\|/g, '\\|');
  const lines = ['| key | value | default | meaning |', '|---|---|---|---|'];
  for (const r of rows) lines.push(`| \`${r.key}\` | ${cell(r.type)} | ${r.default === 'required' ? '**required**' : `\`${cell(r.default)}\``} | ${cell(r.doc)} |`);
  return `${lines.join('\n')}\n`;
}
