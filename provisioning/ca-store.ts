/**
 * The station CA's files (docs/provisioning.md, station directory): where each lives under
 * `<dir>/ca/`, the state file `state.json` that numbers the CRLs, and the readers that turn the
 * certificate and CRL PEM files back into DER with the checks a technician's mistake calls for
 * (a missing CA is CA_MISSING, a damaged or mismatched file CA_CORRUPT), plus the consistency
 * checks between them (a key belongs to its certificate, a CRL to its CA) and the validity defaults.
 * Nothing here decrypts a key, so `ca show` and `export` run without a passphrase.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import {
  bytesEqual,
  fromPem,
  isProtocolError,
  parseCertificate,
  parseCrl,
  toHex,
  type CrlInfo,
  type SignatureAlg,
} from '../protocol/index.js';
import { ProvisioningError } from './errors.js';
import { keyAlg, writeFileAtomic } from './ca-keys.js';

export interface CaPaths {
  readonly dir: string;
  readonly ca: string;
  readonly rootCert: string;
  readonly rootKey: string;
  readonly lineCert: string;
  readonly lineKey: string;
  readonly rootCrl: string;
  readonly lineCrl: string;
  readonly state: string;
}

/** File layout of the station directory's CA part. */
export function caPaths(dir: string, caDir = join(dir, 'ca')): CaPaths {
  return {
    dir,
    ca: caDir,
    rootCert: join(caDir, 'root.crt.pem'),
    rootKey: join(caDir, 'root.key.pem'),
    lineCert: join(caDir, 'line.crt.pem'),
    lineKey: join(caDir, 'line.key.pem'),
    rootCrl: join(caDir, 'root.crl.pem'),
    lineCrl: join(caDir, 'line.crl.pem'),
    state: join(caDir, 'state.json'),
  };
}

/** Modes: keys and state 0600, public certificates and CRLs 0644 (they are exported anyway), dirs 0700. */
export const MODE_SECRET = 0o600;
export const MODE_PUBLIC = 0o644;
export const MODE_DIR = 0o700;

export interface CaState {
  readonly version: 1;
  readonly alg: SignatureAlg;
  readonly org?: string;
  readonly createdAt: string;
  /** Last cRLNumber issued (or reserved) for each CA; the next CRL takes this + 1. */
  readonly lineCrlNumber: number;
  readonly rootCrlNumber: number;
}

function corrupt(message: string, cause?: unknown): never {
  throw new ProvisioningError('CA_CORRUPT', `provisioning: ${message}`, cause === undefined ? undefined : { cause });
}

/** True when `<dir>/ca` holds at least one entry (ca init refuses to overwrite it). */
export function caExists(p: CaPaths): boolean {
  return existsSync(p.ca) && readdirSync(p.ca).length > 0;
}

function readText(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return corrupt(`${what} ${path}: ${code === 'ENOENT' ? 'missing' : `unreadable (${code ?? 'error'})`}`, e);
  }
}

/**
 * Reads state.json. Throws CA_MISSING when there is no CA directory or no state file (no CA was
 * made here), CA_CORRUPT when the file is not the expected JSON.
 */
export function readState(p: CaPaths): CaState {
  if (!existsSync(p.state)) {
    throw new ProvisioningError('CA_MISSING', `provisioning: no CA in ${p.ca} (run \`packchain provision ca init\`, or give --dir)`);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(readText(p.state, 'CA state'));
  } catch (e) {
    if (e instanceof ProvisioningError) throw e;
    corrupt(`CA state ${p.state}: not valid JSON`, e);
  }
  const s = doc as Partial<Record<keyof CaState, unknown>> | null;
  const count = (v: unknown): boolean => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
  if (
    typeof s !== 'object' ||
    s === null ||
    s.version !== 1 ||
    (s.alg !== 'ES256' && s.alg !== 'Ed25519') ||
    typeof s.createdAt !== 'string' ||
    (s.org !== undefined && typeof s.org !== 'string') ||
    !count(s.lineCrlNumber) ||
    !count(s.rootCrlNumber)
  ) {
    corrupt(`CA state ${p.state}: expected {"version":1,"alg":"ES256"|"Ed25519","lineCrlNumber":n,"rootCrlNumber":n,...}`);
  }
  return s as CaState;
}

/** Writes state.json atomically (tmp + fsync + rename + fsync dir), mode 0600. */
export function writeState(p: CaPaths, state: CaState): void {
  writeFileAtomic(p.state, `${JSON.stringify(state, null, 2)}\n`, MODE_SECRET);
}

function onePem(path: string, label: 'CERTIFICATE' | 'X509 CRL', what: string): Uint8Array {
  const text = readText(path, what);
  let blocks: ReturnType<typeof fromPem>;
  try {
    blocks = fromPem(text);
  } catch (e) {
    return corrupt(`${what} ${path}: ${e instanceof Error ? e.message : 'bad PEM'}`, e);
  }
  const b = blocks[0];
  if (blocks.length !== 1 || b?.label !== label) corrupt(`${what} ${path}: expected exactly one "${label}" PEM block`);
  return b.der;
}

