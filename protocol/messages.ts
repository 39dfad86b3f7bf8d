/**
 * The message envelope shared by the serial and BLE transports (docs/protocol.md §4): a message
 * is a type letter plus a body. F (frame) carries a COSE_Sign1 frame verbatim; every other body is a
 * deterministic CBOR map or array (protocol/cbor.ts, RFC 8949 §4.2.1) with small integer keys. This
 * file owns the message union, its encoder and its validating decoder, the ack range rules, and the
 * proof-of-possession message. Typed request arguments and response results live in message-ops.ts;
 * the line and chunk codecs in serial.ts and ble.ts. The transports add integrity checks (CRC-32)
 * against noise only: authenticity comes from the COSE signature on frames, never from this layer.
 */
import { concatBytes, utf8 } from './bytes.js';
import { decodeCbor, encodeCbor, type CborMap, type CborValue } from './cbor.js';
import { ProtocolError } from './errors.js';
import { checkArray, checkBytes, checkMap, checkText, checkUint, Fields, malformed } from './wire-schema.js';

/** COSE algorithm identifiers a device key may have: EdDSA/Ed25519 (−8) and ES256 (−7), RFC 9053 §2. */
export type DeviceKeyAlg = -8 | -7;

/** An inclusive range [lo, hi] of frame counters. */
export type AckRange = [lo: number, hi: number];

/** The device's self-description (H body and the `hello` result). */
export interface HelloInfo {
  version: 1;
  /** Pack serial; "" before provisioning. */
  serial: string;
  model: string;
  firmware: string;
  /** null until the device has generated its key pair. */
  alg: DeviceKeyAlg | null;
  /** Raw public key: 32 bytes (Ed25519) or the 65-byte uncompressed P-256 point; null with alg null. */
  publicKey: Uint8Array | null;
  /** DER certificates, device certificate first, 0–4 entries. */
  chain: Uint8Array[];
  /** The counter the next new frame will carry. */
  nextCounter: number;
  /** Frames in the device's resend buffer not yet acknowledged. */
  unacked: number;
}

export interface FrameMessage {
  type: 'frame';
  /** COSE_Sign1 bytes exactly as signed; hash and store these, never a re-encoding. */
  cose: Uint8Array;
}
export interface AckMessage {
  type: 'ack';
  ranges: AckRange[];
}
export type HelloMessage = { type: 'hello' } & HelloInfo;
export interface RequestMessage {
  type: 'request';
  id: number;
  op: string;
  /** Raw arguments; message-ops.ts `parseRequest` checks them for the known ops. */
  args: CborMap;
}
export interface ResponseMessage {
  type: 'response';
  id: number;
  /** "ok" or an error code such as "NO_KEY". */
  status: string;
  /** The op-specific result map when status is "ok", else a human-readable text. */
  result: CborMap | string;
}
export interface ErrorNoticeMessage {
  type: 'error';
  code: string;
  message: string;
}
export type Message = FrameMessage | AckMessage | HelloMessage | RequestMessage | ResponseMessage | ErrorNoticeMessage;

/** One outcome of a streaming decoder (serial LineDecoder, BLE Reassembler). */
export type DecodeEvent =
  | { kind: 'message'; message: Message }
  /** `raw` is a short printable preview of the offending bytes, for logs (never parsed). */
  | { kind: 'error'; error: ProtocolError; raw?: string };

/** Limits of docs/protocol.md §4 "Limits"; every one is checked before allocating. */
export const MESSAGE_LIMITS = Object.freeze({
  /** Any body. Chosen so a serial line with CR LF stays within 4096 bytes (4 + 4080 + 1 + 8 + 2). */
  maxBody: 3060,
  maxFrame: 768,
  maxAckRanges: 32,
  maxChain: 4,
  maxCert: 2048,
  maxRequestId: 0xffffffff,
  maxSerial: 32,
  maxModel: 64,
  maxFirmware: 32,
  maxCode: 32,
  maxText: 256,
  /** CBOR nesting: response → result → hello → chain → bstr needs 4. */
  cborDepth: 8,
});

