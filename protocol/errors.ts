/**
 * The protocol module's one error class. Every failure of a decoder or verifier in protocol/ is a
 * ProtocolError whose `code` says what was wrong; callers branch on `code`, never on message text.
 * Bad input (bytes from a device, a file or the network) is not a bug: it yields a ProtocolError.
 * A broken internal invariant is a bug: it throws a plain Error via `invariant()` and should crash.
 *
 * Codes are grouped by the part of the protocol that raises them; each group is documented in
 * docs/protocol.md next to the format it guards.
 */

/** Strict deterministic CBOR subset (protocol/cbor.ts). */
export type CborErrorCode =
  | 'CBOR_TRUNCATED' // input ends inside an item
  | 'CBOR_TRAILING_BYTES' // bytes left after the top-level item
  | 'CBOR_NON_MINIMAL' // a length or integer not in its shortest form (RFC 8949 §4.2.1)
  | 'CBOR_INDEFINITE_LENGTH' // indefinite-length item (not allowed in deterministic encoding)
  | 'CBOR_UNSUPPORTED' // a major type / simple value / float outside the subset
  | 'CBOR_TOO_DEEP' // nesting deeper than the cap
  | 'CBOR_TOO_LARGE' // a length beyond the cap or beyond the input
  | 'CBOR_INTEGER_RANGE' // integer beyond ±(2^53 − 1)
  | 'CBOR_INVALID_UTF8' // text string that is not valid UTF-8
  | 'CBOR_MAP_KEY' // map key not an integer or text, duplicated, or out of deterministic order
  | 'CBOR_ENCODE'; // value that cannot be encoded (caller bug surfaced as an error)

/** State-of-health frame payload (protocol/frame.ts). */
export type FrameErrorCode =
  | 'FRAME_TOO_LARGE'
  | 'FRAME_NOT_MAP'
  | 'FRAME_VERSION' // unknown schema version
  | 'FRAME_MISSING_FIELD'
  | 'FRAME_UNKNOWN_FIELD'
  | 'FRAME_FIELD_TYPE'
  | 'FRAME_FIELD_RANGE';

/** COSE_Sign1 (protocol/cose.ts). */
export type CoseErrorCode =
  | 'COSE_TOO_LARGE'
  | 'COSE_MALFORMED' // not a 4-element COSE_Sign1 array of the right item types
  | 'COSE_TAG' // missing or wrong CBOR tag (must be 18)
  | 'COSE_HEADER' // protected/unprotected headers outside the packchain profile
  | 'COSE_ALG_UNKNOWN'
  | 'COSE_ALG_MISMATCH' // message alg differs from the key's alg
  | 'COSE_KID_MISMATCH'
  | 'COSE_KEY' // a key that cannot be imported or has the wrong size/curve
  | 'COSE_SIGNATURE'; // signature does not verify

/** X.509 device identity, trust bundles and CRLs (protocol/identity.ts). */
export type IdentityErrorCode =
  | 'CERT_PARSE'
  | 'CERT_PROFILE' // certificate lacks what the packchain profile requires (serial, key usage, ...)
  | 'CERT_EXPIRED'
  | 'CERT_NOT_YET_VALID'
  | 'CERT_REVOKED'
  | 'CHAIN_EMPTY'
  | 'CHAIN_TOO_LONG'
  | 'CHAIN_BROKEN' // a certificate is not issued by the next one in the chain
  | 'CHAIN_SIGNATURE'
  | 'CHAIN_NOT_CA' // an issuer lacks basicConstraints CA or keyCertSign
  | 'CHAIN_UNTRUSTED' // the chain does not end at a trusted root
  | 'CRL_PARSE'
  | 'CRL_SIGNATURE'
  | 'CRL_MISSING' // no CRL for an issuing CA whose CRL is required
  | 'CRL_STALE' // nextUpdate is in the past
  | 'TRUST_BUNDLE' // trust bundle file is malformed
  | 'CERT_ISSUE'; // certificate/CRL builder given parameters outside the profile (station-side)

/** Messages shared by the serial and BLE transports (protocol/messages.ts, serial.ts, ble.ts). */
export type WireErrorCode =
  | 'LINE_TOO_LONG'
  | 'LINE_GARBAGE' // bytes that are not a packchain line
  | 'LINE_CRC' // CRC mismatch: line noise, not forgery
  | 'LINE_ENCODING' // bad base64url or bad hex
  | 'LINE_TRUNCATED' // stream ended (flush) inside a line
  | 'BLE_CHUNK' // malformed chunk header
  | 'BLE_SEQUENCE' // chunk out of order or lost
  | 'BLE_LENGTH' // message longer or shorter than its declared length, or beyond the cap
  | 'BLE_TIMEOUT' // reassembly did not complete in time
  | 'BLE_CRC'
  | 'MSG_TYPE' // unknown message type
  | 'MSG_MALFORMED' // body does not match the message type's schema
  | 'MSG_TOO_LARGE';

/** Merkle log, signed notes, checkpoints and proof bundles (protocol/merkle.ts, note.ts, ...). */
export type LogErrorCode =
  | 'MERKLE_INDEX' // index or size out of range
  | 'MERKLE_PROOF' // proof has the wrong length or does not reproduce the root
  | 'NOTE_MALFORMED'
  | 'NOTE_KEY' // malformed signer or verifier key string
  | 'NOTE_UNVERIFIED' // no signature from a known key verifies
  | 'NOTE_SIGNATURE' // a signature from a known key is invalid
  | 'CHECKPOINT_MALFORMED'
  | 'CHECKPOINT_ORIGIN'
  | 'CHECKPOINT_WITNESSES' // fewer verified witness cosignatures than the caller requires
  | 'LEAF_MALFORMED'
  | 'BUNDLE_MALFORMED'
  | 'BUNDLE_MISMATCH'; // bundle parts do not belong together (frame not in leaf, wrong leaf hash, ...)

/** The gateway ↔ ledger sync protocol (protocol/sync.ts). */
export type SyncErrorCode =
  | 'SYNC_MALFORMED' // upload body, state or result outside the schema or its caps
  | 'SYNC_AUTH'; // request authorization header malformed, stale, or its signature does not verify

/** History export: field lists and CSV (protocol/history-format.ts). */
export type HistoryErrorCode =
  | 'HISTORY_FIELDS' // a field list naming an unknown field, or naming none
  | 'HISTORY_CSV'; // CSV text that is not RFC 4180 (unterminated quote, stray quote, over the cap)

export type ProtocolErrorCode =
  | CborErrorCode
  | FrameErrorCode
  | CoseErrorCode
  | IdentityErrorCode
  | WireErrorCode
  | LogErrorCode
  | SyncErrorCode
  | HistoryErrorCode;

export class ProtocolError extends Error {
  override readonly name = 'ProtocolError';
  readonly code: ProtocolErrorCode;

  /** `message` should say what was expected; it is prefixed with the module name. */
  constructor(code: ProtocolErrorCode, message: string, options?: { cause?: unknown }) {
    super(`protocol: ${message}`, options);
    this.code = code;
  }
}

/** True when `e` is a ProtocolError, optionally with one of `codes`. */
export function isProtocolError(e: unknown, ...codes: ProtocolErrorCode[]): e is ProtocolError {
  return e instanceof ProtocolError && (codes.length === 0 || codes.includes(e.code));
}

/** Asserts an internal invariant. A failure is a bug in packchain, never bad input. */
export function invariant(condition: unknown, message: string): asserts condition {
  if (!condition) throw new Error(`protocol: invariant violated: ${message}`);
}
