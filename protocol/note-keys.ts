/**
 * Keys for C2SP signed notes (c2sp.org/signed-note, golang.org/x/mod/sumdb/note), verification
 * side: key names, the 4-byte key ID, Ed25519 note verifiers (signature type 0x01) and Ed25519
 * witness cosignature verifiers (type 0x04, c2sp.org/tlog-cosignature "cosignature/v1"), and
 * verifier key strings `<name>+<8 hex key ID>+<base64(type ‖ public key)>`. Verification uses
 * node:crypto KeyObjects built once per verifier (crypto.ts). Signers and signer key strings,
 * which hold private keys, live in note-signer.ts. Malformed keys throw NOTE_KEY.
 */
import { concatBytes, fromBase64, toBase64, utf8 } from './bytes.js';
import { importPublicKey, sha256, verifySignature, type PublicKey } from './crypto.js';
import { ProtocolError } from './errors.js';

/** Signature type bytes assigned by c2sp.org/signed-note. */
export const SIG_TYPE_ED25519 = 0x01;
export const SIG_TYPE_COSIGNATURE_V1 = 0x04;

/** 'ed25519': a plain note signature (type 0x01); 'cosignature': a timestamped witness cosignature/v1 (type 0x04). */
export type NoteKeyKind = 'ed25519' | 'cosignature';

/** Longest key string accepted by the parsers (real ones are under 120 characters). */
export const MAX_KEY_STRING = 1024;

/**
 * Signs note texts with one key. `sign` returns the signature-line payload that follows the
 * 4-byte key ID (64 bytes for 'ed25519'; timestamp(8) ‖ signature(64) for 'cosignature').
 * It must not throw for any text signNote accepts.
 */
export interface NoteSigner {
  readonly name: string;
  /** The key ID as an unsigned 32-bit integer (big-endian first four bytes on the wire). */
  readonly keyHash: number;
  readonly kind: NoteKeyKind;
  sign(msg: Uint8Array): Uint8Array;
}

/**
 * Verifies note signatures of one key. `verify` gets the note text and the payload after the
 * key ID, and returns false (never throws) for any signature that does not verify, whatever its
 * length or content.
 */
export interface NoteVerifier {
  readonly name: string;
  readonly keyHash: number;
  readonly kind: NoteKeyKind;
  verify(msg: Uint8Array, sig: Uint8Array): boolean;
}

// Unicode White_Space (what Go's unicode.IsSpace tests) and '+' (signed-note §Format).
const BAD_NAME = /[\p{White_Space}+]/u;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * Offset of the first character a note cannot carry — an ASCII control character other than
 * "\n" (signed-note §Format; "\n" too unless `allowNewline`) or a lone surrogate, which has no
 * UTF-8 encoding — or -1 if there is none.
 */
export function badNoteCharIndex(s: string, allowNewline: boolean): number {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 && !(allowNewline && c === 0x0a)) return i;
  }
  const m = LONE_SURROGATE.exec(s);
  return m ? m.index : -1;
}

/** Key name rule of c2sp.org/signed-note: non-empty, no Unicode spaces, no '+' (and, here, no control characters). */
export function isValidKeyName(name: string): boolean {
  return typeof name === 'string' && name.length > 0 && !BAD_NAME.test(name) && badNoteCharIndex(name, false) < 0;
}

/** The signature type byte of a key kind. */
export const sigTypeOf = (kind: NoteKeyKind): number => (kind === 'ed25519' ? SIG_TYPE_ED25519 : SIG_TYPE_COSIGNATURE_V1);

/** Key ID = first 4 bytes, big-endian, of SHA-256(name ‖ 0x0A ‖ type ‖ public key) (signed-note §Signatures). */
export function noteKeyHash(name: string, sigType: number, publicKey: Uint8Array): number {
  const h = sha256(utf8(name), Uint8Array.of(0x0a, sigType), publicKey);
  return (((h[0] ?? 0) << 24) | ((h[1] ?? 0) << 16) | ((h[2] ?? 0) << 8) | (h[3] ?? 0)) >>> 0;
}

/** A key ID as 8 lower-case hex digits. */
export const hex8 = (x: number): string => x.toString(16).padStart(8, '0');

/** The message an Ed25519 cosignature/v1 signs (tlog-cosignature §Ed25519 signed message). */
export function cosignatureMessage(timestamp: number, text: Uint8Array): Uint8Array {
  return concatBytes(utf8(`cosignature/v1\ntime ${timestamp}\n`), text);
}

/** A NOTE_KEY error (messages never include key material). */
export function keyError(what: string): ProtocolError {
  return new ProtocolError('NOTE_KEY', `note: ${what}`);
}

/** Throws NOTE_KEY unless `name` is a valid key name. */
export function checkName(name: string): void {
  if (!isValidKeyName(name)) throw keyError('key name: expected non-empty text without spaces, "+" or control characters');
}