const LETTER_OF = { frame: 'F', ack: 'A', hello: 'H', request: 'Q', response: 'R', error: 'E' } as const;
export type MessageLetter = (typeof LETTER_OF)[keyof typeof LETTER_OF];

/** Error and status codes: upper-case letters, digits and '_', starting with a letter. */
export const CODE_PATTERN = /^[A-Z][A-Z0-9_]*$/;
/** Request op names: lower-case letters, digits and '_', starting with a letter. */
export const OP_PATTERN = /^[a-z][a-z0-9_]*$/;

const HELLO_FIELDS = {
  1: 'protocol version',
  2: 'pack serial',
  3: 'model',
  4: 'firmware version',
  5: 'COSE alg',
  6: 'public key',
  7: 'certificate chain',
  8: 'next frame counter',
  9: 'unacknowledged frames',
};
const REQUEST_FIELDS = { 1: 'request id', 2: 'op', 3: 'args' };
const RESPONSE_FIELDS = { 1: 'request id', 2: 'status', 3: 'result' };
const ERROR_FIELDS = { 1: 'code', 2: 'message' };

/** Checks a COSE alg value: −8, −7 or null. */
export function checkAlg(v: CborValue, what: string): DeviceKeyAlg | null {
  if (v === null || v === -8 || v === -7) return v;
  return malformed(what, 'expected -8 (EdDSA), -7 (ES256) or null');
}

/** Checks a raw public key against its alg: 32 bytes for Ed25519, 0x04 ‖ x ‖ y (65 bytes) for P-256. */
export function checkPublicKey(v: CborValue, alg: DeviceKeyAlg, what: string): Uint8Array {
  const key = checkBytes(v, what, alg === -8 ? 32 : 65, alg === -8 ? 32 : 65);
  if (alg === -7 && key[0] !== 0x04) malformed(what, 'expected an uncompressed SEC1 point (first byte 0x04)');
  return key;
}

/** Checks a certificate chain: 0–4 (at least `min`) DER certificates of 1–2048 bytes each. */
export function checkChain(v: CborValue, what: string, min = 0): Uint8Array[] {
  const items = checkArray(v, what, MESSAGE_LIMITS.maxChain, min);
  return items.map((c, i) => checkBytes(c, `${what} entry ${i}`, 1, MESSAGE_LIMITS.maxCert));
}

/** The hello body map (also the `hello` op result). Throws CBOR_ENCODE for non-integer numbers. */
export function helloToMap(h: HelloInfo): CborMap {
  return new Map<number, CborValue>([
    [1, h.version],
    [2, h.serial],
    [3, h.model],
    [4, h.firmware],
    [5, h.alg],
    [6, h.publicKey],
    [7, h.chain],
    [8, h.nextCounter],
    [9, h.unacked],
  ]);
}

/** Validates a hello body map. Throws MSG_MALFORMED naming the field. */
export function helloFromMap(v: CborValue, what = 'hello'): HelloInfo {
  const f = Fields.of(v, what, HELLO_FIELDS);
  if (f.uint(1) !== 1) malformed(f.label(1), 'expected 1');
  const serial = f.text(2, MESSAGE_LIMITS.maxSerial);
  const model = f.text(3, MESSAGE_LIMITS.maxModel);
  const firmware = f.text(4, MESSAGE_LIMITS.maxFirmware);
  const alg = checkAlg(f.get(5), f.label(5));
  const rawKey = f.get(6);
  let publicKey: Uint8Array | null = null;
  if (alg === null) {
    if (rawKey !== null) malformed(f.label(6), 'expected null while field 5 (COSE alg) is null');
  } else {
    publicKey = checkPublicKey(rawKey, alg, f.label(6));
  }
  const chain = checkChain(f.get(7), f.label(7));
  if (chain.length > 0 && alg === null) malformed(f.label(7), 'expected no certificates before the device has a key');
  const nextCounter = f.uint(8);
  const unacked = f.uint(9);
  if (unacked > nextCounter) malformed(f.label(9), `expected at most field 8 (next frame counter) = ${nextCounter}`);
  return { version: 1, serial, model, firmware, alg, publicKey, chain, nextCounter, unacked };
}

