/**
 * Parsing of the X.509 artefacts of device identity (docs/protocol.md §3.1–§3.3): certificates
 * (RFC 5280 §4) and CRLs (RFC 5280 §5) arrive from devices and files and are hostile, so every
 * parse is size-capped first and every library exception is wrapped in a ProtocolError
 * (CERT_PARSE / CRL_PARSE). A certificate is parsed by node:crypto (OpenSSL), which gives the fast
 * signature/issuer checks the verifier needs, and its bytes are then read by identity-der.ts for
 * what node does not expose (key usage bits, basicConstraints pathLen, subject attributes). CRLs
 * are parsed with @peculiar/x509 (node has no CRL API; they are read once, when a store is built).
 * Also here: the key identifiers shared with COSE (`keyId`, the frame `kid`) and labels (`keyFingerprint`).
 */
import { X509Certificate } from 'node:crypto';
import { x509 } from './identity-x509.js';
import { ProtocolError } from './errors.js';
import { concatBytes, toHex } from './bytes.js';
import { coseKid } from './cose-sign1.js';
import { importPublicKey, importSpki, sha256, spkiOf, type PublicKey } from './crypto.js';
import { readBasicConstraints, readCertificateFields, readCrlIssuer, readKeyUsage } from './identity-der.js';

/** Largest certificate accepted (ours are ~0.5 KiB; RFC 5280 sets no limit, we do). */
export const MAX_CERT_BYTES = 16 * 1024;
/** Largest CRL accepted; also the trust bundle's overall cap. */
export const MAX_CRL_BYTES = 4 * 1024 * 1024;
/** Most entries one CRL may list (~40 bytes each with 16-byte serials). */
export const MAX_CRL_ENTRIES = 100_000;

/**
 * Pack serials: 1..64 characters of letters, digits, '.' and '-', starting with a letter or digit.
 * A subset of X.520 PrintableString (RFC 5280 Appendix A: ub-serial-number and ub-common-name are 64)
 * that is safe in file names, log lines and URLs.
 */
export const PACK_SERIAL_PATTERN = /^[A-Za-z0-9][A-Za-z0-9.-]{0,63}$/;

// RFC 5280 §4.2.1.3 KeyUsage bits as @peculiar numbers them (bit 0 = digitalSignature = 1).
export const KU_DIGITAL_SIGNATURE = 1;
export const KU_KEY_CERT_SIGN = 32;
export const KU_CRL_SIGN = 64;

const OID_BASIC_CONSTRAINTS = '2.5.29.19';
const OID_KEY_USAGE = '2.5.29.15';
const OID_CRL_NUMBER = '2.5.29.20';
const OID_CRL_REASON = '2.5.29.21';
const OID_INVALIDITY_DATE = '2.5.29.24';
/** Extensions this verifier processes; any other extension marked critical is refused (RFC 5280 §4.2). */
const HANDLED_CERT_EXTENSIONS = new Set([
  OID_BASIC_CONSTRAINTS,
  OID_KEY_USAGE,
  '2.5.29.14', // subjectKeyIdentifier
  '2.5.29.35', // authorityKeyIdentifier
  '2.5.29.17', // subjectAltName (informational)
  '2.5.29.37', // extKeyUsage (informational)
]);
const HANDLED_CRL_EXTENSIONS = new Set([OID_CRL_NUMBER, '2.5.29.35']);
const HANDLED_CRL_ENTRY_EXTENSIONS = new Set([OID_CRL_REASON, OID_INVALIDITY_DATE]);

const CRL_BER_LIMITS = { berOptions: { maxDepth: 32, maxNodes: 8 * MAX_CRL_ENTRIES + 1024 } };

/**
 * Imports a device public key given as raw bytes (Ed25519 32 bytes; P-256 65-byte uncompressed or
 * 33-byte compressed SEC1 point) or as SubjectPublicKeyInfo DER (any other length). The length
 * alone decides, so the forms cannot be confused. Throws COSE_KEY for anything else.
 */