/** DER of a CA certificate file; CA_CORRUPT when missing, unreadable or not a CA certificate. */
export function readCertFile(path: string, what: string): Uint8Array {
  const der = onePem(path, 'CERTIFICATE', what);
  try {
    if (!parseCertificate(der).isCa) corrupt(`${what} ${path}: not a CA certificate`);
  } catch (e) {
    if (isProtocolError(e)) corrupt(`${what} ${path}: ${e.message}`, e);
    throw e;
  }
  return der;
}

/** DER and parsed fields of a CRL file; CA_CORRUPT when missing or unreadable. */
export function readCrlFile(path: string, what: string): { der: Uint8Array; info: CrlInfo } {
  const der = onePem(path, 'X509 CRL', what);
  try {
    return { der, info: parseCrl(der) };
  } catch (e) {
    if (isProtocolError(e)) corrupt(`${what} ${path}: ${e.message}`, e);
    throw e;
  }
}

export interface CaCertSummary {
  subject: string;
  serialHex: string;
  notBefore: Date;
  notAfter: Date;
  /** SHA-256 of the DER certificate, uppercase hex pairs joined by ':' (as `openssl x509 -fingerprint -sha256`). */
  fingerprint: string;
}

export interface CaSummary {
  dir: string;
  alg: SignatureAlg;
  root: CaCertSummary;
  line: CaCertSummary;
}

export interface CrlSummary {
  number: number;
  thisUpdate: Date;
  nextUpdate: Date;
  revoked: number;
}

/** OpenSSL's fingerprint form: uppercase hex pairs joined by ':'. */
export function colonHex(bytes: Uint8Array): string {
  return (toHex(bytes).toUpperCase().match(/../g) ?? []).join(':');
}

export function certSummary(der: Uint8Array): CaCertSummary {
  const info = parseCertificate(der);
  return { subject: info.subject, serialHex: info.serial, notBefore: info.notBefore, notAfter: info.notAfter, fingerprint: colonHex(info.sha256) };
}

export function crlSummary(info: CrlInfo): CrlSummary {
  return {
    number: Number(info.crlNumber ?? 0n),
    thisUpdate: info.thisUpdate,
    nextUpdate: info.nextUpdate,
    revoked: info.revoked.size,
  };
}

/** Both CA certificates as DER (root, line). Throws CA_MISSING / CA_CORRUPT. */
export function readCaCerts(p: CaPaths): { state: CaState; root: Uint8Array; line: Uint8Array } {
  const state = readState(p);
  return { state, root: readCertFile(p.rootCert, 'root CA certificate'), line: readCertFile(p.lineCert, 'line CA certificate') };
}

/** Milliseconds per day (CRL periods are set in days). */
export const DAY_MS = 86_400_000;

/** Validity defaults: years for certificates, days between a CRL's thisUpdate and nextUpdate. */
export const CA_DEFAULTS = Object.freeze({ rootYears: 30, lineYears: 25, deviceYears: 20, lineCrlDays: 90, rootCrlDays: 365 });

/** X.509 times have whole seconds; truncating here makes returned dates equal what the certificate says. */
export function seconds(t: number): Date {
  return new Date(Math.floor(t / 1000) * 1000);
}

/** The key must be of the CA's algorithm and belong to the certificate. Throws CA_CORRUPT. */
export function checkKeyPair(key: KeyObject, certDer: Uint8Array, alg: SignatureAlg, what: string): void {
  if (keyAlg(key) !== alg) corrupt(`${what}: the key is not an ${alg} key as state.json says`);
  const spki = new Uint8Array(createPublicKey(key).export({ format: 'der', type: 'spki' }));
  if (!bytesEqual(spki, parseCertificate(certDer).spki)) corrupt(`${what}: the private key does not belong to the certificate`);
}

/** A CRL file must be the one its CA issued (TrustStore.create checks the signature of whichever CA it names). */
export function checkCrlIssuer(crl: { info: CrlInfo }, caDer: Uint8Array, what: string): void {
  if (!bytesEqual(crl.info.issuerDer, parseCertificate(caDer).subjectDer)) corrupt(`${what}: issued by "${crl.info.issuer}", not by its CA`);
}

/** A key file's text. Throws CA_MISSING when it is not there (the root key is kept offline), CA_CORRUPT when unreadable. */
export function readKeyFile(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new ProvisioningError('CA_MISSING', `provisioning: ${what} ${path} is not there (a root key kept offline must be put back for this)`, { cause: e });
    return corrupt(`${what} ${path}: unreadable (${code ?? 'error'})`, e);
  }
}
