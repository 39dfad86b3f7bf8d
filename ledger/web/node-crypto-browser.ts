/**
 * Browser stand-in for the part of `node:crypto` that protocol/'s verifier touches, so the web page
 * runs the project's own verifyProofBundle rather than a second verifier (docs/service-engineer.md
 * "One verifier"). The esbuild build of the page (assets.ts) resolves `node:crypto` here; Node never
 * loads this file except in its tests. What the verify path needs, synchronously as node gives it:
 * `X509Certificate` (parse, `raw`, `subject`, `validFrom`/`validTo`, `publicKey`, `checkIssued`,
 * `verify`) on our DER reader plus @peculiar/x509 and @noble/curves; a `KeyObject` for public keys;
 * `webcrypto` (the browser's, used by @peculiar/x509 for the asynchronous CRL signature checks).
 * Signing and key creation are not needed to verify and throw if reached.
 *
 * Certificate signatures: Ed25519 (RFC 8410) and ecdsa-with-SHA256 over P-256 (RFC 5758 §3.2) —
 * the two algorithms packchain issues (docs/protocol.md §3); any other algorithm does not verify.
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { p256 } from '@noble/curves/nist.js';
import { bytesEqual, concatBytes, importPublicKeyPortable, toBase64Url, toHex, verifySignaturePortable, type PortablePublicKey } from '../../protocol/index.js';
import { certificateParts, spkiParts, type CertificateParts } from './der-lite.js';

const OID_ED25519_ALG = Uint8Array.from([0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70]);
const OID_ECDSA_SHA256_ALG = Uint8Array.from([0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02]);
const OID_EC_P256_ALG = Uint8Array.from([
  0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07,
]);
const ED25519_SPKI_PREFIX = Uint8Array.from([0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00]);
const P256_SPKI_PREFIX = Uint8Array.from([
  0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48,
  0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
]);
const KU_KEY_CERT_SIGN = 32; // @peculiar/x509 KeyUsageFlags.keyCertSign

function unsupported(name: string): never {
  throw new Error(`node:crypto ${name} is not available in the browser build (verification only)`);
}

/** Reads an Ed25519 or P-256 SubjectPublicKeyInfo into a portable key. Throws Error for others. */
export function keyFromSpki(spki: Uint8Array): PortablePublicKey {
  const { algorithm, key } = spkiParts(spki);
  if (bytesEqual(algorithm, OID_ED25519_ALG)) return importPublicKeyPortable('Ed25519', key);
  if (bytesEqual(algorithm, OID_EC_P256_ALG)) return importPublicKeyPortable('ES256', key);
  throw new Error('SubjectPublicKeyInfo: not an Ed25519 or P-256 key');
}

type ExportOptions = { format: 'der'; type: 'spki' } | { format: 'jwk' };

/**
 * A public key as node's KeyObject presents one to protocol/ (`asymmetricKeyType`,
 * `asymmetricKeyDetails.namedCurve`, `export` as SPKI DER or JWK). The SPKI is always the
 * canonical form (P-256 uncompressed).
 */
export class KeyObject {
  readonly type = 'public';
  readonly asymmetricKeyType: 'ed25519' | 'ec';
  readonly asymmetricKeyDetails: { namedCurve?: string };
  readonly key: PortablePublicKey;

  constructor(key: PortablePublicKey) {
    this.key = key;
    this.asymmetricKeyType = key.alg === 'Ed25519' ? 'ed25519' : 'ec';
    this.asymmetricKeyDetails = key.alg === 'Ed25519' ? {} : { namedCurve: 'prime256v1' };
  }

  export(opts: ExportOptions): Uint8Array | Record<string, string> {
    if (opts.format === 'der') return concatBytes(this.key.alg === 'Ed25519' ? ED25519_SPKI_PREFIX : P256_SPKI_PREFIX, this.key.raw);
    if (this.key.alg === 'Ed25519') return { kty: 'OKP', crv: 'Ed25519', x: toBase64Url(this.key.raw) };
    return { kty: 'EC', crv: 'P-256', x: toBase64Url(this.key.raw.subarray(1, 33)), y: toBase64Url(this.key.raw.subarray(33, 65)) };
  }
}

