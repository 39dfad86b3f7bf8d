/**
 * The serial line codec (docs/protocol.md §5): one message per ASCII line,
 * `"pc" TYPE " " BASE64URL(body) " " CRC32-hex LF`, readable with `cat /dev/ttyUSB0` and
 * resynchronising on the next LF after any noise. The CRC-32/ISO-HDLC over the line up to the space
 * before it separates line noise (LINE_CRC: the device resends unacknowledged frames) from forgery
 * (a line whose CRC is fine but whose COSE signature fails later is a security event upstream).
 * `LineDecoder` is the pure streaming stage with a bounded carry buffer (the gateway wraps it in a
 * Transform); `parseLine` decodes one line and `encodeLine` is its inverse.
 */
import { base64Length, crc32, fromBase64UrlBytes, toBase64UrlInto } from './bytes.js';
import { invariant, ProtocolError, type ProtocolErrorCode } from './errors.js';
import { decodeMessage, encodeMessage, type DecodeEvent, type Message } from './messages.js';

/** Maximum line length in bytes, counting the LF and a tolerated CR. */
export const MAX_LINE_BYTES = 4096;
/** The most bytes a line may hold before its LF (so the carry buffer never exceeds this). */
const MAX_CONTENT = MAX_LINE_BYTES - 1;
/** Bytes shown in an error event's `raw` preview. */
const PREVIEW_BYTES = 64;

const LF = 0x0a;
const CR = 0x0d;
const SP = 0x20;
const P = 0x70;
const C = 0x63;

const HEX = '0123456789abcdef';

function crcHex(crc: number): string {
  let s = '';
  for (let shift = 28; shift >= 0; shift -= 4) s += HEX.charAt((crc >>> shift) & 0xf);
  return s;
}

/** The value of 8 lowercase hex digits at b[at..at+8), or -1 if they are not exactly that. */
function parseCrcHex(b: Uint8Array, at: number): number {
  let v = 0;
  for (let i = at; i < at + 8; i++) {
    const c = b[i] ?? 0;
    const d = c >= 0x30 && c <= 0x39 ? c - 0x30 : c >= 0x61 && c <= 0x66 ? c - 0x57 : -1;
    if (d < 0) return -1;
    v = v * 16 + d;
  }
  return v;
}

/** A printable preview of at most 64 bytes: printable ASCII as is, anything else as \xNN. */
export function previewText(b: Uint8Array): string {
  let s = '';
  for (const c of b.subarray(0, PREVIEW_BYTES)) {
    s += c >= 0x20 && c < 0x7f && c !== 0x5c ? String.fromCharCode(c) : `\\x${HEX.charAt(c >> 4)}${HEX.charAt(c & 0xf)}`;
  }
  return b.length > PREVIEW_BYTES ? `${s}...` : s;
}

/**
 * Encodes a message as one line, LF included. Throws as encodeMessage (MSG_MALFORMED, MSG_TOO_LARGE,
 * CBOR_ENCODE); every message within the body caps fits in MAX_LINE_BYTES.
 */
export function encodeLine(msg: Message): Uint8Array {
  const { type, body } = encodeMessage(msg);
  // "pc" TYPE " " base64url " " crc LF, written in place.
  const crcAt = 4 + base64Length(body.length, false) + 1;
  const out = new Uint8Array(crcAt + 9);
  out[0] = P;
  out[1] = C;
  out[2] = type.charCodeAt(0);
  out[3] = SP;
  out[crcAt - 1] = SP;
  invariant(toBase64UrlInto(body, out, 4) === crcAt - 1, 'serial: line size prediction');
  const crc = crcHex(crc32(out, 0, crcAt));
  for (let i = 0; i < 8; i++) out[crcAt + i] = crc.charCodeAt(i);
  out[crcAt + 8] = LF;
  return out;
}

