/**
 * The station's certificate authority (DESIGN.md decision 2; docs/protocol.md §3.2, §3.3, §3.7):
 * a factory root CA that signs one line (intermediate) CA, which signs the device certificates
 * and the line CRL. `StationCa.init` makes both CAs, their first CRLs (number 1 — a TrustStore
 * refuses a chain whose issuer has no CRL) and the state file, in a staging directory renamed into
 * place, so a crash never leaves half a CA. `StationCa.open` needs only the line CA's passphrase:
 * the root key is touched at init and for a root CRL refresh, and may live offline otherwise.
 * Private keys exist decrypted only in memory, as non-extractable WebCrypto keys. CRL issuance is
 * serialised by a promise chain, re-reads the numbering from disk (another `provision` process may
 * have issued one) and refuses to drop an entry the current CRL lists — a revocation is never
 * undone by a lost or stale registry.
 */
import { generateKeyPairSync, type KeyObject, type webcrypto } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import {
  createCrl,
  createDeviceCert,
  createIntermediateCa,
  createRootCa,
  encodeTrustBundle,
  isProtocolError,
  normaliseSerial,
  PACK_SERIAL_PATTERN,
  parseCertificate,
  toPem,
  TrustStore,
  type CrlInfo,
  type RevokedCert,
  type SignatureAlg,
  type TrustBundle,
} from '../protocol/index.js';
import { ProvisioningError } from './errors.js';
import { decryptPrivateKeyPem, encryptPrivateKeyPem, fsyncDir, publicCryptoKey, signingKey, writeFileAtomic, writeNewFile } from './ca-keys.js';
import {
  CA_DEFAULTS,
  caExists,
  caPaths,
  certSummary,
  checkCrlIssuer,
  checkKeyPair,
  crlSummary,
  DAY_MS,
  MODE_DIR,
  MODE_PUBLIC,
  MODE_SECRET,
  readCaCerts,
  readCrlFile,
  readKeyFile,
  readState,
  seconds,
  writeState,
  type CaPaths,
  type CaState,
  type CaSummary,
  type CrlSummary,
} from './ca-store.js';

export { CA_DEFAULTS } from './ca-store.js';
export { readCrlSummaries, readTrustBundle, refreshRootCrl } from './ca-ops.js';
export type { CaCertSummary, CaSummary, CrlSummary } from './ca-store.js';

export interface CaInitOptions {
  dir: string;
  linePassphrase: string;
  /** Defaults to linePassphrase. */
  rootPassphrase?: string;
  org?: string;
  rootName?: string;
  lineName?: string;
  alg?: 'ES256' | 'Ed25519';
  now?: Date;
  rootYears?: number;
  lineYears?: number;
  lineCrlDays?: number;
}

export interface StationCaOptions {
  dir: string;
  /** The line CA's passphrase. */
  passphrase: string;
  now?: () => Date;
  deviceYears?: number;
  lineCrlDays?: number;
}

export interface IssuedDevice {
  cert: Uint8Array;
  /** [device, line] DER: what the device presents in its hello. */
  chain: Uint8Array[];
  serialHex: string;
  certSha256: Uint8Array;
  notAfter: Date;
}

export const MIN_PASSPHRASE_LENGTH = 12;
/** Certificates start an hour early so a gateway whose clock lags the station's still accepts them. */
const BACKDATE_MS = 3_600_000;

function usage(message: string): never {
  throw new ProvisioningError('USAGE', `provisioning: ${message}`);
}

function corrupt(message: string, cause?: unknown): never {
  throw new ProvisioningError('CA_CORRUPT', `provisioning: ${message}`, cause === undefined ? undefined : { cause });
}

function addYears(d: Date, years: number): Date {
  const r = new Date(d.getTime());
  r.setUTCFullYear(r.getUTCFullYear() + years);
  return r;
}

