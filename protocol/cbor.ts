/**
 * A strict, deterministic CBOR subset (RFC 8949) — the only CBOR codec on packchain's wire.
 *
 * Supported: major types 0/1 (integers within ±(2^53 − 1), as JS numbers), 2 (byte strings), 3 (UTF-8
 * text), 4 (arrays), 5 (maps with integer or text keys), 6 (tags), and the simple values false, true,
 * null. Not supported: floats, undefined, other simple values, indefinite lengths. The decoder accepts
 * only the core deterministic encoding of RFC 8949 §4.2.1 — shortest heads, definite lengths, map keys
 * unique and sorted by the bytewise order of their encodings — so every value has exactly one accepted
 * byte form and a verifier can hash or compare bytes without re-encoding. The encoder produces that form.
 *
 * Why not cbor-x: it has no deterministic mode, accepts non-minimal and indefinite encodings, and does
 * not cap nesting depth; hostile input must yield a ProtocolError, never a RangeError or a giant
 * allocation (NOTES.md, STYLE.md habit 3). cbor-x serves as an independent oracle in the tests.
 *
 * Every length is checked against the bytes actually remaining before anything is allocated; nesting
 * is capped (default 16). Byte strings decode as views into the input (no copy).
 */
import { fromUtf8, utf8 } from './bytes.js';
import { ProtocolError } from './errors.js';

export type CborKey = number | string;
export type CborValue = number | string | Uint8Array | boolean | null | CborValue[] | CborMap | CborTag;
export type CborMap = Map<CborKey, CborValue>;

/** A tagged item (major type 6), e.g. COSE_Sign1 is tag 18. */
export class CborTag {
  constructor(
    readonly tag: number,
    readonly value: CborValue,
  ) {}
}

export interface CborDecodeOptions {
  /** Maximum nesting of arrays, maps and tags (default 16). */
  maxDepth?: number;
}

const DEFAULT_MAX_DEPTH = 16;
const MAX_SAFE = Number.MAX_SAFE_INTEGER;

class Reader {
  pos = 0;
  constructor(
    readonly b: Uint8Array,
    readonly maxDepth: number,
  ) {}

  fail(code: ConstructorParameters<typeof ProtocolError>[0], why: string): never {
    throw new ProtocolError(code, `cbor: ${why} at offset ${this.pos}`);
  }

  byte(): number {
    const v = this.b[this.pos];
    if (v === undefined) this.fail('CBOR_TRUNCATED', 'unexpected end of input');
    this.pos++;
    return v;
  }

  /** Reads the argument of a head with additional info `ai`, enforcing the shortest form. */
  argument(ai: number): number {
    if (ai < 24) return ai;
    const start = this.pos;
    let n: number;
    if (ai === 24) {
      n = this.byte();
      if (n < 24) this.fail('CBOR_NON_MINIMAL', 'one-byte argument below 24');
    } else if (ai === 25) {
      n = this.byte() * 0x100 + this.byte();
      if (n < 0x100) this.fail('CBOR_NON_MINIMAL', 'two-byte argument below 256');
    } else if (ai === 26) {
      n = this.byte() * 0x1000000 + this.byte() * 0x10000 + this.byte() * 0x100 + this.byte();
      if (n < 0x10000) this.fail('CBOR_NON_MINIMAL', 'four-byte argument below 65536');
    } else if (ai === 27) {
      const hi = this.byte() * 0x1000000 + this.byte() * 0x10000 + this.byte() * 0x100 + this.byte();
      const lo = this.byte() * 0x1000000 + this.byte() * 0x10000 + this.byte() * 0x100 + this.byte();
      if (hi === 0) this.fail('CBOR_NON_MINIMAL', 'eight-byte argument below 2^32');
      if (hi > 0x1fffff) {
        this.pos = start;
        this.fail('CBOR_INTEGER_RANGE', 'argument beyond 2^53 - 1');
      }
      n = hi * 0x100000000 + lo;
    } else if (ai === 31) {
      return this.fail('CBOR_INDEFINITE_LENGTH', 'indefinite length');
    } else {
      return this.fail('CBOR_UNSUPPORTED', `reserved additional information ${ai}`);
    }
    return n;
  }

  /** A length that must fit in what is left of the input (each element takes at least one byte). */
  length(ai: number, what: string): number {
    const n = this.argument(ai);
    if (n > this.b.length - this.pos) this.fail('CBOR_TOO_LARGE', `${what} of ${n} exceeds the remaining ${this.b.length - this.pos} bytes`);
    return n;
  }

