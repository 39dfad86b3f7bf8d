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
import { decodeCbor, encodeCbor, type CborValue } from './cbor.js';
import { ProtocolError } from './errors.js';

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

/** Encodes leaf data. Throws LEAF_MALFORMED when a field is out of range. */
export function encodeLeaf(leaf: LogLeaf): Uint8Array {
  check(leaf);
  return encodeCbor(
    new Map<number, CborValue>([
      [0, LEAF_VERSION],
      [1, leaf.receivedAt],
      [2, leaf.source],
      [3, leaf.certSha256],
      [4, leaf.frame],
    ]),
  );
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