function checkRanges(v: CborValue): AckRange[] {
  const items = checkArray(v, 'ack', MESSAGE_LIMITS.maxAckRanges, 1);
  const ranges: AckRange[] = [];
  let prevHi = -2;
  items.forEach((item, i) => {
    const what = `ack range ${i}`;
    const pair = checkArray(item, what, 2, 2);
    const lo = checkUint(pair[0] ?? null, `${what} lo`);
    const hi = checkUint(pair[1] ?? null, `${what} hi`);
    if (lo > hi) malformed(what, `expected lo <= hi, got [${lo}, ${hi}]`);
    // Sorted, disjoint and coalesced: each range starts at least 2 above the previous end, so every
    // set of counters has exactly one encoding (ackRanges produces it).
    if (lo <= prevHi + 1) malformed(what, `expected lo > ${prevHi + 1} (ranges sorted, disjoint and coalesced)`);
    prevHi = hi;
    ranges.push([lo, hi]);
  });
  return ranges;
}

/** The CBOR value of every body but F's (a frame is carried verbatim, not wrapped in CBOR). */
function bodyValue(msg: Exclude<Message, FrameMessage>): CborValue {
  switch (msg.type) {
    case 'ack':
      return msg.ranges.map(([lo, hi]) => [lo, hi]);
    case 'hello':
      return helloToMap(msg);
    case 'request':
      return new Map<number, CborValue>([
        [1, msg.id],
        [2, msg.op],
        [3, msg.args],
      ]);
    case 'response':
      return new Map<number, CborValue>([
        [1, msg.id],
        [2, msg.status],
        [3, msg.result],
      ]);
    case 'error':
      return new Map<number, CborValue>([
        [1, msg.code],
        [2, msg.message],
      ]);
  }
}

/**
 * Encodes a message. The result is decoded again before it is returned, so the encoder never emits
 * a body the decoder would reject. Throws MSG_MALFORMED / MSG_TOO_LARGE (as decodeMessage would) and
 * CBOR_ENCODE for values outside the CBOR subset (non-integer numbers).
 */
export function encodeMessage(msg: Message): { type: MessageLetter; body: Uint8Array } {
  const type = LETTER_OF[msg.type];
  const body = msg.type === 'frame' ? Uint8Array.from(msg.cose) : encodeCbor(bodyValue(msg));
  decodeMessage(type, body);
  return { type, body };
}

/**
 * Decodes and validates a message body. Byte strings in the result are views into `body`: copy
 * them if `body` will be reused. Throws MSG_TYPE (unknown letter), MSG_TOO_LARGE (body over its cap),
 * CBOR_* (not deterministic CBOR), MSG_MALFORMED (a field outside the schema; the message names it).
 */