  item(depth: number): CborValue {
    const ib = this.byte();
    const major = ib >> 5;
    const ai = ib & 0x1f;
    switch (major) {
      case 0:
        return this.argument(ai);
      case 1: {
        const n = this.argument(ai);
        if (n >= MAX_SAFE) this.fail('CBOR_INTEGER_RANGE', 'negative integer beyond -(2^53 - 1)');
        return -1 - n;
      }
      case 2: {
        const n = this.length(ai, 'byte string');
        const v = this.b.subarray(this.pos, this.pos + n);
        this.pos += n;
        return v;
      }
      case 3: {
        const n = this.length(ai, 'text string');
        const v = fromUtf8(this.b.subarray(this.pos, this.pos + n), 'CBOR_INVALID_UTF8', `cbor: text at offset ${this.pos}`);
        this.pos += n;
        return v;
      }
      case 4: {
        const n = this.length(ai, 'array');
        this.enter(depth);
        const out: CborValue[] = new Array<CborValue>(n);
        for (let i = 0; i < n; i++) out[i] = this.item(depth + 1);
        return out;
      }
      case 5: {
        const n = this.length(ai, 'map');
        this.enter(depth);
        const out: CborMap = new Map();
        let prevStart = -1;
        let prevEnd = -1;
        for (let i = 0; i < n; i++) {
          const keyStart = this.pos;
          const key = this.item(depth + 1);
          if (typeof key !== 'number' && typeof key !== 'string') {
            this.pos = keyStart;
            this.fail('CBOR_MAP_KEY', 'map key is not an integer or text string');
          }
          const keyEnd = this.pos;
          if (prevStart >= 0 && compareBytes(this.b, prevStart, prevEnd, this.b, keyStart, keyEnd) >= 0) {
            this.pos = keyStart;
            this.fail('CBOR_MAP_KEY', 'map keys duplicated or not in deterministic order');
          }
          prevStart = keyStart;
          prevEnd = keyEnd;
          out.set(key, this.item(depth + 1));
        }
        return out;
      }
      case 6: {
        const tag = this.argument(ai);
        this.enter(depth);
        return new CborTag(tag, this.item(depth + 1));
      }
      default: {
        // major 7: simple values and floats
        if (ai === 20) return false;
        if (ai === 21) return true;
        if (ai === 22) return null;
        this.pos--;
        return this.fail('CBOR_UNSUPPORTED', ai >= 25 && ai <= 27 ? 'floating-point value' : `simple value ${ai}`);
      }
    }
  }

  enter(depth: number): void {
    if (depth >= this.maxDepth) this.fail('CBOR_TOO_DEEP', `nesting deeper than ${this.maxDepth}`);
  }
}

/** Bytewise lexicographic order of a[aStart..aEnd) and b[bStart..bEnd), shorter first on a tie. */
function compareBytes(a: Uint8Array, aStart: number, aEnd: number, b: Uint8Array, bStart: number, bEnd: number): number {
  const la = aEnd - aStart;
  const lb = bEnd - bStart;
  for (let i = 0; i < Math.min(la, lb); i++) {
    const d = (a[aStart + i] ?? 0) - (b[bStart + i] ?? 0);
    if (d !== 0) return d;
  }
  return la - lb;
}

/**
 * Decodes exactly one deterministic CBOR item that spans all of `bytes`.
 * Throws ProtocolError with a CBOR_* code for anything outside the subset or not deterministic.
 */
export function decodeCbor(bytes: Uint8Array, options: CborDecodeOptions = {}): CborValue {
  const r = new Reader(bytes, options.maxDepth ?? DEFAULT_MAX_DEPTH);
  const v = r.item(0);
  if (r.pos !== bytes.length) r.fail('CBOR_TRAILING_BYTES', `${bytes.length - r.pos} bytes after the item`);
  return v;
}

class Writer {
  buf = new Uint8Array(256);
  pos = 0;

  reserve(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
  }

  head(major: number, n: number): void {
    this.reserve(9);
    this.pos = writeHead(this.buf, this.pos, major, n);
  }

  bytes(v: Uint8Array): void {
    this.reserve(v.length);
    this.buf.set(v, this.pos);
    this.pos += v.length;
  }

