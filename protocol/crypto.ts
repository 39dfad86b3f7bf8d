/**
 * Server-side cryptographic primitives on node:crypto (OpenSSL), the verification fast path of
 * DESIGN.md §5: SHA-256, and Ed25519 / P-256 public keys imported once as KeyObjects and reused.
 * The portable (browser, firmware) counterparts built on @noble live in crypto-portable.ts under
 * their own names (sha256Portable, verifySignaturePortable, ...); browser code imports only those. Signatures: Ed25519 64 bytes (RFC 8032); ES256 raw
 * r‖s, 64 bytes (RFC 9053 §2.1), high-S accepted because secure elements do not normalise S.
 */
import * as nodeCrypto from 'node:crypto';
import { createHash, createPublicKey, verify as nodeVerify, type KeyObject } from 'node:crypto';
import { ProtocolError } from './errors.js';
import { p256 } from '@noble/curves/nist.js';
import { concatBytes, fromBase64Url, toBase64Url } from './bytes.js';

/**
 * crypto.hash (Node ≥ 20.12, 21.7): one-shot SHA-256 with no Hash object, about 1.5× faster than
 * createHash for frame- and node-sized inputs. Read from the namespace so that older Node 20
 * releases, which lack it, load this module and fall back to createHash.
 */
const oneShot = (nodeCrypto as { hash?: typeof nodeCrypto.hash }).hash;
/**
 * Several parts totalling up to this size are copied into `scratch` and hashed in one shot; longer
 * inputs are streamed. Hashing is synchronous, so one scratch buffer per thread cannot be shared
 * by two calls at once.
 */
const ONE_SHOT_CONCAT_MAX = 4096;
const scratch = new Uint8Array(ONE_SHOT_CONCAT_MAX);

function oneShotDigest(hash: typeof nodeCrypto.hash, data: Uint8Array): Uint8Array {
  // The digest as a 'binary' (latin1) string, one char per byte, copied into a 32-byte Uint8Array, which V8
  // keeps on its heap: a 'buffer' digest allocates an off-heap backing store per call, which costs
  // more than the hash itself (malloc, free and sweeping on V8's threads; bench/gateway-ingest.ts).
  const d = hash('sha256', data, 'binary');
  const out = new Uint8Array(32);
  for (let i = 0; i < 32; i++) out[i] = d.charCodeAt(i);
  return out;
}

/**
 * SHA-256 of the concatenation of `parts`. The result is a plain Uint8Array with its own
 * 32-byte buffer. Merkle leaf and node hashes (merkle.ts) and the gateway's frame digests run
 * through here once per frame, so short inputs take the one-shot path.
 */
export function sha256(...parts: readonly Uint8Array[]): Uint8Array {
  if (oneShot !== undefined) {
    if (parts.length === 1) return oneShotDigest(oneShot, parts[0] as Uint8Array);
    let n = 0;
    for (const p of parts) n += p.length;
    if (n <= ONE_SHOT_CONCAT_MAX) {
      let at = 0;
      for (const p of parts) {
        scratch.set(p, at);
        at += p.length;
      }
      return oneShotDigest(oneShot, scratch.subarray(0, n));
    }
  }
  return sha256Streamed(parts);
}

/** SHA-256 through a Hash object: long inputs, and Node releases without crypto.hash. */
export function sha256Streamed(parts: readonly Uint8Array[]): Uint8Array {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
}

export type SignatureAlg = 'Ed25519' | 'ES256';

/** A public key ready for repeated verification. Build once per device/gateway and cache it. */
export interface PublicKey {
  readonly alg: SignatureAlg;
  /** Raw public key: 32 bytes (Ed25519) or 65-byte uncompressed SEC1 point (P-256). */
  readonly raw: Uint8Array;
  readonly keyObject: KeyObject;
}

const ED25519_SPKI_PREFIX = Uint8Array.from([0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00]);
const P256_SPKI_PREFIX = Uint8Array.from([
  0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48,
  0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
]);

/**
 * Imports a raw public key. Ed25519: 32 bytes. ES256: 65-byte uncompressed or 33-byte compressed
 * SEC1 point (stored uncompressed in `raw`). Throws COSE_KEY for a wrong size or a point off the curve.
 */
