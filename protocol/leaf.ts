/**
 * The gateway's Merkle log leaf (docs/protocol.md "Log leaf"). A leaf binds a device's signed frame,
 * exactly as received, to what the gateway adds: when it received the frame, over which port, and
 * which device certificate verified it. Everything the history output shows is therefore covered
 * either by the device's COSE signature (the frame fields) or by the leaf hash under the gateway's
 * signed checkpoint (receive time, source, certificate) — DESIGN.md decision 3.
 *
 * Leaf data v1 is a deterministic CBOR map: {0: 1, 1: receivedAt ms, 2: source text, 3: SHA-256 of the
 * device certificate DER, 4: COSE_Sign1 bytes}. The Merkle leaf hash is RFC 9162 SHA-256(0x00 ‖ data).
 */
import { utf8 } from './bytes.js';
import { decodeCbor, headLength, writeHead } from './cbor.js';
import { invariant, ProtocolError } from './errors.js';

export const LEAF_VERSION = 1;
/** Cap on leaf data: a 768-byte COSE frame plus the gateway's fields. */
export const MAX_LEAF_BYTES = 1024;
export const MAX_SOURCE_LENGTH = 128;
const MAX_FRAME_BYTES = 768;

export interface LogLeaf {
  /** Gateway clock when the frame was received, ms since the Unix epoch. */
  readonly receivedAt: number;
  /** Where the frame came from, e.g. `serial:/dev/ttyUSB0` or `ble:AA:BB:CC:DD:EE:FF`. */
  readonly source: string;
  /** SHA-256 of the DER device certificate whose key verified the frame. */
  readonly certSha256: Uint8Array;
  /** The COSE_Sign1 frame, byte for byte as the device sent it. */
  readonly frame: Uint8Array;
}

/** Throws LEAF_MALFORMED naming the first field out of range. */
export function checkLeaf(receivedAt: number, source: string, certSha256: Uint8Array, frame: Uint8Array): void {
  let why: string | undefined;
  if (!Number.isSafeInteger(receivedAt) || receivedAt < 0) why = 'receivedAt (1) must be a non-negative integer of ms';
  else if (typeof source !== 'string' || source.length === 0 || source.length > MAX_SOURCE_LENGTH) why = `source (2) must be text of 1..${MAX_SOURCE_LENGTH} characters`;
  else if (!(certSha256 instanceof Uint8Array) || certSha256.length !== 32) why = 'certSha256 (3) must be 32 bytes';
  else if (!(frame instanceof Uint8Array) || frame.length === 0 || frame.length > MAX_FRAME_BYTES) why = `frame (4) must be 1..${MAX_FRAME_BYTES} bytes`;
  if (why !== undefined) throw new ProtocolError('LEAF_MALFORMED', `leaf: ${why}`);
}

const check = (leaf: LogLeaf): void => {
  checkLeaf(leaf.receivedAt, leaf.source, leaf.certSha256, leaf.frame);
};

/** Size of the leaf data of a frame of `frameBytes` received at `receivedAt` over a source of `sourceBytes` UTF-8 bytes. */
export function leafSize(receivedAt: number, sourceBytes: number, frameBytes: number): number {
  return 1 + 2 + (1 + headLength(receivedAt)) + (1 + headLength(sourceBytes) + sourceBytes) + (1 + 2 + 32) + (1 + headLength(frameBytes) + frameBytes);
}

/**
 * Encodes leaf data. Throws LEAF_MALFORMED when a field is out of range. The map's shape is fixed,
 * so it is written directly, sized exactly (the gateway encodes one leaf per frame): map(5), then
 * keys 0..4 — one byte each and already in deterministic order — each followed by its value. The
 * bytes equal encodeCbor of the same map (leaf.test.ts checks it).
 */
export function encodeLeaf(leaf: LogLeaf): Uint8Array {
  check(leaf);
  const source = utf8(leaf.source);
  const out = new Uint8Array(leafSize(leaf.receivedAt, source.length, leaf.frame.length));
  const end = writeLeaf(out, 0, leaf.receivedAt, source, leaf.certSha256, leaf.frame);
  invariant(end === out.length, 'leaf size prediction');
  return out;
}

/**
 * Writes the leaf data of fields already checked (checkLeaf; `source` as its UTF-8 bytes) at `at` in
 * `out`, which must have leafSize bytes free there; returns the offset after it. encodeLeaf's
 * writer, for callers that lay many leaves out in one buffer (the gateway's verification workers).
 */
export function writeLeaf(out: Uint8Array, at: number, receivedAt: number, source: Uint8Array, certSha256: Uint8Array, frame: Uint8Array): number {
  out[at] = 0xa5; // map of 5
  out[at + 1] = 0x00;
  out[at + 2] = LEAF_VERSION;
  out[at + 3] = 0x01;
  at = writeHead(out, at + 4, 0, receivedAt);
  out[at++] = 0x02;
  at = writeHead(out, at, 3, source.length);
  out.set(source, at);
  at += source.length;
  out[at++] = 0x03;
  at = writeHead(out, at, 2, 32);
  out.set(certSha256, at);
  at += 32;
  out[at++] = 0x04;
  at = writeHead(out, at, 2, frame.length);
  out.set(frame, at);
  return at + frame.length;
}

/**
 * Decodes leaf data. Throws LEAF_MALFORMED (size cap, wrong shape or version, field out of range)
 * or a CBOR_* code for non-deterministic CBOR. Byte fields are views into `data`.
 */
export function decodeLeaf(data: Uint8Array): LogLeaf {
  if (data.length > MAX_LEAF_BYTES) throw new ProtocolError('LEAF_MALFORMED', `leaf: ${data.length} bytes exceeds the ${MAX_LEAF_BYTES}-byte cap`);
  const m = decodeCbor(data, { maxDepth: 1 });
  if (!(m instanceof Map)) throw new ProtocolError('LEAF_MALFORMED', 'leaf: expected a CBOR map');
  if (m.size !== 5 || ![0, 1, 2, 3, 4].every((k) => m.has(k))) throw new ProtocolError('LEAF_MALFORMED', 'leaf: expected exactly keys 0..4');
  if (m.get(0) !== LEAF_VERSION) throw new ProtocolError('LEAF_MALFORMED', `leaf: unknown version, expected ${LEAF_VERSION}`);
  const receivedAt = m.get(1);
  const source = m.get(2);
  const certSha256 = m.get(3);
  const frame = m.get(4);
  if (typeof receivedAt !== 'number') throw new ProtocolError('LEAF_MALFORMED', 'leaf: receivedAt (1) must be an integer');
  if (typeof source !== 'string') throw new ProtocolError('LEAF_MALFORMED', 'leaf: source (2) must be text');
  if (!(certSha256 instanceof Uint8Array)) throw new ProtocolError('LEAF_MALFORMED', 'leaf: certSha256 (3) must be bytes');
  if (!(frame instanceof Uint8Array)) throw new ProtocolError('LEAF_MALFORMED', 'leaf: frame (4) must be bytes');
  const leaf = { receivedAt, source, certSha256, frame };
  check(leaf);
  return leaf;
}
