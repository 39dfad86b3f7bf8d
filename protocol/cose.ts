/**
 * COSE_Sign1 verification on servers (docs/protocol.md §2.2; RFC 9052 §4.4; RFC 9053 §2.1, §2.2):
 * the gateway's and the ledger's path, on node:crypto (OpenSSL) via crypto.ts, which is 14–32×
 * faster than @noble here (DESIGN.md decision 5). Parsing and the Sig_structure live in
 * cose-sign1.ts; the @noble signer and browser verifier in cose-portable.ts.
 *
 * The caller builds each device's PublicKey once (importPublicKey / importSpki / fromKeyObject) and
 * its kid once (coseKid over spkiOf(key)), and caches both; this module never imports keys per call.
 */
import type { PublicKey } from './crypto.js';
import { verifySignature } from './crypto.js';
import {
  COSE_MAX_BYTES,
  parseSign1Generic,
  parseSign1Transient,
  verifyParsed,
  type GenericSign1Options,
  type Sign1Key,
  type VerifiedSign1,
} from './cose-sign1.js';

/** Where verifySign1 writes each message's Sig_structure: verification is synchronous, one message at a time per thread. */
const scratch = new Uint8Array(COSE_MAX_BYTES + 32);

/**
 * Parses a packchain-profile COSE_Sign1 and verifies it with node:crypto against `key`.
 * Returns alg, kid and the payload bytes as received (a view into `bytes`; decode it with
 * decodeFrame). Throws ProtocolError: everything parseSign1 throws, plus COSE_ALG_MISMATCH (alg is
 * not the key's), COSE_KID_MISMATCH, COSE_SIGNATURE (does not verify; ES256 high-S is accepted).
 */
export function verifySign1(bytes: Uint8Array, key: Sign1Key<PublicKey>): VerifiedSign1 {
  const parsed = parseSign1Transient(bytes, scratch);
  verifyParsed(parsed, key, verifySignature);
  return { alg: parsed.alg, kid: parsed.kid, payload: parsed.payload };
}

/**
 * Verifies any COSE_Sign1 with alg −7 or −8 (parseSign1Generic's rules) with node:crypto; for
 * published examples and interoperability checks, not for device frames. The kid is checked only if
 * `key.kid` is given. Throws what parseSign1Generic throws, plus COSE_ALG_MISMATCH,
 * COSE_KID_MISMATCH, COSE_SIGNATURE.
 */
export function verifySign1Generic(
  bytes: Uint8Array,
  key: { readonly publicKey: PublicKey; readonly kid?: Uint8Array },
  options: GenericSign1Options = {},
): { alg: PublicKey['alg']; kid: Uint8Array | undefined; payload: Uint8Array } {
  return verifyParsed(parseSign1Generic(bytes, options), key, verifySignature);
}
