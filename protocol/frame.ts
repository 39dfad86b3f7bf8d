/**
 * The state-of-health frame codec (docs/protocol.md §2.1; DESIGN.md decision 1): a deterministic
 * CBOR map (RFC 8949 §4.2.1) with small unsigned integer keys in ascending order and integer
 * fixed-point values, carried as the payload of a COSE_Sign1 (cose.ts). The schema is the table in
 * frame-fields.ts.
 *
 * decodeFrame is on the gateway's hot path and reads hostile bytes: the payload is capped before it
 * is decoded, nesting is capped at 2 (map → cells array), and every field is checked for presence,
 * type and range, with the field named in the error. A v1 decoder rejects unknown keys, so whatever
 * the history shows was covered by the device's signature; new fields need a new schema version.
 */
import { decodeCbor, encodeCbor, type CborMap, type CborValue } from './cbor.js';
import { invariant, ProtocolError, type FrameErrorCode } from './errors.js';
import { ALARM_MASK_V1, FRAME_FIELDS, FRAME_VERSION, type FrameField, type SohFrame } from './frame-fields.js';

/** Largest accepted frame payload, in bytes (a 32-cell frame with every field at its maximum is < 350). */
export const FRAME_MAX_BYTES = 512;

/** Highest key defined in schema v1. */
const MAX_KEY = FRAME_FIELDS.length - 1;

function describe(v: unknown): string {
  if (typeof v === 'number') return String(v);
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
  if (v instanceof Uint8Array) return `a byte string of ${v.length} bytes`;
  if (Array.isArray(v)) return `an array of ${v.length} items`;
  if (v instanceof Map) return 'a map';
  if (v === null) return 'null';
  if (v === undefined) return 'nothing';
  if (typeof v === 'boolean') return String(v);
  return `a ${typeof v === 'object' ? 'tagged item or object' : typeof v}`;
}

function fail(code: FrameErrorCode, field: FrameField, expected: string, got: unknown): never {
  throw new ProtocolError(code, `frame: field ${field.key} (${field.name}) must be ${expected}, got ${describe(got)}`);
}

/** Checks one field's value (from CBOR or from a caller's object) and returns it typed. */
function checkField(field: FrameField, v: unknown): number | string | number[] {
  switch (field.kind) {
    case 'uint':
    case 'int': {
      if (typeof v !== 'number' || !Number.isSafeInteger(v)) fail('FRAME_FIELD_TYPE', field, `an integer in ${field.min}..${field.max}`, v);
      if (v < field.min || v > field.max) fail('FRAME_FIELD_RANGE', field, `an integer in ${field.min}..${field.max}`, v);
      // Alarms: bits 9..31 are reserved in v1 and must be 0; for a non-negative integer that is v ≤ 0x1ff.
      if (field.key === 14 && v > ALARM_MASK_V1) {
        fail('FRAME_FIELD_RANGE', field, 'an alarm bit field with only bits 0..8 set (others are reserved)', v);
      }
      return v;
    }
    case 'text': {
      const what = field.key === 1 ? 'a serial of 1..32 characters [A-Z0-9][A-Z0-9-]*' : 'a version "major.minor.patch" of at most 32 characters';
      if (typeof v !== 'string') fail('FRAME_FIELD_TYPE', field, `text: ${what}`, v);
      if (v.length > field.max || v.length < field.min || !field.pattern?.test(v)) fail('FRAME_FIELD_RANGE', field, what, v);
      return v;
    }
    case 'cells': {
      const itemMin = field.itemMin ?? 0;
      const itemMax = field.itemMax ?? 0;
      if (!Array.isArray(v)) fail('FRAME_FIELD_TYPE', field, `an array of ${field.min}..${field.max} integers`, v);
      if (v.length < field.min || v.length > field.max) fail('FRAME_FIELD_RANGE', field, `an array of ${field.min}..${field.max} cell voltages`, v);
      for (let i = 0; i < v.length; i++) {
        const c: unknown = v[i];
        if (typeof c !== 'number' || !Number.isSafeInteger(c)) fail('FRAME_FIELD_TYPE', field, `an array of integers (item ${i})`, c);
        if (c < itemMin || c > itemMax) fail('FRAME_FIELD_RANGE', field, `an array of cell voltages in ${itemMin}..${itemMax} mV (item ${i})`, c);
      }
      return v as number[];
    }
  }
}

