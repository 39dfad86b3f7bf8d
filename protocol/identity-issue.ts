/**
 * Issuing side of device identity (DESIGN.md decision 2; docs/protocol.md §3.2, §3.3, §3.7): the
 * provisioning station builds the factory root CA, line (intermediate) CAs, device certificates
 * and CRLs with @peculiar/x509 over WebCrypto CryptoKeys. Everything here is async because
 * WebCrypto signs asynchronously. Each builder checks its parameters against the packchain
 * profile (CERT_ISSUE), re-parses what it produced and checks the signature with the issuer's
 * certificate, so a station cannot hand out a certificate that is off-profile, exceeds its
 * issuer's pathLenConstraint, or is signed with a key that does not match the issuer certificate.
 */
import { X509Certificate } from 'node:crypto';
import { webcrypto, x509 } from './identity-x509.js';
import { ProtocolError } from './errors.js';
import { toHex } from './bytes.js';
import { replaceCrlTbs, stripEmptyCrlEntryExtensions } from './identity-der.js';
import type { SignatureAlg } from './crypto.js';
import {
  KU_CRL_SIGN,
  KU_KEY_CERT_SIGN,
  PACK_SERIAL_PATTERN,
  canonicalSpki,
  encodeCrlNumber,
  importAnyPublicKey,
  normaliseSerial,
  parseCertificate,
  parseCrl,
} from './identity-cert.js';

export type CryptoKey = webcrypto.CryptoKey;
export type CryptoKeyPair = webcrypto.CryptoKeyPair;

/** The CA that signs: its certificate (DER) and its private key. */
export interface Issuer {
  readonly cert: Uint8Array;
  readonly privateKey: CryptoKey;
}

export interface RootCaParams {
  /** Subject CN, 1..64 characters. */
  readonly name: string;
  /** Subject O, 1..64 characters. */
  readonly org?: string;
  readonly keys: CryptoKeyPair;
  readonly alg: SignatureAlg;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** Certificate serial as hex (1..20 octets, positive); random 16 bytes when absent. */
  readonly serialNumber?: string;
}

export interface IntermediateCaParams extends RootCaParams {
  readonly issuer: Issuer;
}

export interface DeviceCertParams {
  /** Pack serial: CN and serialNumber attribute of the subject; must match PACK_SERIAL_PATTERN. */
  readonly packSerial: string;
  /** Device model, written as the subject OU (informational). */
  readonly model?: string;
  readonly org?: string;
  /** Raw key (Ed25519 32 bytes, P-256 65 or 33 bytes) or SubjectPublicKeyInfo DER. */
  readonly devicePublicKey: Uint8Array;
  readonly deviceAlg: SignatureAlg;
  readonly issuer: Issuer;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly serialNumber?: string;
}

/** RFC 5280 §5.3.1 reason codes a station may record (unspecified is expressed by omission). */
export type CrlReason =
  | 'keyCompromise'
  | 'cACompromise'
  | 'affiliationChanged'
  | 'superseded'
  | 'cessationOfOperation'
  | 'certificateHold'
  | 'privilegeWithdrawn';

export interface RevokedCert {
  readonly serialHex: string;
  readonly date: Date;
  readonly reason?: CrlReason;
}

export interface CrlParams {
  readonly issuer: Issuer;
  /** Monotonic cRLNumber (RFC 5280 §5.2.3), 0..2^159. */
  readonly crlNumber: number | bigint;
  readonly thisUpdate: Date;
  readonly nextUpdate: Date;
  readonly revoked: readonly RevokedCert[];
}

const REASON_CODES: Record<CrlReason, number> = {
  keyCompromise: 1,
  cACompromise: 2,
  affiliationChanged: 3,
  superseded: 4,
  cessationOfOperation: 5,
  certificateHold: 6,
  privilegeWithdrawn: 9,
};

function issueError(message: string, cause?: unknown): never {
  throw new ProtocolError('CERT_ISSUE', message, cause === undefined ? undefined : { cause });
}

function checkText(value: string | undefined, what: string): void {
  if (value === undefined) return;
  // eslint-disable-next-line no-control-regex -- control characters are exactly what we refuse
  if (typeof value !== 'string' || value.length < 1 || value.length > 64 || /[\u0000-\u001f\u007f]/.test(value)) {
    issueError(`${what}: expected 1..64 characters without control characters`);
  }
}

