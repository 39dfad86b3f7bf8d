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

function check(leaf: LogLeaf): void {
  const fail = (why: string): never => {
    throw new ProtocolError('LEAF_MALFORMED', `leaf: ${why}`);
  };
  if (!Number.isSafeInteger(leaf.receivedAt) || leaf.receivedAt < 0) fail('receivedAt (1) must be a non-negative integer of ms');
  if (typeof leaf.source !== 'string' || leaf.source.length === 0 || leaf.source.length > MAX_SOURCE_LENGTH) {
    fail(`source (2) must be text of 1..${MAX_SOURCE_LENGTH} characters`);
  }
  if (!(leaf.certSha256 instanceof Uint8Array) || leaf.certSha256.length !== 32) fail('certSha256 (3) must be 32 bytes');
  if (!(leaf.frame instanceof Uint8Array) || leaf.frame.length === 0 || leaf.frame.length > MAX_FRAME_BYTES) {
    fail(`frame (4) must be 1..${MAX_FRAME_BYTES} bytes`);
  }
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
  const { receivedAt, certSha256, frame } = leaf;
  const out = new Uint8Array(
    1 + 2 + (1 + headLength(receivedAt)) + (1 + headLength(source.length) + source.length) + (1 + 2 + 32) + (1 + headLength(frame.length) + frame.length),
  );
  out[0] = 0xa5; // map of 5
  out[1] = 0x00;
  out[2] = LEAF_VERSION;
  out[3] = 0x01;
  let at = writeHead(out, 4, 0, receivedAt);
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
  invariant(at + frame.length === out.length, 'leaf size prediction');
  return out;
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
