/**
 * Browser build of protocol/crypto.ts: the same exports (sha256, importPublicKey, importSpki,
 * fromKeyObject, spkiOf, verifySignature and the PublicKey / SignatureAlg types) on @noble/curves
 * and @noble/hashes through protocol's own portable functions (crypto-portable.ts), so the page's
 * verifier applies exactly the server's policy: Ed25519 per RFC 8032 §5.1.7, ES256 raw r‖s with
 * high-S accepted. The esbuild build (assets.ts) resolves protocol/crypto.ts to this file; the
 * `satisfies` clause below fails type-checking if the two ever drift apart. `keyObject` holds the
 * KeyObject stand-in of node-crypto-browser.ts.
 */
import type { KeyObject as NodeKeyObject } from 'node:crypto';
import {
  ProtocolError,
  importPublicKeyPortable,
  sha256Portable,
  spkiPortable,
  verifySignaturePortable,
  type PublicKey,
  type SignatureAlg,
} from '../../protocol/index.js';
import type * as Protocol from '../../protocol/index.js';
import { KeyObject, keyFromSpki } from './node-crypto-browser.js';

export type { PublicKey, SignatureAlg };

function wrap(key: { alg: SignatureAlg; raw: Uint8Array }): PublicKey {
  // The stand-in answers the KeyObject members protocol reads (identity-chain.ts, crypto.ts).
  return { alg: key.alg, raw: key.raw, keyObject: new KeyObject(key) as unknown as NodeKeyObject };
}

/** SHA-256 of the concatenation of `parts` (FIPS 180-4). */
export function sha256(...parts: readonly Uint8Array[]): Uint8Array {
  return sha256Portable(...parts);
}

/** As protocol importPublicKey. Throws COSE_KEY. */
export function importPublicKey(alg: SignatureAlg, raw: Uint8Array): PublicKey {
  return wrap(importPublicKeyPortable(alg, raw));
}

/** As protocol importSpki (Ed25519 or P-256 SubjectPublicKeyInfo DER). Throws COSE_KEY. */
export function importSpki(spki: Uint8Array): PublicKey {
  try {
    return wrap(keyFromSpki(spki));
  } catch (e) {
    if (e instanceof ProtocolError) throw e;
    throw new ProtocolError('COSE_KEY', 'SubjectPublicKeyInfo: cannot be parsed', { cause: e });
  }
}

/** As protocol fromKeyObject: a KeyObject (the stand-in, or node's in tests) → PublicKey. Throws COSE_KEY. */
export function fromKeyObject(keyObject: NodeKeyObject): PublicKey {
  const spki = (keyObject as unknown as { export(o: { format: 'der'; type: 'spki' }): Uint8Array }).export({ format: 'der', type: 'spki' });
  try {
    return wrap(keyFromSpki(new Uint8Array(spki)));
  } catch (e) {
    if (e instanceof ProtocolError) throw e;
    throw new ProtocolError('COSE_KEY', 'public key: expected Ed25519 or P-256', { cause: e });
  }
}

/** The canonical SubjectPublicKeyInfo DER of a key (RFC 8410 §4 / RFC 5480 §2 prefix ‖ raw key). */
export function spkiOf(key: PublicKey): Uint8Array {
  return spkiPortable(key);
}

/** As protocol verifySignature: false for a wrong signature or length, never throws. */
export function verifySignature(key: PublicKey, msg: Uint8Array, sig: Uint8Array): boolean {
  return verifySignaturePortable(key, msg, sig);
}

/** Compile-time proof that this file can stand in for protocol/crypto.ts (same names, same types). */
export const browserCrypto = {
  sha256,
  importPublicKey,
  importSpki,
  fromKeyObject,
  spkiOf,
  verifySignature,
} satisfies Pick<typeof Protocol, 'sha256' | 'importPublicKey' | 'importSpki' | 'fromKeyObject' | 'spkiOf' | 'verifySignature'>;