function checkDates(notBefore: Date, notAfter: Date, what: string): void {
  const ok = (d: Date): boolean => d instanceof Date && Number.isFinite(d.getTime()) && d.getUTCFullYear() >= 1950 && d.getUTCFullYear() <= 9999;
  if (!ok(notBefore) || !ok(notAfter)) issueError(`${what}: expected valid dates in 1950..9999 (RFC 5280 §4.1.2.5)`);
  if (notBefore.getTime() >= notAfter.getTime()) issueError(`${what}: the start must be before the end`);
}

/** Hex serial for the library: given (checked) or random positive 16 bytes (RFC 5280 §4.1.2.2). */
function serialHex(given: string | undefined): string {
  if (given === undefined) {
    const b = webcrypto.getRandomValues(new Uint8Array(16));
    b[0] = ((b[0] ?? 0) & 0x7f) | 0x01; // positive and a full 16 octets
    return toHex(b);
  }
  if (typeof given !== 'string' || !/^[0-9a-fA-F]{1,40}$/.test(given)) issueError('serialNumber: expected 1..40 hex digits');
  const s = normaliseSerial(given);
  const even = s.length % 2 === 1 ? `0${s}` : s;
  // DER adds a 0x00 octet when the top bit is set, to keep the INTEGER positive.
  const octets = even.length / 2 + (parseInt(even.slice(0, 1), 16) >= 8 ? 1 : 0);
  if (s === '0' || octets > 20) issueError('serialNumber: must be positive and at most 20 octets in DER (RFC 5280 §4.1.2.2)');
  return even;
}

function signingAlgorithm(key: CryptoKey, what: string): { alg: SignatureAlg; params: { name: string; hash?: string } } {
  const a = key.algorithm as { name?: string; namedCurve?: string };
  if (a.name === 'Ed25519') return { alg: 'Ed25519', params: { name: 'Ed25519' } };
  if (a.name === 'ECDSA' && a.namedCurve === 'P-256') return { alg: 'ES256', params: { name: 'ECDSA', hash: 'SHA-256' } };
  issueError(`${what}: expected an Ed25519 or ECDSA P-256 key, got ${a.name ?? 'unknown'}`);
}

function checkKeyPair(keys: CryptoKeyPair, alg: SignatureAlg, what: string): void {
  if (signingAlgorithm(keys.publicKey, `${what} public key`).alg !== alg || signingAlgorithm(keys.privateKey, `${what} private key`).alg !== alg) {
    issueError(`${what}: keys do not match alg ${alg}`);
  }
}

interface LoadedIssuer {
  readonly name: x509.Name;
  readonly aki: x509.AuthorityKeyIdentifierExtension;
  readonly sign: { alg: SignatureAlg; params: { name: string; hash?: string } };
  readonly node: X509Certificate;
  readonly pathLen: number | undefined;
}

async function loadIssuer(issuer: Issuer, needUsage: number, what: string): Promise<LoadedIssuer> {
  const info = parseCertificate(issuer.cert);
  if (!info.isCa || info.keyUsage === undefined || (info.keyUsage & needUsage) === 0) {
    issueError(`${what}: the issuer certificate is not a CA allowed to ${needUsage === KU_CRL_SIGN ? 'sign CRLs' : 'sign certificates'}`);
  }
  const sign = signingAlgorithm(issuer.privateKey, `${what} issuer private key`);
  const pc = new x509.X509Certificate(issuer.cert);
  // AKI = the issuer's SKI exactly (RFC 5280 §4.2.1.1), so OpenSSL's issuer matching finds it.
  const ski = pc.getExtension(x509.SubjectKeyIdentifierExtension);
  const aki = ski !== null ? new x509.AuthorityKeyIdentifierExtension(ski.keyId) : await x509.AuthorityKeyIdentifierExtension.create(pc.publicKey);
  return { name: pc.subjectName, aki, sign, node: info.cert, pathLen: info.pathLen };
}

async function build(what: string, run: () => Promise<Uint8Array>): Promise<Uint8Array> {
  try {
    return await run();
  } catch (e) {
    if (e instanceof ProtocolError) throw e;
    issueError(`${what}: ${e instanceof Error ? e.message : 'library failure'}`, e);
  }
}

/** Parses what we produced and checks its signature against the issuer; a mismatch means a wrong private key. */
function selfCheck(der: Uint8Array, issuer: X509Certificate, what: string): Uint8Array {
  const made = parseCertificate(der);
  if (!made.cert.verify(issuer.publicKey)) issueError(`${what}: the issuer private key does not belong to the issuer certificate`);
  return der;
}