function checkCount(v: number | undefined, what: string, min: number, max: number): void {
  if (v !== undefined && (!Number.isSafeInteger(v) || v < min || v > max)) usage(`${what}: expected an integer in ${min}..${max}`);
}

function checkName(v: string | undefined, what: string): void {
  // eslint-disable-next-line no-control-regex -- control characters are exactly what we refuse
  if (v !== undefined && (v.length < 1 || v.length > 64 || /[\u0000-\u001f\u007f]/.test(v))) usage(`${what}: expected 1..64 characters without control characters`);
}

function generateCaKey(alg: SignatureAlg): KeyObject {
  return alg === 'Ed25519' ? generateKeyPairSync('ed25519').privateKey : generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
}

export class StationCa {
  private chain: Promise<unknown> = Promise.resolve();
  private store: Promise<TrustStore> | undefined;

  private constructor(
    private readonly paths: CaPaths,
    private state: CaState,
    readonly rootCert: Uint8Array,
    readonly lineCert: Uint8Array,
    private readonly lineKey: webcrypto.CryptoKey,
    private rootCrl: { der: Uint8Array; info: CrlInfo },
    private lineCrl: { der: Uint8Array; info: CrlInfo },
    /** The clock every issuance uses (tests pass a fixed one). */
    readonly clock: () => Date,
    private readonly deviceYears: number,
    private readonly lineCrlDays: number,
  ) {}