/**
 * node:crypto's X509Certificate, for the members protocol/identity-*.ts read. The constructor
 * throws (as OpenSSL's does) for bytes that are not a certificate; `raw` is the first
 * Certificate only, so the caller's trailing-bytes check works as with node.
 */
export class X509Certificate {
  readonly raw: Uint8Array;
  readonly subject: string;
  readonly validFrom: string;
  readonly validTo: string;
  readonly publicKey: KeyObject;
  private readonly parts: CertificateParts;
  private readonly ski: string | undefined;
  private readonly aki: string | undefined;
  private readonly keyUsage: number | undefined;

  constructor(der: Uint8Array) {
    this.parts = certificateParts(der);
    this.raw = Uint8Array.from(this.parts.raw);
    const cert = new x509.X509Certificate(this.raw);
    // node joins RDNs with newlines; protocol joins them back with ", " for messages.
    this.subject = cert.subject.split(', ').join('\n');
    this.validFrom = cert.notBefore.toISOString();
    this.validTo = cert.notAfter.toISOString();
    this.publicKey = new KeyObject(keyFromSpki(this.parts.spki));
    this.ski = cert.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId;
    this.aki = cert.getExtension(x509.AuthorityKeyIdentifierExtension)?.keyId;
    this.keyUsage = cert.getExtension(x509.KeyUsagesExtension)?.usages;
  }

  /**
   * Whether `issuer` plausibly issued this certificate, as OpenSSL's X509_check_issued decides:
   * issuer name equals the issuer's subject, the authority key identifier (if both sides carry
   * one) names the issuer's key, the signature algorithm fits the issuer's key type, and an
   * issuer with keyUsage has keyCertSign. The signature itself is `verify`'s job.
   */
  checkIssued(issuer: X509Certificate): boolean {
    if (!bytesEqual(this.parts.issuer, issuer.parts.subject)) return false;
    if (this.aki !== undefined && issuer.ski !== undefined && this.aki.toLowerCase() !== issuer.ski.toLowerCase()) return false;
    if (sigAlgOf(this.parts.sigAlg) !== issuer.publicKey.key.alg) return false;
    return issuer.keyUsage === undefined || (issuer.keyUsage & KU_KEY_CERT_SIGN) !== 0;
  }

  /** Whether the certificate's signature verifies under `key` (node: `cert.verify(publicKey)`). */
  verify(key: KeyObject): boolean {
    const alg = sigAlgOf(this.parts.sigAlg);
    if (alg === undefined || alg !== key.key.alg) return false;
    let sig = this.parts.signature;
    if (alg === 'ES256') {
      try {
        // Certificates carry ECDSA-Sig-Value DER (RFC 5480 §2.2.3); the portable verifier takes r‖s.
        sig = p256.Signature.fromBytes(sig, 'der').toBytes('compact');
      } catch {
        return false;
      }
    }
    return verifySignaturePortable(key.key, this.parts.tbs, sig);
  }

  /** For messages only. */
  toString(): string {
    return `X509Certificate(${toHex(this.raw.subarray(0, 8))}…)`;
  }
}

function sigAlgOf(sigAlg: Uint8Array): 'Ed25519' | 'ES256' | undefined {
  if (bytesEqual(sigAlg, OID_ED25519_ALG)) return 'Ed25519';
  if (bytesEqual(sigAlg, OID_ECDSA_SHA256_ALG)) return 'ES256';
  return undefined;
}

/** The browser's WebCrypto (Chromium has Ed25519 and ECDSA P-256), handed to @peculiar/x509. */
export const webcrypto = globalThis.crypto;

export function createHash(): never {
  return unsupported('createHash');
}
export function createPublicKey(): never {
  return unsupported('createPublicKey');
}
export function createPrivateKey(): never {
  return unsupported('createPrivateKey');
}
export function sign(): never {
  return unsupported('sign');
}
export function verify(): never {
  return unsupported('verify');
}
