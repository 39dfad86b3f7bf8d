/**
 * COSE_Sign1 with @noble only (docs/protocol.md §2.2; RFC 9052 §4.4; RFC 9053 §2.1, §2.2): the BMU
 * firmware side signs here (hw-sim, as a pure-JS firmware would) and the browser verifies here. No
 * node: imports, directly or through its imports, so a bundler can ship it. The checks are exactly
 * those of cose.ts; only the signature primitive differs (crypto-portable.ts).
 */
import { buildSign1, parseSign1, parseSign1Generic, verifyParsed, type GenericSign1Options, type Sign1Input, type Sign1Key, type VerifiedSign1 } from './cose-sign1.js';
import { signPortable, verifySignaturePortable, type PortablePublicKey } from './crypto-portable.js';

/**
 * Signs `payload` as a packchain-profile COSE_Sign1 with a 32-byte secret key (firmware side).
 * Deterministic: Ed25519 by RFC 8032, ES256 by RFC 6979 (low-S), so the same input gives the same
 * bytes. Throws COSE_KEY (invalid secret key), COSE_HEADER (kid not 16 bytes), COSE_TOO_LARGE.
 */
export function signSign1(input: Sign1Input & { readonly secretKey: Uint8Array }): Uint8Array {
  return buildSign1(input, (tbs) => signPortable(input.alg, input.secretKey, tbs));
}

/**
 * verifySign1 with @noble instead of node:crypto (browser). `key.publicKey` is a PortablePublicKey
 * (importPublicKeyPortable) or crypto.ts's PublicKey (it has the same alg and raw). Throws what
 * verifySign1 throws.
 */
export function verifySign1Portable(bytes: Uint8Array, key: Sign1Key<PortablePublicKey>): VerifiedSign1 {
  const parsed = parseSign1(bytes);
  verifyParsed(parsed, key, verifySignaturePortable);
  return { alg: parsed.alg, kid: parsed.kid, payload: parsed.payload };
}

/** verifySign1Generic with @noble. Throws what verifySign1Generic throws. */
export function verifySign1GenericPortable(
  bytes: Uint8Array,
  key: { readonly publicKey: PortablePublicKey; readonly kid?: Uint8Array },
  options: GenericSign1Options = {},
): { alg: PortablePublicKey['alg']; kid: Uint8Array | undefined; payload: Uint8Array } {
  return verifyParsed(parseSign1Generic(bytes, options), key, verifySignaturePortable);
}