  /**
   * Creates the root and line CAs, their first CRLs and state.json under `<dir>/ca` (mode 0700;
   * keys and state 0600, certificates and CRLs 0644). Throws USAGE for a passphrase shorter than
   * MIN_PASSPHRASE_LENGTH, a bad name or period; CA_EXISTS when `<dir>/ca` holds any file.
   */
  static async init(o: CaInitOptions): Promise<CaSummary> {
    const rootPassphrase = o.rootPassphrase ?? o.linePassphrase;
    for (const [what, v] of [['line CA passphrase', o.linePassphrase], ['root CA passphrase', rootPassphrase]] as const) {
      if (typeof v !== 'string' || Array.from(v).length < MIN_PASSPHRASE_LENGTH) usage(`${what}: at least ${MIN_PASSPHRASE_LENGTH} characters are required`);
    }
    checkName(o.org, 'org');
    checkName(o.rootName, 'root CA name');
    checkName(o.lineName, 'line CA name');
    checkCount(o.rootYears, 'root CA years', 1, 100);
    checkCount(o.lineYears, 'line CA years', 1, 100);
    checkCount(o.lineCrlDays, 'line CRL days', 1, 3650);
    const alg: SignatureAlg = o.alg ?? 'ES256';
    if (!['ES256', 'Ed25519'].includes(alg)) usage('alg: expected ES256 or Ed25519');
    const dir = resolve(o.dir);
    const p = caPaths(dir);
    if (!existsSync(dir)) mkdirSync(dir, { recursive: true, mode: MODE_DIR });
    if (caExists(p)) throw new ProvisioningError('CA_EXISTS', `provisioning: a CA already exists in ${p.ca}; refusing to overwrite it`);
    const now = o.now ?? new Date();
    const notBefore = seconds(now.getTime() - BACKDATE_MS);
    const rootNotAfter = seconds(addYears(now, o.rootYears ?? CA_DEFAULTS.rootYears).getTime());
    const lineNotAfter = seconds(Math.min(addYears(now, o.lineYears ?? CA_DEFAULTS.lineYears).getTime(), rootNotAfter.getTime()));
    const org = o.org;
    const staging = mkdtempSync(join(dir, '.ca-init-'));
    try {
      chmodSync(staging, MODE_DIR);
      const sp = caPaths(dir, staging);
      const rootKey = generateCaKey(alg);
      const lineKey = generateCaKey(alg);
      const rootPair = { publicKey: await publicCryptoKey(rootKey, alg), privateKey: await signingKey(rootKey, alg) };
      const linePair = { publicKey: await publicCryptoKey(lineKey, alg), privateKey: await signingKey(lineKey, alg) };
      const base = { alg, notBefore, ...(org === undefined ? {} : { org }) };
      const rootCert = await createRootCa({ ...base, name: o.rootName ?? `${org ?? 'packchain'} Root CA`, keys: rootPair, notAfter: rootNotAfter });
      const rootIssuer = { cert: rootCert, privateKey: rootPair.privateKey };
      const lineCert = await createIntermediateCa({ ...base, name: o.lineName ?? `${org ?? 'packchain'} Line CA`, keys: linePair, notAfter: lineNotAfter, issuer: rootIssuer });
      const crlDates = (days: number) => ({ thisUpdate: seconds(now.getTime()), nextUpdate: seconds(now.getTime() + days * DAY_MS) });
      const rootCrl = await createCrl({ issuer: rootIssuer, crlNumber: 1, revoked: [], ...crlDates(CA_DEFAULTS.rootCrlDays) });
      const lineCrl = await createCrl({ issuer: { cert: lineCert, privateKey: linePair.privateKey }, crlNumber: 1, revoked: [], ...crlDates(o.lineCrlDays ?? CA_DEFAULTS.lineCrlDays) });
      writeNewFile(sp.rootKey, encryptPrivateKeyPem(rootKey, rootPassphrase), MODE_SECRET);
      writeNewFile(sp.lineKey, encryptPrivateKeyPem(lineKey, o.linePassphrase), MODE_SECRET);
      writeNewFile(sp.rootCert, toPem(rootCert, 'CERTIFICATE'), MODE_PUBLIC);
      writeNewFile(sp.lineCert, toPem(lineCert, 'CERTIFICATE'), MODE_PUBLIC);
      writeNewFile(sp.rootCrl, toPem(rootCrl, 'X509 CRL'), MODE_PUBLIC);
      writeNewFile(sp.lineCrl, toPem(lineCrl, 'X509 CRL'), MODE_PUBLIC);
      const state: CaState = { version: 1, alg, ...(org === undefined ? {} : { org }), createdAt: now.toISOString(), lineCrlNumber: 1, rootCrlNumber: 1 };
      writeNewFile(sp.state, `${JSON.stringify(state, null, 2)}\n`, MODE_SECRET);
      fsyncDir(staging);
      try {
        // rename(2) replaces an empty directory and fails on a non-empty one: a racing init loses cleanly.
        renameSync(staging, p.ca);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'ENOTEMPTY' || code === 'EEXIST') throw new ProvisioningError('CA_EXISTS', `provisioning: a CA already exists in ${p.ca}; refusing to overwrite it`, { cause: e });
        throw e;
      }
      fsyncDir(dir);
    } catch (e) {
      rmSync(staging, { recursive: true, force: true });
      throw e;
    }
    return StationCa.summary(dir);
  }

  /**
   * Opens the CA for daily use with the line CA's passphrase and checks it end to end: the key
   * belongs to the line certificate, the line certificate to the root, both CRLs verify.
   * Throws CA_MISSING (no CA here), CA_PASSPHRASE (wrong passphrase), CA_CORRUPT (a file missing,
   * damaged or not matching the others), USAGE (bad option).
   */
  static async open(o: StationCaOptions): Promise<StationCa> {
    checkCount(o.deviceYears, 'device certificate years', 1, 100);
    checkCount(o.lineCrlDays, 'line CRL days', 1, 3650);
    const p = caPaths(resolve(o.dir));
    const { state, root, line } = readCaCerts(p);
    const key = decryptPrivateKeyPem(readKeyFile(p.lineKey, 'line CA key'), o.passphrase, `line CA key ${p.lineKey}`);
    checkKeyPair(key, line, state.alg, `line CA key ${p.lineKey}`);
    const lineInfo = parseCertificate(line);
    const rootInfo = parseCertificate(root);
    if (!lineInfo.cert.checkIssued(rootInfo.cert) || !lineInfo.cert.verify(rootInfo.cert.publicKey)) {
      corrupt(`line CA certificate ${p.lineCert} was not issued by the root CA certificate ${p.rootCert}`);
    }
    const rootCrl = readCrlFile(p.rootCrl, 'root CRL');
    const lineCrl = readCrlFile(p.lineCrl, 'line CRL');
    checkCrlIssuer(rootCrl, root, `root CRL ${p.rootCrl}`);
    checkCrlIssuer(lineCrl, line, `line CRL ${p.lineCrl}`);
    const ca = new StationCa(
      p,
      state,
      root,
      line,
      await signingKey(key, state.alg),
      rootCrl,
      lineCrl,
      o.now ?? (() => new Date()),
      o.deviceYears ?? CA_DEFAULTS.deviceYears,
      o.lineCrlDays ?? CA_DEFAULTS.lineCrlDays,
    );
    await ca.trustStore(); // verifies the CRL signatures against the CAs
    return ca;
  }

  /** Subjects, serials, validity and fingerprints of both CAs; no passphrase needed. Throws CA_MISSING / CA_CORRUPT. */
  static summary(dir: string): CaSummary {
    const p = caPaths(resolve(dir));
    const { state, root, line } = readCaCerts(p);
    return { dir: p.dir, alg: state.alg, root: certSummary(root), line: certSummary(line) };
  }

  /**
   * Issues a device certificate for a key whose possession the station has checked. Validity:
   * from an hour ago (never before the CAs') for deviceYears, never past either CA's notAfter.
   * Throws USAGE for a pack serial outside PACK_SERIAL_PATTERN or a bad model, DEVICE_ERROR for a
   * public key that is not a valid key of `alg`, CA_CORRUPT when the line CA has expired.
   */
  async issueDevice(p: { packSerial: string; model?: string; publicKey: Uint8Array; alg: SignatureAlg }): Promise<IssuedDevice> {
    if (typeof p.packSerial !== 'string' || !PACK_SERIAL_PATTERN.test(p.packSerial)) usage(`pack serial "${p.packSerial}": expected ${String(PACK_SERIAL_PATTERN)}`);
    checkName(p.model, 'model');
    const now = this.clock().getTime();
    const line = parseCertificate(this.lineCert);
    const root = parseCertificate(this.rootCert);
    const notBefore = seconds(Math.max(now - BACKDATE_MS, line.notBefore.getTime(), root.notBefore.getTime()));
    const notAfter = seconds(Math.min(addYears(new Date(now), this.deviceYears).getTime(), line.notAfter.getTime(), root.notAfter.getTime()));
    if (notAfter.getTime() <= now) corrupt(`the line CA certificate expired at ${line.notAfter.toISOString()}; a new line CA is needed`);
    let cert: Uint8Array;
    try {
      cert = await createDeviceCert({
        packSerial: p.packSerial,
        ...(p.model === undefined ? {} : { model: p.model }),
        ...(this.state.org === undefined ? {} : { org: this.state.org }),
        devicePublicKey: p.publicKey,
        deviceAlg: p.alg,
        issuer: { cert: this.lineCert, privateKey: this.lineKey },
        notBefore,
        notAfter,
      });
    } catch (e) {
      if (isProtocolError(e) && e.code === 'COSE_KEY') throw new ProvisioningError('DEVICE_ERROR', `provisioning: device public key: ${e.message}`, { cause: e });
      if (isProtocolError(e)) corrupt(`issuing the device certificate: ${e.message}`, e);
      throw e;
    }
    const info = parseCertificate(cert);
    return { cert, chain: [cert, this.lineCert], serialHex: info.serial, certSha256: info.sha256, notAfter: info.notAfter };
  }

  /**
   * New line CRL listing exactly `revoked` (duplicates merged); number = the highest issued so far
   * (here or by another process, per state.json and line.crl.pem) + 1; state.json is written before
   * the CRL file, so a crash can skip a number but never reuse one. Persisted before it resolves;
   * serialised with every other issuance of this instance. Throws REGISTRY when `revoked` lacks a
   * serial the current CRL lists (that would un-revoke it), CA_CORRUPT for an unreadable CRL file.
   */
  issueLineCrl(revoked: readonly RevokedCert[]): Promise<{ crl: Uint8Array; number: number }> {
    const run = this.chain.then(() => this.issueLineCrlNow(revoked));
    this.chain = run.catch(() => undefined);
    return run;
  }

  private async issueLineCrlNow(revoked: readonly RevokedCert[]): Promise<{ crl: Uint8Array; number: number }> {
    const onDisk = readCrlFile(this.paths.lineCrl, 'line CRL');
    const current = (onDisk.info.crlNumber ?? 0n) > (this.lineCrl.info.crlNumber ?? 0n) ? onDisk : this.lineCrl;
    const diskState = readState(this.paths);
    const last = Math.max(diskState.lineCrlNumber, this.state.lineCrlNumber, Number(current.info.crlNumber ?? 0n));
    const bySerial = new Map<string, RevokedCert>();
    for (const r of revoked) {
      const k = normaliseSerial(r.serialHex);
      const prev = bySerial.get(k);
      if (prev === undefined || r.date.getTime() < prev.date.getTime()) bySerial.set(k, r);
    }
    const dropped = [...current.info.revoked].filter((s) => !bySerial.has(s));
    if (dropped.length > 0) {
      throw new ProvisioningError(
        'REGISTRY',
        `provisioning: the registry lacks revoked certificate(s) ${dropped.slice(0, 5).join(', ')} that line CRL #${String(current.info.crlNumber)} lists; refusing to issue a CRL that would un-revoke them`,
      );
    }
    const number = last + 1;
    const now = this.clock().getTime();
    const crl = await createCrl({
      issuer: { cert: this.lineCert, privateKey: this.lineKey },
      crlNumber: number,
      thisUpdate: seconds(now),
      nextUpdate: seconds(now + this.lineCrlDays * DAY_MS),
      revoked: [...bySerial.values()],
    });
    this.state = { ...diskState, lineCrlNumber: number };
    writeState(this.paths, this.state);
    writeFileAtomic(this.paths.lineCrl, toPem(crl, 'X509 CRL'), MODE_PUBLIC);
    this.lineCrl = readCrlFile(this.paths.lineCrl, 'line CRL');
    this.store = undefined;
    return { crl, number };
  }

  /** The CRLs this instance issued or loaded (DER). */
  currentCrls(): { root: Uint8Array; line: Uint8Array } {
    return { root: this.rootCrl.der, line: this.lineCrl.der };
  }

  /** Numbers, dates and sizes of the current CRLs. */
  crlSummaries(): { root: CrlSummary; line: CrlSummary } {
    return { root: crlSummary(this.rootCrl.info), line: crlSummary(this.lineCrl.info) };
  }

  /** Roots, line CA and current CRLs, as gateways load them. */
  bundle(): TrustBundle {
    return { roots: [this.rootCert], intermediates: [this.lineCert], crls: [this.rootCrl.der, this.lineCrl.der] };
  }

  /**
   * A TrustStore over the bundle (requireCrl), rebuilt after each CRL issuance. Throws CA_CORRUPT
   * when the CA files do not form a valid bundle (a CRL whose signature does not verify, ...).
   */
  trustStore(): Promise<TrustStore> {
    this.store ??= TrustStore.create(this.bundle(), { requireCrl: true }).catch((e: unknown) => {
      this.store = undefined;
      if (isProtocolError(e)) corrupt(`the CA files in ${this.paths.ca} do not form a valid trust bundle: ${e.message}`, e);
      throw e;
    });
    return this.store;
  }

  /** The trust bundle text (docs/protocol.md §3.5). */
  trustBundle(): string {
    return encodeTrustBundle(this.bundle());
  }
}