export function importAnyPublicKey(key: PublicKey | Uint8Array): PublicKey {
  if (!(key instanceof Uint8Array)) return key;
  if (key.length === 32) return importPublicKey('Ed25519', key);
  if (key.length === 33 || key.length === 65) return importPublicKey('ES256', key);
  if (key.length > 256) throw new ProtocolError('COSE_KEY', `public key: ${key.length} bytes is neither a raw key nor an Ed25519/P-256 SPKI`);
  return importSpki(key);
}

/**
 * The canonical SubjectPublicKeyInfo DER of a key: the fixed RFC 8410 §4 prefix ‖ 32-byte Ed25519
 * key, or the RFC 5480 §2 prefix ‖ 65-byte uncompressed P-256 point. Certificates we issue carry
 * exactly these bytes; `keyId` and `keyFingerprint` hash them. Throws COSE_KEY.
 */
export function canonicalSpki(key: PublicKey | Uint8Array): Uint8Array {
  return spkiOf(importAnyPublicKey(key));
}

/** Label-line fingerprint: lowercase hex SHA-256 of the canonical SPKI DER (64 digits). Throws COSE_KEY. */
export function keyFingerprint(key: PublicKey | Uint8Array): string {
  return toHex(sha256(canonicalSpki(key)));
}

/**
 * The key id devices put in every COSE_Sign1 protected header (label 4, RFC 9052 §3.1): the first
 * 16 bytes of SHA-256 of the canonical SPKI DER. Throws COSE_KEY.
 */
export function keyId(key: PublicKey | Uint8Array): Uint8Array {
  return coseKid(canonicalSpki(key));
}

/**
 * Serial numbers compare as uppercase hex without leading zeros ("0" for zero), so a CRL entry
 * matches the certificate however either side padded the INTEGER (RFC 5280 §4.1.2.2, §5.1.2.6).
 */
export function normaliseSerial(hex: string): string {
  const s = hex.toUpperCase().replace(/^0+/, '');
  return s === '' ? '0' : s;
}

/** What the verifier needs from one certificate. Produced only by parseCertificate. */
export interface CertificateInfo {
  readonly der: Uint8Array;
  readonly sha256: Uint8Array;
  /** node:crypto view: checkIssued, verify, publicKey. */
  readonly cert: X509Certificate;
  /** Subject for messages, e.g. "CN=PACK-0001, serialNumber=PACK-0001, O=Acme". */
  readonly subject: string;
  readonly subjectDer: Uint8Array;
  readonly issuerDer: Uint8Array;
  /** Normalised serial (normaliseSerial). */
  readonly serial: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** basicConstraints cA (RFC 5280 §4.2.1.9). */
  readonly isCa: boolean;
  readonly pathLen: number | undefined;
  /** KeyUsage bits (KU_*), undefined when the extension is absent. */
  readonly keyUsage: number | undefined;
  /** SubjectPublicKeyInfo DER exactly as in the certificate. */
  readonly spki: Uint8Array;
  readonly commonNames: readonly string[];
  /** Subject serialNumber attributes (OID 2.5.4.5, X.520). */
  readonly serialNumbers: readonly string[];
  /** OIDs of critical extensions this verifier does not process. */
  readonly unhandledCritical: readonly string[];
}

function fail(code: 'CERT_PARSE' | 'CRL_PARSE', what: string, e?: unknown): never {
  const why = e instanceof Error ? `: ${e.message}` : '';
  throw new ProtocolError(code, `${what}${why}`, e === undefined ? undefined : { cause: e });
}

function dateOf(text: string, what: string): Date {
  const t = Date.parse(text);
  if (!Number.isFinite(t)) fail('CERT_PARSE', `certificate ${what}: unreadable date "${text}"`);
  return new Date(t);
}

function asBytes(b: ArrayBuffer): Uint8Array {
  return new Uint8Array(b);
}