function caExtensions(pathLen: number): x509.Extension[] {
  return [
    new x509.BasicConstraintsExtension(true, pathLen, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
  ];
}

function caName(p: RootCaParams): x509.JsonName {
  checkText(p.name, 'CA name');
  checkText(p.org, 'CA org');
  return p.org === undefined ? [{ CN: [p.name] }] : [{ CN: [p.name] }, { O: [p.org] }];
}

/**
 * Self-signed factory root CA: basicConstraints cA pathLen 1 and keyUsage keyCertSign|cRLSign,
 * both critical, and a subjectKeyIdentifier. Returns DER. Throws CERT_ISSUE.
 */
export async function createRootCa(p: RootCaParams): Promise<Uint8Array> {
  return build('root CA', async () => {
    const name = caName(p);
    checkKeyPair(p.keys, p.alg, 'root CA');
    checkDates(p.notBefore, p.notAfter, 'root CA validity');
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: serialHex(p.serialNumber),
      name,
      notBefore: p.notBefore,
      notAfter: p.notAfter,
      keys: p.keys,
      signingAlgorithm: signingAlgorithm(p.keys.privateKey, 'root CA').params,
      extensions: [...caExtensions(1), await x509.SubjectKeyIdentifierExtension.create(p.keys.publicKey)],
    });
    const der = new Uint8Array(cert.rawData);
    return selfCheck(der, new X509Certificate(der), 'root CA');
  });
}

/**
 * Line (intermediate) CA signed by `issuer`: basicConstraints cA pathLen 0 and keyUsage
 * keyCertSign|cRLSign, both critical, AKI and SKI. Returns DER. Throws CERT_ISSUE (CERT_PARSE for
 * an unreadable issuer certificate).
 */
export async function createIntermediateCa(p: IntermediateCaParams): Promise<Uint8Array> {
  return build('intermediate CA', async () => {
    const name = caName(p);
    checkKeyPair(p.keys, p.alg, 'intermediate CA');
    checkDates(p.notBefore, p.notAfter, 'intermediate CA validity');
    const iss = await loadIssuer(p.issuer, KU_KEY_CERT_SIGN, 'intermediate CA');
    // RFC 5280 §4.2.1.9: a CA with pathLenConstraint 0 (a line CA) may not certify another CA.
    if (iss.pathLen !== undefined && iss.pathLen < 1) issueError('intermediate CA: the issuer has pathLenConstraint 0 and may not issue CA certificates');
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: serialHex(p.serialNumber),
      subject: name,
      issuer: iss.name,
      notBefore: p.notBefore,
      notAfter: p.notAfter,
      publicKey: p.keys.publicKey,
      signingKey: p.issuer.privateKey,
      signingAlgorithm: iss.sign.params,
      extensions: [...caExtensions(0), iss.aki, await x509.SubjectKeyIdentifierExtension.create(p.keys.publicKey)],
    });
    return selfCheck(new Uint8Array(cert.rawData), iss.node, 'intermediate CA');
  });
}

/**
 * Device certificate: subject CN=<packSerial>, serialNumber=<packSerial> (OID 2.5.4.5), optional
 * OU=<model> and O=<org>; the device key as canonical SPKI; keyUsage digitalSignature (critical),
 * basicConstraints cA FALSE (critical), AKI, SKI. Returns DER. Throws CERT_ISSUE, COSE_KEY for a
 * device key of the wrong size or curve or not matching `deviceAlg`, CERT_PARSE for an
 * unreadable issuer certificate.
 */