/**
 * Decodes one line given without its LF (one trailing CR is tolerated). Checks, in this order: the
 * length (LINE_TOO_LONG), the "pc" TYPE " " prefix (LINE_GARBAGE), the " " + 8 lowercase hex digits
 * CRC field (LINE_ENCODING), the CRC (LINE_CRC), the base64url body (LINE_ENCODING), then the body
 * (MSG_TYPE, MSG_TOO_LARGE, MSG_MALFORMED, CBOR_*). The CRC is checked before the base64 so that
 * damage in transit reads as noise; LINE_ENCODING with a good CRC means a broken sender.
 * Throws ProtocolError only.
 */
export function parseLine(line: Uint8Array): Message {
  if (line.length > MAX_CONTENT) {
    throw new ProtocolError('LINE_TOO_LONG', `serial: line of ${line.length + 1} bytes exceeds ${MAX_LINE_BYTES}`);
  }
  const end = line[line.length - 1] === CR ? line.length - 1 : line.length;
  const t = line[2] ?? 0;
  if (end < 4 || line[0] !== P || line[1] !== C || t < 0x41 || t > 0x5a || line[3] !== SP) {
    throw new ProtocolError('LINE_GARBAGE', 'serial: expected a line starting "pc", a type letter A-Z and a space');
  }
  const sp = end - 9;
  if (sp < 4 || line[sp] !== SP) {
    throw new ProtocolError('LINE_ENCODING', 'serial: expected a space and an 8-digit CRC at the end of the line');
  }
  const declared = parseCrcHex(line, sp + 1);
  if (declared < 0) throw new ProtocolError('LINE_ENCODING', 'serial: CRC: expected 8 lowercase hex digits');
  const actual = crc32(line, 0, sp + 1);
  if (declared !== actual) {
    throw new ProtocolError('LINE_CRC', `serial: CRC mismatch (line says ${crcHex(declared)}, computed ${crcHex(actual)})`);
  }
  const body = fromBase64UrlBytes(line, 4, sp, 'LINE_ENCODING', 'serial: body');
  return decodeMessage(String.fromCharCode(t), body);
}

export interface LineDecoderStats {
  /** Bytes pushed. */
  bytes: number;
  /** LF-terminated lines, blank lines excepted. */
  lines: number;
  messages: number;
  /** Error events by code. */
  errors: Partial<Record<ProtocolErrorCode, number>>;
  /** Bytes skipped while resynchronising: garbage and over-long lines, LF included. */
  garbageBytes: number;
}

type Mode = 'line' | 'garbage' | 'toolong';

/**
 * Streaming line decoder. `push` accepts chunks split anywhere (even between CR and LF) and returns
 * what they completed; it never throws for any input and never holds more than MAX_LINE_BYTES − 1
 * bytes. A line is recognised as garbage as soon as its first four bytes cannot be "pc" TYPE " ":
 * one LINE_GARBAGE event is emitted then and the rest of the line is skipped without buffering.
 * Blank lines (LF or CR LF alone) are ignored. Make a fresh decoder per connection, or call flush.
 */
export class LineDecoder {
  readonly stats: LineDecoderStats = { bytes: 0, lines: 0, messages: 0, errors: {}, garbageBytes: 0 };
  private readonly carry = new Uint8Array(MAX_CONTENT);
  private len = 0;
  private mode: Mode = 'line';

  /** Bytes of the incomplete line held (≤ MAX_LINE_BYTES − 1). */
  get carryLength(): number {
    return this.len;
  }

  push(chunk: Uint8Array): DecodeEvent[] {
    const events: DecodeEvent[] = [];
    this.stats.bytes += chunk.length;
    let i = 0;
    while (i < chunk.length) {
      const nl = chunk.indexOf(LF, i);
      const end = nl < 0 ? chunk.length : nl;
      this.segment(chunk, i, end, nl >= 0, events);
      i = nl < 0 ? chunk.length : nl + 1;
    }
    return events;
  }