/**
 * Parses one DER certificate: node:crypto (OpenSSL) first, then identity-der.ts reads the fields
 * OpenSSL does not expose from the same bytes. Throws CERT_PARSE when it exceeds MAX_CERT_BYTES,
 * is not exactly one DER Certificate (trailing bytes included), OpenSSL or the field reader rejects
 * it, or an extension appears twice (RFC 5280 §4.2). Profile checks (what the fields must say)
 * are the verifier's.
 */
export function parseCertificate(der: Uint8Array): CertificateInfo {
  if (!(der instanceof Uint8Array)) fail('CERT_PARSE', 'certificate: expected DER bytes');
  if (der.length === 0 || der.length > MAX_CERT_BYTES) {
    fail('CERT_PARSE', `certificate: ${der.length} bytes, expected 1..${MAX_CERT_BYTES}`);
  }
  if (der[0] !== 0x30) fail('CERT_PARSE', 'certificate: not a DER SEQUENCE (PEM must be decoded first)');
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(Buffer.from(der));
  } catch (e) {
    fail('CERT_PARSE', 'certificate: OpenSSL cannot parse it', e);
  }
  // OpenSSL parses the first Certificate and ignores what follows; a chain element must be exactly one.
  if (cert.raw.length !== der.length) fail('CERT_PARSE', `certificate: ${der.length - cert.raw.length} trailing bytes`);
  const copy = Uint8Array.from(der);
  const f = readCertificateFields(copy);
  const seen = new Set<string>();
  const unhandledCritical: string[] = [];
  let bc: { ca: boolean; pathLen: number | undefined } | undefined;
  let keyUsage: number | undefined;
  for (const ext of f.extensions) {
    if (seen.has(ext.oid)) fail('CERT_PARSE', `certificate: extension ${ext.oid} appears twice`);
    seen.add(ext.oid);
    if (ext.oid === OID_BASIC_CONSTRAINTS) bc = readBasicConstraints(ext.value);
    else if (ext.oid === OID_KEY_USAGE) keyUsage = readKeyUsage(ext.value);
    if (ext.critical && !HANDLED_CERT_EXTENSIONS.has(ext.oid)) unhandledCritical.push(ext.oid);
  }
  return {
    der: copy,
    sha256: sha256(copy),
    cert,
    subject: cert.subject.split('\n').join(', '),
    subjectDer: f.subjectDer,
    issuerDer: f.issuerDer,
    serial: normaliseSerial(f.serialHex),
    notBefore: dateOf(cert.validFrom, 'notBefore'),
    notAfter: dateOf(cert.validTo, 'notAfter'),
    isCa: bc?.ca === true,
    pathLen: bc?.ca === true ? bc.pathLen : undefined,
    keyUsage,
    spki: f.spki,
    commonNames: f.subjectAttributes.get('2.5.4.3') ?? [],
    serialNumbers: f.subjectAttributes.get('2.5.4.5') ?? [],
    unhandledCritical,
  };
}

/** What the trust store needs from one CRL. Produced only by parseCrl. */
export interface CrlInfo {
  readonly der: Uint8Array;
  readonly issuerDer: Uint8Array;
  readonly issuer: string;
  readonly thisUpdate: Date;
  readonly nextUpdate: Date;
  /** cRLNumber (RFC 5280 §5.2.3), undefined when absent. */
  readonly crlNumber: bigint | undefined;
  /** Normalised serials of the revoked certificates. */
  readonly revoked: ReadonlySet<string>;
}

/** A parsed CRL together with the library object that can check its signature (internal). */
export interface ParsedCrl {
  readonly info: CrlInfo;
  readonly crl: x509.X509Crl;
}

/**
 * Decodes a DER INTEGER that must be non-negative and at most 20 content octets (RFC 5280 §5.2.3).
 * Throws CRL_PARSE.
 */