export async function createDeviceCert(p: DeviceCertParams): Promise<Uint8Array> {
  return build('device certificate', async () => {
    if (typeof p.packSerial !== 'string' || !PACK_SERIAL_PATTERN.test(p.packSerial)) {
      issueError(`packSerial: expected ${String(PACK_SERIAL_PATTERN)}`);
    }
    checkText(p.model, 'model');
    checkText(p.org, 'org');
    checkDates(p.notBefore, p.notAfter, 'device certificate validity');
    const key = importAnyPublicKey(p.devicePublicKey);
    if (key.alg !== p.deviceAlg) throw new ProtocolError('COSE_KEY', `devicePublicKey: an ${key.alg} key, but deviceAlg is ${p.deviceAlg}`);
    const spki = canonicalSpki(key);
    const iss = await loadIssuer(p.issuer, KU_KEY_CERT_SIGN, 'device certificate');
    // serialNumber is 2.5.4.5 by OID: in this library "SN" means surname (NOTES.md).
    const subject: x509.JsonName = [{ CN: [p.packSerial] }, { '2.5.4.5': [p.packSerial] }];
    if (p.model !== undefined) subject.push({ OU: [p.model] });
    if (p.org !== undefined) subject.push({ O: [p.org] });
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: serialHex(p.serialNumber),
      subject,
      issuer: iss.name,
      notBefore: p.notBefore,
      notAfter: p.notAfter,
      publicKey: spki,
      signingKey: p.issuer.privateKey,
      signingAlgorithm: iss.sign.params,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        iss.aki,
        await x509.SubjectKeyIdentifierExtension.create(spki),
      ],
    });
    return selfCheck(new Uint8Array(cert.rawData), iss.node, 'device certificate');
  });
}

/**
 * CRL v2 signed by `issuer` (RFC 5280 §5): thisUpdate, nextUpdate, cRLNumber, AKI, one entry per
 * revoked serial with its revocation date and optional reason code. Returns DER. Throws CERT_ISSUE
 * for a bad number, date, duplicate or malformed serial, or an issuer that is not a CRL-signing CA.
 */
export async function createCrl(p: CrlParams): Promise<Uint8Array> {
  return build('CRL', async () => {
    const n = typeof p.crlNumber === 'bigint' ? p.crlNumber : Number.isSafeInteger(p.crlNumber) ? BigInt(p.crlNumber) : -1n;
    if (n < 0n || n >= 1n << 159n) issueError('crlNumber: expected an integer in 0..2^159 (RFC 5280 §5.2.3)');
    checkDates(p.thisUpdate, p.nextUpdate, 'CRL thisUpdate/nextUpdate');
    const iss = await loadIssuer(p.issuer, KU_CRL_SIGN, 'CRL');
    const seen = new Set<string>();
    const entries = p.revoked.map((r, i) => {
      const serialNumber = serialHex(r.serialHex);
      if (seen.has(serialNumber)) issueError(`revoked[${i}]: serial ${r.serialHex} listed twice`);
      seen.add(serialNumber);
      checkDates(r.date, p.nextUpdate, `revoked[${i}].date`);
      if (r.reason !== undefined && !(r.reason in REASON_CODES)) issueError(`revoked[${i}].reason: unknown reason`);
      return { serialNumber, revocationDate: r.date, ...(r.reason === undefined ? {} : { reason: REASON_CODES[r.reason] }) };
    });
    // The library writes an empty crlEntryExtensions SEQUENCE for entries without a reason, which
    // RFC 5280 §5.1 forbids (SIZE (1..MAX)). We sign the TBSCertList without them instead: the
    // provider below strips them from the bytes the library asks it to sign, and we assemble the
    // CRL from those bytes; the signature check after this catches any change in the library.
    let signedTbs: Uint8Array | undefined;
    const provider = {
      getRandomValues: webcrypto.getRandomValues.bind(webcrypto),
      subtle: {
        sign: (alg: Parameters<typeof webcrypto.subtle.sign>[0], key: CryptoKey, data: ArrayBuffer | ArrayBufferView) => {
          signedTbs = stripEmptyCrlEntryExtensions(new Uint8Array(ArrayBuffer.isView(data) ? data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength) : data));
          return webcrypto.subtle.sign(alg, key, signedTbs);
        },
      },
    };
    const crl = await x509.X509CrlGenerator.create(
      {
        issuer: iss.name,
        thisUpdate: p.thisUpdate,
        nextUpdate: p.nextUpdate,
        signingAlgorithm: iss.sign.params,
        signingKey: p.issuer.privateKey,
        extensions: [iss.aki, new x509.Extension('2.5.29.20', false, encodeCrlNumber(n))],
        entries,
      },
      provider,
    );
    if (signedTbs === undefined) issueError('CRL: the library did not sign');
    const der = replaceCrlTbs(new Uint8Array(crl.rawData), signedTbs);
    parseCrl(der); // our own verifier must be able to read it
    const pub = await x509.PublicKey.create(iss.node.publicKey.export({ format: 'der', type: 'spki' }));
    if (!(await new x509.X509Crl(der).verify({ publicKey: pub }))) {
      issueError('CRL: the issuer private key does not belong to the issuer certificate');
    }
    return der;
  });
}