function checkVersion(v: unknown): void {
  const field = FRAME_FIELDS[0];
  invariant(field?.name === 'v', 'field 0 is the version');
  if (v === undefined) fail('FRAME_MISSING_FIELD', field, `present (schema version ${FRAME_VERSION})`, v);
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) fail('FRAME_FIELD_TYPE', field, 'an integer schema version', v);
  if (v !== FRAME_VERSION) {
    throw new ProtocolError('FRAME_VERSION', `frame: field 0 (v) is schema version ${v}; this decoder knows version ${FRAME_VERSION}`);
  }
}

/** Cross-field rule: tempMax ≥ tempMin (both already range-checked). */
function checkTemps(out: Record<string, unknown>): void {
  const min = out.tempMin as number;
  const max = out.tempMax as number;
  const field = FRAME_FIELDS[9];
  invariant(field?.name === 'tempMax', 'field 9 is tempMax');
  if (max < min) fail('FRAME_FIELD_RANGE', field, `≥ tempMin (${min})`, max);
}

/**
 * Decodes and validates a v1 frame payload (the COSE_Sign1 payload bytes, as received).
 * Throws ProtocolError: FRAME_TOO_LARGE (more than 512 bytes; checked before decoding), CBOR_* from
 * the codec (not deterministic CBOR, trailing bytes, nesting deeper than 2, ...), FRAME_NOT_MAP,
 * FRAME_MISSING_FIELD, FRAME_VERSION (key 0 is not 1), FRAME_UNKNOWN_FIELD (a key outside 0..28 or
 * a text key), FRAME_FIELD_TYPE, FRAME_FIELD_RANGE. The returned object shares nothing with `bytes`.
 */
export function decodeFrame(bytes: Uint8Array): SohFrame {
  // The common shape is read in one pass; anything else — and every error — takes the general path,
  // which defines what a frame is and names what is wrong.
  if (bytes.length <= FRAME_MAX_BYTES) {
    try {
      const fast = decodeCommon(bytes);
      if (fast !== undefined) return fast;
    } catch {
      // a field out of range: the general path says which, in its order
    }
  }
  return decodeFrameGeneral(bytes);
}

/**
 * decodeFrame through the general CBOR decoder: the definition of a valid frame and of its error
 * codes and messages. decodeCommon must return the same frame for every payload it accepts
 * (frame-fast.test.ts checks that differentially); exported for that test, not from index.ts.
 */
export function decodeFrameGeneral(bytes: Uint8Array): SohFrame {
  if (bytes.length > FRAME_MAX_BYTES) {
    throw new ProtocolError('FRAME_TOO_LARGE', `frame: payload of ${bytes.length} bytes exceeds the ${FRAME_MAX_BYTES}-byte cap`);
  }
  const map: CborValue = decodeCbor(bytes, { maxDepth: 2 });
  if (!(map instanceof Map)) throw new ProtocolError('FRAME_NOT_MAP', `frame: payload must be a CBOR map, got ${describe(map)}`);
  return fromMap(map);
}

/** Reads deterministic CBOR heads for decodeCommon; -1 for anything it leaves to the general decoder. */
class Cursor {
  pos = 0;
  major = 0;
  constructor(readonly b: Uint8Array) {}

  is(major: number): boolean {
    return this.major === major;
  }

  /** A head's argument in shortest form (RFC 8949 §4.2.1), at most 2^53 − 2; else -1. */
  head(): number {
    const b = this.b;
    const ib = b[this.pos++];
    if (ib === undefined) return -1;
    this.major = ib >> 5;
    const ai = ib & 0x1f;
    if (ai < 24) return ai;
    const at = this.pos;
    const size = ai === 24 ? 1 : ai === 25 ? 2 : ai === 26 ? 4 : ai === 27 ? 8 : 0;
    if (size === 0 || at + size > b.length) return -1;
    this.pos += size;
    let v = 0;
    for (let i = 0; i < size; i++) v = v * 256 + (b[at + i] as number);
    const least = size === 1 ? 24 : size === 2 ? 0x100 : size === 4 ? 0x10000 : 0x100000000;
    return v < least || v >= Number.MAX_SAFE_INTEGER ? -1 : v;
  }
}

/**
 * The one-pass reader of decodeFrame for the shape every device sends: a map of ascending unsigned
 * keys whose values are integers, ASCII text or arrays of unsigned integers, with no required field
 * missing. Returns the frame exactly as decodeFrameGeneral would, or undefined when the payload is
 * anything else (the general path then decides). Field values are checked by checkField, which
 * throws on a bad value; decodeFrame catches that and lets the general path name the error.
 */
