/**
 * Field readers for the CBOR bodies of wire messages (docs/protocol.md §4, "Body schemas"):
 * every body is a map with small unsigned integer keys, and every field is checked for presence,
 * type and range before a message value is built. A failure is a ProtocolError MSG_MALFORMED whose
 * message names the message, the field number and its meaning, and what was expected, e.g.
 * `message: hello field 2 (pack serial): expected text of at most 32 bytes`. Internal to protocol/:
 * messages.ts, message-ops.ts and ble.ts use it; it is not part of the public surface.
 */
import { utf8 } from './bytes.js';
import type { CborMap, CborValue } from './cbor.js';
import { ProtocolError } from './errors.js';

/** Throws MSG_MALFORMED for `what` (e.g. "hello field 2 (pack serial)"). */
export function malformed(what: string, why: string): never {
  throw new ProtocolError('MSG_MALFORMED', `message: ${what}: ${why}`);
}

/**
 * True when `s` contains a C0 or C1 control character or DEL. Text fields end up on technicians'
 * terminals and in logs; a device must not be able to inject terminal escape sequences.
 */
function hasControl(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || (c >= 0x7f && c <= 0x9f)) return true;
  }
  return false;
}

/** Checks a text value: UTF-8 length within [min, max] bytes, no control characters, optional pattern. */
export function checkText(v: CborValue, what: string, max: number, min = 0, pattern?: RegExp): string {
  if (typeof v !== 'string') return malformed(what, `expected text, got ${kindOf(v)}`);
  const n = utf8(v).length;
  if (n < min || n > max) malformed(what, `expected text of ${min > 0 ? `${min} to ` : 'at most '}${max} bytes, got ${n}`);
  if (hasControl(v)) malformed(what, 'control characters are not allowed');
  if (pattern && !pattern.test(v)) malformed(what, `expected text matching ${pattern.source}`);
  return v;
}

/** Checks an unsigned integer in [0, max]. */
export function checkUint(v: CborValue, what: string, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof v !== 'number') return malformed(what, `expected an unsigned integer, got ${kindOf(v)}`);
  if (v < 0 || v > max) malformed(what, `expected an unsigned integer at most ${max}, got ${v}`);
  return v;
}

/** Checks a byte string whose length is within [min, max]. */
export function checkBytes(v: CborValue, what: string, min: number, max: number): Uint8Array {
  if (!(v instanceof Uint8Array)) return malformed(what, `expected a byte string, got ${kindOf(v)}`);
  if (v.length < min || v.length > max) {
    malformed(what, min === max ? `expected ${min} bytes, got ${v.length}` : `expected ${min} to ${max} bytes, got ${v.length}`);
  }
  return v;
}

/** Checks an array with at most `max` (and at least `min`) elements. */
export function checkArray(v: CborValue, what: string, max: number, min = 0): CborValue[] {
  if (!Array.isArray(v)) return malformed(what, `expected an array, got ${kindOf(v)}`);
  if (v.length < min || v.length > max) malformed(what, `expected ${min} to ${max} elements, got ${v.length}`);
  return v;
}

/** Checks a map (keys are already integers or text: the CBOR decoder guarantees it). */
export function checkMap(v: CborValue, what: string): CborMap {
  if (!(v instanceof Map)) return malformed(what, `expected a map, got ${kindOf(v)}`);
  return v;
}

/** A CBOR value's kind, for error messages. */
export function kindOf(v: CborValue): string {
  if (v === null) return 'null';
  if (v instanceof Uint8Array) return 'a byte string';
  if (Array.isArray(v)) return 'an array';
  if (v instanceof Map) return 'a map';
  if (typeof v === 'object') return `tag ${v.tag}`;
  return typeof v === 'number' ? 'an integer' : typeof v === 'string' ? 'text' : 'a boolean';
}

/**
 * A body map with a fixed set of integer keys. Unknown keys are rejected: a receiver that ignored
 * them could be shown data a signature-less transport never promised (docs/protocol.md §4).
 */
export class Fields {
  private constructor(
    private readonly map: CborMap,
    private readonly what: string,
    private readonly names: Readonly<Record<number, string>>,
  ) {}

  /** `names` lists every allowed key with its meaning (used in error messages). */
  static of(v: CborValue, what: string, names: Readonly<Record<number, string>>): Fields {
    const map = checkMap(v, what);
    for (const k of map.keys()) {
      if (typeof k !== 'number' || names[k] === undefined) malformed(what, `unexpected key ${JSON.stringify(k)}`);
    }
    return new Fields(map, what, names);
  }

  /** "hello field 2 (pack serial)". */
  label(key: number): string {
    return `${this.what} field ${key} (${this.names[key] ?? '?'})`;
  }

  has(key: number): boolean {
    return this.map.has(key);
  }

  /** The value of a required field. */
  get(key: number): CborValue {
    const v = this.map.get(key);
    if (v === undefined) return malformed(this.label(key), 'missing');
    return v;
  }

  uint(key: number, max?: number): number {
    return checkUint(this.get(key), this.label(key), max);
  }

  text(key: number, max: number, min = 0, pattern?: RegExp): string {
    return checkText(this.get(key), this.label(key), max, min, pattern);
  }

  bytes(key: number, min: number, max: number): Uint8Array {
    return checkBytes(this.get(key), this.label(key), min, max);
  }

  bool(key: number): boolean {
    const v = this.get(key);
    if (typeof v !== 'boolean') return malformed(this.label(key), `expected a boolean, got ${kindOf(v)}`);
    return v;
  }
}