  value(v: CborValue, depth: number): void {
    if (depth > 64) throw new ProtocolError('CBOR_ENCODE', 'cbor: value nested deeper than 64 (cyclic?)');
    if (typeof v === 'number') {
      if (!Number.isSafeInteger(v)) throw new ProtocolError('CBOR_ENCODE', `cbor: ${v} is not a safe integer (floats are not in the subset)`);
      if (v >= 0) this.head(0, v);
      else this.head(1, -1 - v);
    } else if (typeof v === 'string') {
      const b = utf8(v);
      this.head(3, b.length);
      this.bytes(b);
    } else if (v instanceof Uint8Array) {
      this.head(2, v.length);
      this.bytes(v);
    } else if (typeof v === 'boolean') {
      this.head(7, v ? 21 : 20);
    } else if (v === null) {
      this.head(7, 22);
    } else if (Array.isArray(v)) {
      this.head(4, v.length);
      for (const x of v) this.value(x, depth + 1);
    } else if (v instanceof Map) {
      // RFC 8949 §4.2.1: keys sorted by the bytewise lexicographic order of their encodings.
      const entries = [...v.entries()].map(([k, x]) => ({ key: encodeKey(k), x }));
      const order = (a: Uint8Array, b: Uint8Array): number => compareBytes(a, 0, a.length, b, 0, b.length);
      entries.sort((a, b) => order(a.key, b.key));
      for (let i = 1; i < entries.length; i++) {
        const a = entries[i - 1];
        const b = entries[i];
        if (a && b && order(a.key, b.key) === 0) throw new ProtocolError('CBOR_ENCODE', 'cbor: duplicate map key');
      }
      this.head(5, entries.length);
      for (const e of entries) {
        this.bytes(e.key);
        this.value(e.x, depth + 1);
      }
    } else {
      if (!Number.isSafeInteger(v.tag) || v.tag < 0) throw new ProtocolError('CBOR_ENCODE', `cbor: bad tag ${v.tag}`);
      this.head(6, v.tag);
      this.value(v.value, depth + 1);
    }
  }
}

/** Encodings of the integers -24..23 (one byte each), the keys of every packchain map. */
const SMALL_INT_KEYS: readonly Uint8Array[] = Array.from({ length: 48 }, (_, i) => Uint8Array.of(i < 24 ? i : 0x20 | (i - 24)));

/** A map key's encoding; small integer keys come from a table (map encoding is on the ingest hot path). */
function encodeKey(k: CborValue): Uint8Array {
  if (typeof k === 'number' && Number.isInteger(k) && k >= -24 && k < 24) return SMALL_INT_KEYS[k >= 0 ? k : 23 - k] as Uint8Array;
  return encodeCbor(k);
}

/**
 * Encodes `value` in deterministic CBOR (RFC 8949 §4.2.1). Throws CBOR_ENCODE for values outside the
 * subset (non-integer numbers, duplicate keys, negative tags).
 */
export function encodeCbor(value: CborValue): Uint8Array {
  const w = new Writer();
  w.value(value, 0);
  return w.buf.slice(0, w.pos);
}

/** Size in bytes of the shortest head (RFC 8949 §4.2.1) for argument `n`, a safe non-negative integer. */
export function headLength(n: number): number {
  return n < 24 ? 1 : n < 0x100 ? 2 : n < 0x10000 ? 3 : n < 0x100000000 ? 5 : 9;
}

/**
 * Writes the shortest head of major type `major` with argument `n` (a safe non-negative integer)
 * into `out` at `at`, which must have headLength(n) bytes free; returns the position after it. For
 * encoders of fixed shapes on the hot path (leaf.ts, cose-sign1.ts) that size their output exactly.
 */
export function writeHead(out: Uint8Array, at: number, major: number, n: number): number {
  const m = major << 5;
  if (n < 24) {
    out[at] = m | n;
    return at + 1;
  }
  if (n < 0x100) {
    out[at] = m | 24;
    out[at + 1] = n;
    return at + 2;
  }
  if (n < 0x10000) {
    out[at] = m | 25;
    out[at + 1] = n >>> 8;
    out[at + 2] = n & 0xff;
    return at + 3;
  }
  if (n < 0x100000000) {
    out[at] = m | 26;
    out[at + 1] = n >>> 24;
    out[at + 2] = (n >>> 16) & 0xff;
    out[at + 3] = (n >>> 8) & 0xff;
    out[at + 4] = n & 0xff;
    return at + 5;
  }
  const hi = Math.floor(n / 0x100000000);
  const lo = n >>> 0;
  out[at] = m | 27;
  out[at + 1] = hi >>> 24;
  out[at + 2] = (hi >>> 16) & 0xff;
  out[at + 3] = (hi >>> 8) & 0xff;
  out[at + 4] = hi & 0xff;
  out[at + 5] = lo >>> 24;
  out[at + 6] = (lo >>> 16) & 0xff;
  out[at + 7] = (lo >>> 8) & 0xff;
  out[at + 8] = lo & 0xff;
  return at + 9;
}

/** The head bytes of a byte string of length n (used to build COSE Sig_structure without copying). */
export function byteStringHead(n: number): Uint8Array {
  const out = new Uint8Array(headLength(n));
  writeHead(out, 0, 2, n);
  return out;
}
