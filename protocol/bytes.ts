/**
 * Byte helpers used across protocol/: concatenation, constant-time equality, hex and base64
 * (standard and url-safe, both strict), and CRC-32. Pure and portable (no node: imports) so the
 * browser build can use them. Decoders here throw ProtocolError with the caller-supplied code.
 */
import { ProtocolError, type ProtocolErrorCode } from './errors.js';

export function concatBytes(...parts: readonly Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/** Constant-time for equal lengths (compares every byte); length is not secret. */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= (a[i] ?? 0) ^ (b[i] ?? 0);
  return diff === 0;
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

export function toHex(b: Uint8Array): string {
  let s = '';
  for (const x of b) s += HEX[x] ?? '';
  return s;
}

/** Lowercase or uppercase hex, even length; anything else throws `code`. */
export function fromHex(s: string, code: ProtocolErrorCode = 'LINE_ENCODING', what = 'hex'): Uint8Array {
  if (s.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(s)) {
    throw new ProtocolError(code, `${what}: expected an even number of hex digits`);
  }
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(s.slice(2 * i, 2 * i + 2), 16);
  return out;
}

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const codes = (alphabet: string): Uint8Array => Uint8Array.from(alphabet, (c) => c.charCodeAt(0));
const B64_CODES = codes(B64);
const B64URL_CODES = codes(B64URL);

/** Length of the base64 text of `n` bytes, padded or not. */
export function base64Length(n: number, pad: boolean): number {
  return pad ? Math.ceil(n / 3) * 4 : Math.floor(n / 3) * 4 + (n % 3 === 0 ? 0 : (n % 3) + 1);
}

/** Writes the base64 text of `b` as ASCII bytes at `at` in `out` (base64Length bytes); returns the end offset. */
function encode64Into(b: Uint8Array, alphabet: Uint8Array, pad: boolean, out: Uint8Array, at: number): number {
  let i = 0;
  for (; i + 2 < b.length; i += 3) {
    const n = ((b[i] as number) << 16) | ((b[i + 1] as number) << 8) | (b[i + 2] as number);
    out[at++] = alphabet[n >>> 18] as number;
    out[at++] = alphabet[(n >>> 12) & 63] as number;
    out[at++] = alphabet[(n >>> 6) & 63] as number;
    out[at++] = alphabet[n & 63] as number;
  }
  const rest = b.length - i;
  if (rest > 0) {
    const n = ((b[i] as number) << 16) | (rest === 2 ? (b[i + 1] as number) << 8 : 0);
    out[at++] = alphabet[n >>> 18] as number;
    out[at++] = alphabet[(n >>> 12) & 63] as number;
    if (rest === 2) out[at++] = alphabet[(n >>> 6) & 63] as number;
    if (pad) for (let k = rest; k < 3; k++) out[at++] = 0x3d; // '='
  }
  return at;
}

function encode64(b: Uint8Array, alphabet: Uint8Array, pad: boolean): string {
  const text = new Uint8Array(base64Length(b.length, pad));
  encode64Into(b, alphabet, pad, text, 0);
  let out = '';
  for (let i = 0; i < text.length; i += 8192) out += String.fromCharCode.apply(null, text.subarray(i, i + 8192) as unknown as number[]);
  return out;
}

/** Writes the unpadded base64url text of `b` at `at` in `out`; returns the end offset (the serial line encoder's path). */
export const toBase64UrlInto = (b: Uint8Array, out: Uint8Array, at: number): number => encode64Into(b, B64URL_CODES, false, out, at);

const REV64 = new Int16Array(128).fill(-1);
const REV64URL = new Int16Array(128).fill(-1);
for (let i = 0; i < 64; i++) {
  REV64[B64.charCodeAt(i)] = i;
  REV64URL[B64URL.charCodeAt(i)] = i;
}

/**
 * Strict decoding: only the alphabet's characters, padding exactly as `pad` says, and zero
 * unused bits in the last character (so every byte string has exactly one accepted encoding).
 */
function decode64(s: string, rev: Int16Array, pad: boolean, code: ProtocolErrorCode, what: string): Uint8Array {
  let body = s;
  if (pad) {
    if (s.length % 4 !== 0) throw new ProtocolError(code, `${what}: expected padded base64 (length a multiple of 4)`);
    if (s.endsWith('==')) body = s.slice(0, -2);
    else if (s.endsWith('=')) body = s.slice(0, -1);
  }
  // Characters beyond Latin-1 become 0xff, which no alphabet holds: reported at their offset.
  const chars = new Uint8Array(body.length);
  for (let i = 0; i < body.length; i++) {
    const c = body.charCodeAt(i);
    chars[i] = c < 256 ? c : 0xff;
  }
  return decode64Bytes(chars, 0, chars.length, rev, code, what);
}

/**
 * Unpadded base64 in the bytes b[start..end) (ASCII), decoded with the reverse alphabet `rev`.
 * Throws `code` naming the first offending offset (relative to `start`) or a non-canonical tail.
 */
function decode64Bytes(b: Uint8Array, start: number, end: number, rev: Int16Array, code: ProtocolErrorCode, what: string): Uint8Array {
  const len = end - start;
  if (len % 4 === 1) throw new ProtocolError(code, `${what}: impossible base64 length`);
  const out = new Uint8Array(Math.floor((len * 3) / 4));
  let acc = 0;
  let bits = 0;
  let o = 0;
  for (let i = start; i < end; i++) {
    const c = b[i] as number;
    const v = c < 128 ? (rev[c] as number) : -1;
    if (v < 0) throw new ProtocolError(code, `${what}: invalid character at offset ${i - start}`);
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (acc >>> bits) & 0xff;
      acc &= (1 << bits) - 1;
    }
  }
  if (acc !== 0) throw new ProtocolError(code, `${what}: non-zero trailing bits (non-canonical base64)`);
  return out;
}

export const toBase64 = (b: Uint8Array): string => encode64(b, B64_CODES, true);
export const toBase64Url = (b: Uint8Array): string => encode64(b, B64URL_CODES, false);
export const fromBase64 = (s: string, code: ProtocolErrorCode, what = 'base64'): Uint8Array =>
  decode64(s, REV64, true, code, what);
export const fromBase64Url = (s: string, code: ProtocolErrorCode, what = 'base64url'): Uint8Array =>
  decode64(s, REV64URL, false, code, what);
/** fromBase64Url of the ASCII bytes b[start..end) without building a string (the serial line decoder's path). */
export const fromBase64UrlBytes = (b: Uint8Array, start: number, end: number, code: ProtocolErrorCode, what = 'base64url'): Uint8Array =>
  decode64Bytes(b, start, end, REV64URL, code, what);

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32/ISO-HDLC (the zlib/Ethernet CRC): poly 0x04C11DB7 reflected, init and xorout 0xFFFFFFFF. */
export function crc32(b: Uint8Array, start = 0, end = b.length): number {
  let c = 0xffffffff;
  for (let i = start; i < end; i++) c = (CRC_TABLE[(c ^ (b[i] ?? 0)) & 0xff] ?? 0) ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

export const utf8 = (s: string): Uint8Array => utf8Encoder.encode(s);

/** Strict UTF-8 decoding; invalid sequences throw `code`. */
export function fromUtf8(b: Uint8Array, code: ProtocolErrorCode, what = 'text'): string {
  try {
    return utf8Decoder.decode(b);
  } catch (e) {
    throw new ProtocolError(code, `${what}: invalid UTF-8`, { cause: e });
  }
}
