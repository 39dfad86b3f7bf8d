/**
 * Test-only fixtures for the identity tests and the vector generator (not exported from
 * protocol/index.ts): throw-away CA hierarchies on WebCrypto keys, device keys made the way a BMU
 * makes them (@noble/curves, DESIGN.md decision 5), CRLs, and a raw certificate builder that can
 * step outside the packchain profile so the verifier's refusals can be exercised. Validity runs
 * 2025–2125 so nothing built here expires while the project lives.
 */
import { ed25519 } from '@noble/curves/ed25519.js';
import { p256 } from '@noble/curves/nist.js';
import { webcrypto, x509 } from './identity-x509.js';
import type { SignatureAlg } from './crypto.js';
import {
  createCrl,
  createDeviceCert,
  createIntermediateCa,
  createRootCa,
  type CryptoKeyPair,
  type DeviceCertParams,
  type Issuer,
  type RevokedCert,
} from './identity-issue.js';

export const NOT_BEFORE = new Date('2025-01-01T00:00:00Z');
export const NOT_AFTER = new Date('2125-01-01T00:00:00Z');
/** CRLs expire before the certificates do, so CRL_STALE can be reached with valid certificates. */
export const CRL_NEXT_UPDATE = new Date('2100-01-01T00:00:00Z');
/** A time at which everything built here is valid. */
export const NOW = new Date('2026-06-01T00:00:00Z');

export interface TestCa {
  readonly cert: Uint8Array;
  readonly keys: CryptoKeyPair;
  readonly alg: SignatureAlg;
}

export interface TestDevice {
  readonly cert: Uint8Array;
  readonly alg: SignatureAlg;
  readonly secretKey: Uint8Array;
  /** As noble returns it: Ed25519 32 bytes, P-256 33-byte compressed point. */
  readonly publicKey: Uint8Array;
  sign(msg: Uint8Array): Uint8Array;
}

/** Extractable so tests can hand the private key to openssl. */
export async function caKeys(alg: SignatureAlg): Promise<CryptoKeyPair> {
  const algorithm = alg === 'Ed25519' ? { name: 'Ed25519' } : { name: 'ECDSA', namedCurve: 'P-256' };
  return (await webcrypto.subtle.generateKey(algorithm, true, ['sign', 'verify'])) as CryptoKeyPair;
}

export function issuerOf(ca: TestCa): Issuer {
  return { cert: ca.cert, privateKey: ca.keys.privateKey };
}

export async function makeRoot(alg: SignatureAlg, name = `Test Root ${alg}`): Promise<TestCa> {
  const keys = await caKeys(alg);
  const cert = await createRootCa({ name, org: 'Packchain Test', keys, alg, notBefore: NOT_BEFORE, notAfter: NOT_AFTER });
  return { cert, keys, alg };
}

export async function makeIntermediate(
  issuer: TestCa,
  alg: SignatureAlg,
  name = `Test Line ${alg}`,
  dates: { notBefore?: Date; notAfter?: Date } = {},
): Promise<TestCa> {
  const keys = await caKeys(alg);
  const cert = await createIntermediateCa({
    name,
    org: 'Packchain Test',
    keys,
    alg,
    notBefore: dates.notBefore ?? NOT_BEFORE,
    notAfter: dates.notAfter ?? NOT_AFTER,
    issuer: issuerOf(issuer),
  });
  return { cert, keys, alg };
}

/** Device key pair generated the way firmware would, with @noble/curves. */
export function deviceKeys(alg: SignatureAlg, secretKey?: Uint8Array): Omit<TestDevice, 'cert'> {
  if (alg === 'Ed25519') {
    const sk = secretKey ?? ed25519.utils.randomSecretKey();
    return { alg, secretKey: sk, publicKey: ed25519.getPublicKey(sk), sign: (m) => ed25519.sign(m, sk) };
  }
  const sk = secretKey ?? p256.utils.randomSecretKey();
  return { alg, secretKey: sk, publicKey: p256.getPublicKey(sk), sign: (m) => p256.sign(m, sk) };
}

export async function issueDevice(
  issuer: TestCa,
  alg: SignatureAlg,
  packSerial = 'PACK-0001',
  overrides: Partial<Omit<DeviceCertParams, 'issuer'>> = {},
): Promise<TestDevice> {
  const keys = deviceKeys(alg);
  const cert = await createDeviceCert({
    packSerial,
    model: 'BMU-T1',
    org: 'Packchain Test',
    devicePublicKey: keys.publicKey,
    deviceAlg: alg,
    issuer: issuerOf(issuer),
    notBefore: NOT_BEFORE,
    notAfter: NOT_AFTER,
    ...overrides,
  });
  return { ...keys, cert };
}

export async function makeCrl(
  issuer: TestCa,
  revoked: readonly RevokedCert[] = [],
  opts: { crlNumber?: number; thisUpdate?: Date; nextUpdate?: Date } = {},
): Promise<Uint8Array> {
  return createCrl({
    issuer: issuerOf(issuer),
    crlNumber: opts.crlNumber ?? 1,
    thisUpdate: opts.thisUpdate ?? NOT_BEFORE,
    nextUpdate: opts.nextUpdate ?? CRL_NEXT_UPDATE,
    revoked,
  });
}

/** Serial of a DER certificate as hex, for revocation. */
export function serialOf(der: Uint8Array): string {
  return new x509.X509Certificate(der).serialNumber;
}

export interface RawCertParams {
  readonly subject: x509.JsonName;
  readonly issuer: TestCa;
  /** SubjectPublicKeyInfo DER or a WebCrypto public key. */
  readonly publicKey: Uint8Array | webcrypto.CryptoKey;
  readonly extensions: readonly x509.Extension[];
  readonly notBefore?: Date;
  readonly notAfter?: Date;
}

/** A certificate signed by `issuer` with exactly the given subject and extensions (no profile checks). */
export async function rawCert(p: RawCertParams): Promise<Uint8Array> {
  const issuer = new x509.X509Certificate(p.issuer.cert);
  const cert = await x509.X509CertificateGenerator.create({
    subject: p.subject,
    issuer: issuer.subjectName,
    notBefore: p.notBefore ?? NOT_BEFORE,
    notAfter: p.notAfter ?? NOT_AFTER,
    publicKey: p.publicKey,
    signingKey: p.issuer.keys.privateKey,
    signingAlgorithm: p.issuer.alg === 'Ed25519' ? { name: 'Ed25519' } : { name: 'ECDSA', hash: 'SHA-256' },
    extensions: [...p.extensions],
  });
  return new Uint8Array(cert.rawData);
}

/** PKCS#8 PEM of a CA private key, for openssl. */
export async function privateKeyPem(ca: TestCa): Promise<string> {
  const der = new Uint8Array(await webcrypto.subtle.exportKey('pkcs8', ca.keys.privateKey));
  return x509.PemConverter.encode(der, 'PRIVATE KEY');
}
