/**
 * Signers for C2SP signed notes, the side that holds private keys: Ed25519 note signers (type
 * 0x01, gateway checkpoints), Ed25519 cosignature/v1 cosigners (type 0x04, witnesses), and signer
 * key strings `PRIVATE+KEY+<name>+<8 hex key ID>+<base64(type ‖ 32-byte seed)>` as Go's
 * note.NewSigner reads them. Keys come from a 32-byte RFC 8032 seed and sign with node:crypto
 * (Ed25519 is deterministic, so signatures are byte-identical to Go's). Seeds stay inside closures
 * and never appear in error messages. Verification-only code (and the browser) need not import this
 * file. Malformed keys throw NOTE_KEY.
 */
import { createPrivateKey, createPublicKey, sign as nodeSign, type KeyObject } from 'node:crypto';
import { concatBytes, toBase64 } from './bytes.js';
import { invariant } from './errors.js';
import {
  SIG_TYPE_COSIGNATURE_V1,
  SIG_TYPE_ED25519,
  checkKeyString,
  checkName,
  checkRawKey,
  cosignatureMessage,
  createNoteVerifier,
  hex8,
  keyError,
  noteKeyHash,
  sigTypeOf,
  splitKey,
  type NoteKeyKind,
  type NoteSigner,
  type NoteVerifier,
} from './note-keys.js';

/** A signer built here from a 32-byte seed; `publicKey` is the raw 32-byte Ed25519 key. */
export interface Ed25519NoteSigner extends NoteSigner {
  readonly publicKey: Uint8Array;
}

// PKCS#8 wrapping of a raw Ed25519 seed (RFC 8410 §7): lets node:crypto derive the key pair.
const PKCS8_ED25519_PREFIX = Uint8Array.from([0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20]);

function privateKeyFromSeed(seed: Uint8Array): { key: KeyObject; publicKey: Uint8Array } {
  checkRawKey(seed, 'Ed25519 seed');
  const der = Buffer.from(concatBytes(PKCS8_ED25519_PREFIX, seed));
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
  } finally {
    der.fill(0); // do not leave a copy of the seed behind
  }
  const spki = createPublicKey(key).export({ format: 'der', type: 'spki' });
  return { key, publicKey: new Uint8Array(spki.subarray(spki.length - 32)) };
}

/** An Ed25519 note signer (type 0x01) from a 32-byte seed. Throws NOTE_KEY for a bad name or seed. */
export function createNoteSigner(name: string, seed: Uint8Array): Ed25519NoteSigner {
  checkName(name);
  const { key, publicKey } = privateKeyFromSeed(seed);
  return {
    name,
    keyHash: noteKeyHash(name, SIG_TYPE_ED25519, publicKey),
    kind: 'ed25519',
    publicKey,
    sign: (msg) => new Uint8Array(nodeSign(null, msg, key)),
  };
}

/**
 * An Ed25519 cosignature/v1 signer (type 0x04) from a 32-byte seed. `clock` returns the current
 * POSIX time in whole seconds; it is read once per signature. Throws NOTE_KEY for a bad name or
 * seed; a clock returning anything but a non-negative safe integer is a bug (invariant).
 */
export function createCosigner(name: string, seed: Uint8Array, clock: () => number): Ed25519NoteSigner {
  checkName(name);
  const { key, publicKey } = privateKeyFromSeed(seed);
  return {
    name,
    keyHash: noteKeyHash(name, SIG_TYPE_COSIGNATURE_V1, publicKey),
    kind: 'cosignature',
    publicKey,
    sign: (msg) => {
      const t = clock();
      invariant(Number.isSafeInteger(t) && t >= 0, `cosigner clock returned ${String(t)}, expected whole POSIX seconds`);
      const out = new Uint8Array(8 + 64);
      new DataView(out.buffer).setBigUint64(0, BigInt(t));
      out.set(nodeSign(null, cosignatureMessage(t, msg), key), 8);
      return out;
    },
  };
}

/** A parsed signer key. `seed` is secret: never log it. */
export interface SignerKey {
  readonly name: string;
  readonly keyHash: number;
  readonly kind: NoteKeyKind;
  readonly seed: Uint8Array;
}

/**
 * Parses a signer key `PRIVATE+KEY+<name>+<8 hex key ID>+<base64(type ‖ 32-byte seed)>`. The key
 * ID is that of the derived public key, as in Go's note.NewSigner. Throws NOTE_KEY for any
 * malformation or a key ID that does not match. Error messages never include key material.
 */
export function parseSignerKey(skey: string): SignerKey {
  checkKeyString(skey, 'signer key');
  if (!skey.startsWith('PRIVATE+KEY+')) throw keyError('signer key: expected the prefix PRIVATE+KEY+');
  const p = splitKey(skey.slice('PRIVATE+KEY+'.length), 'signer key');
  const { publicKey } = privateKeyFromSeed(p.key);
  if (p.keyHash !== noteKeyHash(p.name, sigTypeOf(p.kind), publicKey)) throw keyError('signer key: key ID does not match the name and key');
  return { name: p.name, keyHash: p.keyHash, kind: p.kind, seed: Uint8Array.from(p.key) };
}

/** Formats a signer key string (secret: store it 0600, never log it). Throws NOTE_KEY for a bad name or seed. */
export function formatSignerKey(name: string, seed: Uint8Array, kind: NoteKeyKind = 'ed25519'): string {
  checkName(name);
  const { publicKey } = privateKeyFromSeed(seed);
  const type = sigTypeOf(kind);
  return `PRIVATE+KEY+${name}+${hex8(noteKeyHash(name, type, publicKey))}+${toBase64(concatBytes(Uint8Array.of(type), seed))}`;
}

/**
 * The signer for a signer key string: an Ed25519 note signer for type 0x01, a cosigner for type
 * 0x04 (which needs `clock`, POSIX seconds). Throws NOTE_KEY for a malformed key, or a 0x04 key
 * without a clock.
 */
export function signerFromKey(skey: string, clock?: () => number): Ed25519NoteSigner {
  const k = parseSignerKey(skey);
  if (k.kind === 'ed25519') return createNoteSigner(k.name, k.seed);
  if (clock === undefined) throw keyError('signer key: a cosignature (0x04) key needs a clock');
  return createCosigner(k.name, k.seed, clock);
}

/** The verifier matching one of our signers. */
export function verifierOf(signer: Ed25519NoteSigner): NoteVerifier {
  return createNoteVerifier(signer.name, signer.publicKey, signer.kind);
}
