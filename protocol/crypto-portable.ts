/**
 * Portable (pure-JS, @noble) cryptography for the two places node:crypto is not available or not
 * wanted: the BMU firmware side (hw-sim signs as a pure-JS firmware would, DESIGN.md §5) and the
 * browser (the web page verifies frames and proofs client-side). It mirrors protocol/crypto.ts — SHA-256,
 * Ed25519 (RFC 8032) and ES256 over P-256 (RFC 9053 §2.1, raw r‖s, 64 bytes) — but imports no
 * node: module, so a bundler can ship it as is. Servers verify with crypto.ts instead: OpenSSL is
 * 14–32× faster (NOTES.md "Crypto").
 *
 * Verification policy matches crypto.ts: ES256 high-S signatures are accepted (`lowS: false`) because
 * secure elements do not normalise S; Ed25519 is verified per RFC 8032 §5.1.7 (`zip215: false`, i.e.
 * canonical encodings only), the same rule OpenSSL applies. Signing is deterministic (RFC 8032 and
 * RFC 6979), so signed test vectors are stable.
 */
import { ed25519 } from '@noble/curves/ed25519.js';
import { p256 } from '@noble/curves/nist.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { concatBytes } from './bytes.js';
import { ProtocolError } from './errors.js';
import type { SignatureAlg } from './crypto.js';

/** SHA-256 of the concatenation of `parts` (FIPS 180-4), pure JS. */
export function sha256Portable(...parts: readonly Uint8Array[]): Uint8Array {
  if (parts.length === 1 && parts[0]) return sha256(parts[0]);
  const h = sha256.create();
  for (const p of parts) h.update(p);
  return h.digest();
}

/** A public key for portable verification: the same `alg` and `raw` as crypto.ts's PublicKey. */
export interface PortablePublicKey {
  readonly alg: SignatureAlg;
  /** Raw public key: 32 bytes (Ed25519) or 65-byte uncompressed SEC1 point (P-256). */
  readonly raw: Uint8Array;
}

const ED25519_SPKI_PREFIX = Uint8Array.from([0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00]);
const P256_SPKI_PREFIX = Uint8Array.from([
  0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48,
  0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
]);

/**
 * Checks and normalises a raw public key without node:crypto. Ed25519: 32 bytes, a canonical point
 * encoding (RFC 8032 §5.1.3). ES256: a 65-byte uncompressed or 33-byte compressed SEC1 point on P-256
 * (stored uncompressed). Throws COSE_KEY for a wrong size or a point that does not decode.
 */
export function importPublicKeyPortable(alg: SignatureAlg, raw: Uint8Array): PortablePublicKey {
  try {
    if (alg === 'Ed25519') {
      if (raw.length !== 32) throw new ProtocolError('COSE_KEY', `Ed25519 public key: expected 32 bytes, got ${raw.length}`);
      ed25519.Point.fromBytes(raw, false);
      return { alg, raw: Uint8Array.from(raw) };
    }
    if (raw.length !== 65 && raw.length !== 33) {
      throw new ProtocolError('COSE_KEY', `P-256 public key: expected a 65- or 33-byte SEC1 point, got ${raw.length}`);
    }
    return { alg, raw: p256.Point.fromBytes(raw).toBytes(false) };
  } catch (e) {
    if (e instanceof ProtocolError) throw e;
    throw new ProtocolError('COSE_KEY', `${alg} public key: not a valid point (${(e as Error).message})`, { cause: e });
  }
}

/**
 * SubjectPublicKeyInfo DER (RFC 5280 §4.1.2.7) of a raw public key: the fixed prefix for Ed25519
 * (RFC 8410 §4) or P-256 (RFC 5480 §2, uncompressed point) followed by the key. The same bytes
 * node:crypto exports, so `coseKid` gives the same kid on the device and on the gateway.
 */
export function spkiPortable(key: PortablePublicKey): Uint8Array {
  return concatBytes(key.alg === 'Ed25519' ? ED25519_SPKI_PREFIX : P256_SPKI_PREFIX, key.raw);
}

function checkSecretKey(alg: SignatureAlg, secretKey: Uint8Array): void {
  const ok = alg === 'Ed25519' ? secretKey.length === 32 : secretKey.length === 32 && p256.utils.isValidSecretKey(secretKey);
  if (!ok) throw new ProtocolError('COSE_KEY', `${alg} secret key: expected 32 bytes${alg === 'ES256' ? ' in 1..n-1' : ''}`);
}

/** The public key of a 32-byte secret key (firmware side). Throws COSE_KEY for an invalid secret key. */
export function publicKeyFromSecretPortable(alg: SignatureAlg, secretKey: Uint8Array): PortablePublicKey {
  checkSecretKey(alg, secretKey);
  return alg === 'Ed25519'
    ? { alg, raw: ed25519.getPublicKey(secretKey) }
    : { alg, raw: p256.getPublicKey(secretKey, false) };
}

/**
 * Signs `msg` (firmware side). Ed25519: RFC 8032 §5.1.6. ES256: ECDSA over SHA-256(msg) with an
 * RFC 6979 deterministic nonce, returned as raw r‖s (64 bytes, low-S). Throws COSE_KEY for an
 * invalid secret key.
 */
export function signPortable(alg: SignatureAlg, secretKey: Uint8Array, msg: Uint8Array): Uint8Array {
  checkSecretKey(alg, secretKey);
  // noble v2: p256.sign hashes with SHA-256 itself (prehash: true) and returns 'compact' r‖s.
  return alg === 'Ed25519' ? ed25519.sign(msg, secretKey) : p256.sign(msg, secretKey);
}

/**
 * Verifies `sig` over `msg` with @noble. Returns false for a wrong signature (including a wrong
 * length or r/s out of range); never throws for bad input. ES256 accepts high-S.
 */
export function verifySignaturePortable(key: PortablePublicKey, msg: Uint8Array, sig: Uint8Array): boolean {
  if (sig.length !== 64) return false;
  try {
    if (key.alg === 'Ed25519') return ed25519.verify(sig, msg, key.raw, { zip215: false });
    return p256.verify(sig, msg, key.raw, { lowS: false });
  } catch {
    return false;
  }
}