function decodeCommon(b: Uint8Array): SohFrame | undefined {
  const c = new Cursor(b);
  const n = c.head();
  if (!c.is(5) || n < 1) return undefined;
  const out: Record<string, unknown> = { v: FRAME_VERSION };
  let prev = -1;
  for (let i = 0; i < n; i++) {
    const key = c.head();
    if (!c.is(0) || key <= prev || key > MAX_KEY) return undefined;
    for (let k = prev + 1; k < key; k++) if (FRAME_FIELDS[k]?.required !== false) return undefined;
    prev = key;
    const a = c.head();
    if (a < 0) return undefined;
    let v: number | string | number[];
    switch (c.major) {
      case 0:
        v = a;
        break;
      case 1:
        v = -1 - a;
        break;
      case 3: {
        if (a > b.length - c.pos) return undefined;
        for (let j = c.pos; j < c.pos + a; j++) if ((b[j] as number) >= 0x80) return undefined; // non-ASCII: the general path checks the UTF-8
        // ASCII bytes are their own char codes: one string, no per-character concatenation.
        v = String.fromCharCode.apply(null, b.subarray(c.pos, c.pos + a) as unknown as number[]);
        c.pos += a;
        break;
      }
      case 4: {
        if (a > b.length - c.pos) return undefined;
        const cells = new Array<number>(a);
        for (let j = 0; j < a; j++) {
          const x = c.head();
          if (!c.is(0) || x < 0) return undefined;
          cells[j] = x;
        }
        v = cells;
        break;
      }
      default:
        return undefined;
    }
    if (key === 0) {
      if (v !== FRAME_VERSION) return undefined;
      continue;
    }
    const field = FRAME_FIELDS[key];
    if (field === undefined) return undefined;
    out[field.name] = checkField(field, v);
  }
  if (prev < 0 || c.pos !== b.length) return undefined;
  for (let k = prev + 1; k <= MAX_KEY; k++) if (FRAME_FIELDS[k]?.required !== false) return undefined;
  checkTemps(out);
  return out as unknown as SohFrame;
}

function fromMap(map: CborMap): SohFrame {
  checkVersion(map.get(0));
  for (const key of map.keys()) {
    if (typeof key !== 'number' || key < 0 || key > MAX_KEY) {
      throw new ProtocolError('FRAME_UNKNOWN_FIELD', `frame: key ${JSON.stringify(key)} is not defined in schema version ${FRAME_VERSION} (keys 0..${MAX_KEY})`);
    }
  }
  const out: Record<string, unknown> = { v: FRAME_VERSION };
  for (let k = 1; k <= MAX_KEY; k++) {
    const field = FRAME_FIELDS[k];
    invariant(field?.key === k, 'FRAME_FIELDS is indexed by key');
    const v = map.get(k);
    if (v === undefined) {
      if (field.required) fail('FRAME_MISSING_FIELD', field, 'present', v);
      continue;
    }
    out[field.name] = checkField(field, v);
  }
  checkTemps(out);
  return out as unknown as SohFrame;
}

/**
 * Encodes a frame as its deterministic v1 payload after validating it exactly as decodeFrame would,
 * so the encoder never emits a frame a verifier rejects. Optional fields that are `undefined` are
 * omitted. Throws ProtocolError: FRAME_VERSION (v is not 1), FRAME_MISSING_FIELD,
 * FRAME_UNKNOWN_FIELD (a property that is not a v1 field name), FRAME_FIELD_TYPE, FRAME_FIELD_RANGE.
 */
export function encodeFrame(frame: SohFrame): Uint8Array {
  const obj = frame as unknown as Record<string, unknown>;
  if (typeof frame !== 'object' || (frame as unknown) === null) {
    throw new ProtocolError('FRAME_NOT_MAP', `frame: expected an object, got ${describe(frame)}`);
  }
  checkVersion(obj.v);
  const names = new Set<string>(FRAME_FIELDS.map((x) => x.name));
  for (const name of Object.keys(obj)) {
    if (!names.has(name)) throw new ProtocolError('FRAME_UNKNOWN_FIELD', `frame: property ${JSON.stringify(name)} is not a schema v${FRAME_VERSION} field`);
  }
  const map: CborMap = new Map([[0, FRAME_VERSION]]);
  const checked: Record<string, unknown> = {};
  for (const field of FRAME_FIELDS) {
    if (field.key === 0) continue;
    const v = obj[field.name];
    if (v === undefined) {
      if (field.required) fail('FRAME_MISSING_FIELD', field, 'present', v);
      continue;
    }
    const value = checkField(field, v);
    checked[field.name] = value;
    // Copy the cells so a later mutation of the caller's array cannot change what was validated.
    map.set(field.key, Array.isArray(value) ? value.slice() : value);
  }
  checkTemps(checked);
  const bytes = encodeCbor(map);
  invariant(bytes.length <= FRAME_MAX_BYTES, 'a valid v1 frame fits the payload cap');
  return bytes;
}