  /** Ends the stream: a partial line becomes LINE_TRUNCATED. The decoder is then empty and reusable. */
  flush(): DecodeEvent[] {
    const events: DecodeEvent[] = [];
    if (this.mode === 'line' && this.len > 0 && !(this.len === 1 && this.carry[0] === CR)) {
      const raw = this.carry.subarray(0, this.len);
      this.error(events, new ProtocolError('LINE_TRUNCATED', `serial: stream ended inside a line (${this.len} bytes)`), raw);
    }
    this.len = 0;
    this.mode = 'line';
    return events;
  }

  /** Handles b[start..end), the bytes up to (not including) an LF when `terminated`. */
  private segment(b: Uint8Array, start: number, end: number, terminated: boolean, events: DecodeEvent[]): void {
    const n = end - start;
    if (this.mode === 'line') {
      if (!this.prefixPossible(b, start, end)) {
        const head = new Uint8Array(Math.min(PREVIEW_BYTES + 1, this.len + n));
        head.set(this.carry.subarray(0, Math.min(this.len, head.length)));
        if (this.len < head.length) head.set(b.subarray(start, start + head.length - this.len), this.len);
        this.error(events, new ProtocolError('LINE_GARBAGE', 'serial: bytes that are not a packchain line'), head);
        this.stats.garbageBytes += this.len;
        this.len = 0;
        this.mode = 'garbage';
      } else if (this.len + n > MAX_CONTENT) {
        const raw = this.len > 0 ? this.carry.subarray(0, this.len) : b.subarray(start, end);
        this.error(events, new ProtocolError('LINE_TOO_LONG', `serial: line exceeds ${MAX_LINE_BYTES} bytes`), raw);
        this.stats.garbageBytes += this.len;
        this.len = 0;
        this.mode = 'toolong';
      } else if (terminated) {
        if (this.len === 0) {
          this.line(b.subarray(start, end), events); // the common case: the whole line is in this chunk
        } else {
          this.carry.set(b.subarray(start, end), this.len);
          this.line(this.carry.subarray(0, this.len + n), events);
          this.len = 0;
        }
        return;
      } else {
        this.carry.set(b.subarray(start, end), this.len);
        this.len += n;
        return;
      }
    }
    // Skipping a garbage or over-long line up to its LF.
    this.stats.garbageBytes += n;
    if (terminated) {
      this.stats.garbageBytes += 1;
      this.stats.lines += 1;
      this.mode = 'line';
    }
  }

  /** Whether the line's first four bytes, as far as known, can still be "pc" [A-Z] " " (or CR LF). */
  private prefixPossible(b: Uint8Array, start: number, end: number): boolean {
    const at = (p: number): number => (p < this.len ? this.carry[p] : b[start + p - this.len]) ?? 0;
    const limit = Math.min(4, this.len + end - start);
    for (let p = this.len; p < limit; p++) {
      const c = at(p);
      if (p === 0 && c !== P && c !== CR) return false;
      if (p === 1 && (at(0) !== P || c !== C)) return false; // a CR may only make up a blank line
      if (p === 2 && (c < 0x41 || c > 0x5a)) return false;
      if (p === 3 && c !== SP) return false;
    }
    return true;
  }

  private line(line: Uint8Array, events: DecodeEvent[]): void {
    if (line.length === 0 || (line.length === 1 && line[0] === CR)) return; // blank line
    this.stats.lines += 1;
    try {
      events.push({ kind: 'message', message: parseLine(line) });
      this.stats.messages += 1;
    } catch (e) {
      // Only ProtocolError is expected; anything else is a bug in protocol/ and must crash loudly.
      if (!(e instanceof ProtocolError)) throw e;
      this.error(events, e, line);
    }
  }

  private error(events: DecodeEvent[], error: ProtocolError, raw: Uint8Array): void {
    this.stats.errors[error.code] = (this.stats.errors[error.code] ?? 0) + 1;
    events.push({ kind: 'error', error, raw: previewText(raw) });
  }
}