export function decodeMessage(typeLetter: string, body: Uint8Array): Message {
  if (body.length > MESSAGE_LIMITS.maxBody) {
    throw new ProtocolError('MSG_TOO_LARGE', `message: body of ${body.length} bytes exceeds ${MESSAGE_LIMITS.maxBody}`);
  }
  switch (typeLetter) {
    case 'F':
      if (body.length > MESSAGE_LIMITS.maxFrame) {
        throw new ProtocolError('MSG_TOO_LARGE', `message: frame of ${body.length} bytes exceeds ${MESSAGE_LIMITS.maxFrame}`);
      }
      if (body.length === 0) malformed('frame', 'expected COSE_Sign1 bytes, got an empty body');
      return { type: 'frame', cose: body };
    case 'A':
      return { type: 'ack', ranges: checkRanges(cbor(body)) };
    case 'H':
      return { type: 'hello', ...helloFromMap(cbor(body)) };
    case 'Q': {
      const f = Fields.of(cbor(body), 'request', REQUEST_FIELDS);
      const id = f.uint(1, MESSAGE_LIMITS.maxRequestId);
      const op = f.text(2, MESSAGE_LIMITS.maxCode, 1, OP_PATTERN);
      return { type: 'request', id, op, args: checkMap(f.get(3), f.label(3)) };
    }
    case 'R': {
      const f = Fields.of(cbor(body), 'response', RESPONSE_FIELDS);
      const id = f.uint(1, MESSAGE_LIMITS.maxRequestId);
      const status = f.text(2, MESSAGE_LIMITS.maxCode, 1);
      if (status !== 'ok' && !CODE_PATTERN.test(status)) malformed(f.label(2), 'expected "ok" or an upper-case error code');
      const result = status === 'ok' ? checkMap(f.get(3), f.label(3)) : checkText(f.get(3), f.label(3), MESSAGE_LIMITS.maxText);
      return { type: 'response', id, status, result };
    }
    case 'E': {
      const f = Fields.of(cbor(body), 'error', ERROR_FIELDS);
      const code = f.text(1, MESSAGE_LIMITS.maxCode, 1, CODE_PATTERN);
      return { type: 'error', code, message: f.text(2, MESSAGE_LIMITS.maxText) };
    }
    default:
      throw new ProtocolError('MSG_TYPE', `message: unknown type ${JSON.stringify(typeLetter)} (expected one of F A H Q R E)`);
  }
}

function cbor(body: Uint8Array): CborValue {
  return decodeCbor(body, { maxDepth: MESSAGE_LIMITS.cborDepth });
}

/**
 * Coalesces frame counters into the canonical ack ranges: sorted, duplicates removed, runs of
 * consecutive counters merged. May return more than 32 ranges: use ackMessages to split them.
 * Throws MSG_MALFORMED for a counter that is not an unsigned safe integer.
 */
export function ackRanges(counters: readonly number[]): AckRange[] {
  for (const c of counters) {
    if (!Number.isSafeInteger(c) || c < 0) malformed('ack counter', `expected an unsigned integer, got ${c}`);
  }
  const sorted = Float64Array.from(counters).sort();
  const out: AckRange[] = [];
  for (const c of sorted) {
    const last = out[out.length - 1];
    if (last && c <= last[1] + 1) last[1] = Math.max(last[1], c);
    else out.push([c, c]);
  }
  return out;
}

/** Ack messages covering `counters`, at most 32 ranges each. Throws as ackRanges. */
export function ackMessages(counters: readonly number[]): AckMessage[] {
  const ranges = ackRanges(counters);
  const out: AckMessage[] = [];
  for (let i = 0; i < ranges.length; i += MESSAGE_LIMITS.maxAckRanges) {
    out.push({ type: 'ack', ranges: ranges.slice(i, i + MESSAGE_LIMITS.maxAckRanges) });
  }
  return out;
}

const POP_CONTEXT = utf8('packchain-pop-v1');

/**
 * The bytes a device signs to prove possession of its key: "packchain-pop-v1" ‖ 0x00 ‖ challenge (32)
 * ‖ publicKeyRaw. The first byte is 'p' (0x70), so it can never be mistaken for a COSE Sig_structure,
 * which starts 0x84 (RFC 9052 §4.4). Ed25519 signs it as is; ES256 signs its SHA-256 (raw r‖s).
 * Throws MSG_MALFORMED for a challenge that is not 32 bytes or a key that is not 32 or 65 bytes.
 */
export function popMessage(challenge: Uint8Array, publicKeyRaw: Uint8Array): Uint8Array {
  checkBytes(challenge, 'proof-of-possession challenge', 32, 32);
  if (publicKeyRaw.length !== 32 && publicKeyRaw.length !== 65) {
    malformed('proof-of-possession public key', `expected 32 or 65 bytes, got ${publicKeyRaw.length}`);
  }
  return concatBytes(POP_CONTEXT, Uint8Array.of(0), challenge, publicKeyRaw);
}