export function decodeCrlNumber(der: Uint8Array): bigint {
  const len = der[1] ?? 0;
  if (der.length < 3 || der[0] !== 0x02 || len !== der.length - 2 || len > 21) fail('CRL_PARSE', 'cRLNumber: expected a short DER INTEGER');
  const body = der.subarray(2);
  if (((body[0] ?? 0) & 0x80) !== 0) fail('CRL_PARSE', 'cRLNumber: negative');
  if (body.length > 1 && body[0] === 0 && ((body[1] ?? 0) & 0x80) === 0) fail('CRL_PARSE', 'cRLNumber: non-minimal INTEGER');
  return BigInt(`0x${toHex(body)}`);
}

/** DER INTEGER encoding of a non-negative integer below 2^159 (cRLNumber). */
export function encodeCrlNumber(n: bigint): Uint8Array {
  let hex = n.toString(16);
  if (hex.length % 2 === 1) hex = `0${hex}`;
  if ((parseInt(hex.slice(0, 2), 16) & 0x80) !== 0) hex = `00${hex}`;
  const body = Uint8Array.from(hex.match(/../g) ?? [], (h) => parseInt(h, 16));
  return concatBytes(Uint8Array.of(0x02, body.length), body);
}

/**
 * Parses one DER CRL (RFC 5280 §5) for the trust store. Throws CRL_PARSE when it exceeds
 * MAX_CRL_BYTES or MAX_CRL_ENTRIES, the library rejects it, nextUpdate is absent (required by
 * RFC 5280 §5.1.2.5 and by CRL_STALE), or it carries a critical extension we do not process
 * (delta CRLs, issuing distribution points, indirect-CRL entries: RFC 5280 §5.2, §5.3).
 * The signature is checked by the trust store against the issuing CA.
 */
export function parseCrl(der: Uint8Array): CrlInfo {
  return parseCrlWithObject(der).info;
}

export function parseCrlWithObject(der: Uint8Array): ParsedCrl {
  if (!(der instanceof Uint8Array)) fail('CRL_PARSE', 'CRL: expected DER bytes');
  if (der.length === 0 || der.length > MAX_CRL_BYTES) fail('CRL_PARSE', `CRL: ${der.length} bytes, expected 1..${MAX_CRL_BYTES}`);
  if (der[0] !== 0x30) fail('CRL_PARSE', 'CRL: not a DER SEQUENCE (PEM must be decoded first)');
  try {
    // Exact issuer bytes (compared with the CA's subject bytes) and exactly one CertificateList.
    const issuerDer = readCrlIssuer(der);
    const crl = new x509.X509Crl(der, CRL_BER_LIMITS);
    const nextUpdate = crl.nextUpdate;
    if (nextUpdate === undefined) fail('CRL_PARSE', 'CRL: nextUpdate is required');
    let crlNumber: bigint | undefined;
    for (const ext of crl.extensions) {
      if (ext.type === OID_CRL_NUMBER) crlNumber = decodeCrlNumber(asBytes(ext.value));
      else if (ext.critical && !HANDLED_CRL_EXTENSIONS.has(ext.type)) fail('CRL_PARSE', `CRL: unsupported critical extension ${ext.type}`);
    }
    const entries = crl.entries;
    if (entries.length > MAX_CRL_ENTRIES) fail('CRL_PARSE', `CRL: ${entries.length} entries, at most ${MAX_CRL_ENTRIES}`);
    const revoked = new Set<string>();
    for (const entry of entries) {
      for (const ext of entry.extensions) {
        if (ext.critical && !HANDLED_CRL_ENTRY_EXTENSIONS.has(ext.type)) {
          fail('CRL_PARSE', `CRL entry: unsupported critical extension ${ext.type}`);
        }
      }
      revoked.add(normaliseSerial(entry.serialNumber));
    }
    const info: CrlInfo = {
      der: Uint8Array.from(der),
      issuerDer,
      issuer: crl.issuer,
      thisUpdate: crl.thisUpdate,
      nextUpdate,
      crlNumber,
      revoked,
    };
    return { info, crl };
  } catch (e) {
    if (e instanceof ProtocolError && e.code === 'CRL_PARSE') throw e;
    fail('CRL_PARSE', 'CRL: cannot parse it', e);
  }
}