/** Throws NOTE_KEY unless `b` is 32 bytes. */
export function checkRawKey(b: Uint8Array, what: string): void {
  if (!(b instanceof Uint8Array) || b.length !== 32) throw keyError(`${what}: expected 32 bytes`);
}

/** Reads the u64 timestamp of a cosignature payload; undefined unless it is a safe integer. */
export function cosignatureTimestamp(sig: Uint8Array): number | undefined {
  if (sig.length < 8) return undefined;
  const t = new DataView(sig.buffer, sig.byteOffset, 8).getBigUint64(0);
  return t <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(t) : undefined;
}

/**
 * A verifier for one public key. For 'cosignature' the payload must be timestamp(8) ‖ sig(64)
 * with a timestamp ≤ 2^53 − 1 (the spec caps it at 2^63 − 1; later ones are refused as far
 * future). Throws NOTE_KEY for a bad name or a key that is not 32 bytes.
 */
export function createNoteVerifier(name: string, publicKey: Uint8Array, kind: NoteKeyKind): NoteVerifier {
  checkName(name);
  checkRawKey(publicKey, 'Ed25519 public key');
  let key: PublicKey;
  try {
    key = importPublicKey('Ed25519', publicKey);
  } catch (e) {
    throw new ProtocolError('NOTE_KEY', 'note: Ed25519 public key cannot be imported', { cause: e });
  }
  const keyHash = noteKeyHash(name, sigTypeOf(kind), publicKey);
  if (kind === 'ed25519') {
    return { name, keyHash, kind, verify: (msg, sig) => verifySignature(key, msg, sig) };
  }
  return {
    name,
    keyHash,
    kind,
    verify: (msg, sig) => {
      if (sig.length !== 72) return false;
      const t = cosignatureTimestamp(sig);
      if (t === undefined) return false;
      return verifySignature(key, cosignatureMessage(t, msg), sig.subarray(8));
    },
  };
}

/** The parts of `<name>+<key ID>+<base64(type ‖ key)>`. */
export interface KeyParts {
  name: string;
  keyHash: number;
  kind: NoteKeyKind;
  key: Uint8Array;
}

/** Splits `<name>+<hash>+<base64>` (the base64 may itself contain '+'). Throws NOTE_KEY. */
export function splitKey(s: string, what: string): KeyParts {
  const i = s.indexOf('+');
  const j = i < 0 ? -1 : s.indexOf('+', i + 1);
  if (j < 0) throw keyError(`${what}: expected <name>+<8 hex digits>+<base64>`);
  const name = s.slice(0, i);
  const hash16 = s.slice(i + 1, j);
  checkName(name);
  if (!/^[0-9a-fA-F]{8}$/.test(hash16)) throw keyError(`${what}: key ID: expected 8 hex digits`);
  const raw = fromBase64(s.slice(j + 1), 'NOTE_KEY', `${what}: key data`);
  if (raw.length !== 33) throw keyError(`${what}: key data: expected a type byte and 32 key bytes, got ${raw.length} bytes`);
  const type = raw[0];
  if (type !== SIG_TYPE_ED25519 && type !== SIG_TYPE_COSIGNATURE_V1) {
    throw keyError(`${what}: unsupported signature type 0x${(type ?? 0).toString(16).padStart(2, '0')} (expected 0x01 or 0x04)`);
  }
  return { name, keyHash: parseInt(hash16, 16), kind: type === SIG_TYPE_ED25519 ? 'ed25519' : 'cosignature', key: raw.subarray(1) };
}

/** Throws NOTE_KEY unless `s` is a string of at most MAX_KEY_STRING characters. */
export function checkKeyString(s: string, what: string): void {
  if (typeof s !== 'string' || s.length > MAX_KEY_STRING) throw keyError(`${what}: expected a string of at most ${MAX_KEY_STRING} characters`);
}

/**
 * Parses a verifier key `<name>+<8 hex key ID>+<base64(type ‖ 32-byte Ed25519 public key)>`,
 * type 0x01 (note signatures) or 0x04 (cosignature/v1), and builds its verifier. Throws NOTE_KEY
 * for any malformation, an unsupported type, or a key ID that does not match name and key.
 */
export function parseVerifierKey(vkey: string): NoteVerifier {
  checkKeyString(vkey, 'verifier key');
  const p = splitKey(vkey, 'verifier key');
  if (p.keyHash !== noteKeyHash(p.name, sigTypeOf(p.kind), p.key)) throw keyError('verifier key: key ID does not match the name and key');
  return createNoteVerifier(p.name, p.key, p.kind);
}

/** Formats a verifier key string for a raw 32-byte Ed25519 public key. Throws NOTE_KEY for a bad name or key. */
export function formatVerifierKey(name: string, publicKey: Uint8Array, kind: NoteKeyKind = 'ed25519'): string {
  checkName(name);
  checkRawKey(publicKey, 'Ed25519 public key');
  const type = sigTypeOf(kind);
  return `${name}+${hex8(noteKeyHash(name, type, publicKey))}+${toBase64(concatBytes(Uint8Array.of(type), publicKey))}`;
}