export function importPublicKey(alg: SignatureAlg, raw: Uint8Array): PublicKey {
  try {
    if (alg === 'Ed25519') {
      if (raw.length !== 32) throw new ProtocolError('COSE_KEY', `Ed25519 public key: expected 32 bytes, got ${raw.length}`);
      const keyObject = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: toBase64Url(raw) }, format: 'jwk' });
      return { alg, raw: Uint8Array.from(raw), keyObject };
    }
    if (raw.length !== 65 && raw.length !== 33) {
      throw new ProtocolError('COSE_KEY', `P-256 public key: expected a 65- or 33-byte SEC1 point, got ${raw.length}`);
    }
    // A compressed point is decompressed (and checked on the curve) by noble; OpenSSL checks the rest.
    const point = raw.length === 65 ? raw : p256.Point.fromBytes(raw).toBytes(false);
    const keyObject = createPublicKey({ key: Buffer.from(concatBytes(P256_SPKI_PREFIX, point)), format: 'der', type: 'spki' });
    const der = keyObject.export({ format: 'der', type: 'spki' });
    return { alg, raw: new Uint8Array(der.subarray(der.length - 65)), keyObject };
  } catch (e) {
    if (e instanceof ProtocolError) throw e;
    throw new ProtocolError('COSE_KEY', `${alg} public key: not a valid point (${(e as Error).message})`, { cause: e });
  }
}

/** Imports a public key from SubjectPublicKeyInfo DER (Ed25519 or P-256 only). Throws COSE_KEY. */
export function importSpki(spki: Uint8Array): PublicKey {
  let keyObject: KeyObject;
  try {
    keyObject = createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' });
  } catch (e) {
    throw new ProtocolError('COSE_KEY', 'SubjectPublicKeyInfo: cannot be parsed', { cause: e });
  }
  return fromKeyObject(keyObject);
}

/** Wraps a node:crypto public KeyObject (Ed25519 or P-256). Throws COSE_KEY for other key types. */
export function fromKeyObject(keyObject: KeyObject): PublicKey {
  if (keyObject.asymmetricKeyType === 'ed25519') {
    const der = keyObject.export({ format: 'der', type: 'spki' });
    return { alg: 'Ed25519', raw: new Uint8Array(der.subarray(der.length - 32)), keyObject };
  }
  if (keyObject.asymmetricKeyType === 'ec' && keyObject.asymmetricKeyDetails?.namedCurve === 'prime256v1') {
    // OpenSSL exports an SPKI in the point form it was given (possibly compressed, RFC 5480 §2.2),
    // so take the coordinates from the JWK view to get the uncompressed 04 ‖ x ‖ y form.
    const jwk = keyObject.export({ format: 'jwk' });
    if (typeof jwk.x !== 'string' || typeof jwk.y !== 'string') throw new ProtocolError('COSE_KEY', 'P-256 public key: no coordinates');
    const raw = concatBytes(Uint8Array.of(0x04), fromBase64Url(jwk.x, 'COSE_KEY'), fromBase64Url(jwk.y, 'COSE_KEY'));
    if (raw.length !== 65) throw new ProtocolError('COSE_KEY', 'P-256 public key: coordinates are not 32 bytes');
    return { alg: 'ES256', raw, keyObject };
  }
  throw new ProtocolError('COSE_KEY', `public key: expected Ed25519 or P-256, got ${keyObject.asymmetricKeyType ?? 'unknown'}`);
}

/**
 * The canonical SubjectPublicKeyInfo DER of a key: the RFC 8410 §4 prefix ‖ 32-byte Ed25519 key, or
 * the RFC 5480 §2 prefix ‖ 65-byte uncompressed P-256 point. Certificates packchain issues carry
 * exactly these bytes, and key ids and fingerprints hash them.
 */
export function spkiOf(key: PublicKey): Uint8Array {
  return concatBytes(key.alg === 'Ed25519' ? ED25519_SPKI_PREFIX : P256_SPKI_PREFIX, key.raw);
}

/**
 * Verifies `sig` over `msg`. Returns false for a wrong signature (including a wrong length);
 * never throws for bad input.
 */
export function verifySignature(key: PublicKey, msg: Uint8Array, sig: Uint8Array): boolean {
  if (sig.length !== 64) return false;
  try {
    if (key.alg === 'Ed25519') return nodeVerify(null, msg, key.keyObject, sig);
    return nodeVerify('sha256', msg, { key: key.keyObject, dsaEncoding: 'ieee-p1363' }, sig);
  } catch {
    return false;
  }
}
