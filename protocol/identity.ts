/**
 * Verifying side of device identity (DESIGN.md decision 2; docs/protocol.md §3.5, §3.6): a
 * TrustStore is built once from a trust bundle (roots, line CAs, CRLs; CRL signatures are checked
 * here, asynchronously, with @peculiar/x509) and then verifies device certificate chains
 * synchronously with node:crypto's X509Certificate — about 10× faster than a generic chain builder,
 * and it checks what that builder skips (dates, CA flags, trust anchor; NOTES.md). A verified
 * chain is cached by a hash of its bytes, so a device's chain costs signature checks once per
 * connection, not per frame; every hit still re-checks dates and revocation against `now`.
 * This file also re-exports the rest of the identity API (identity-*.ts).
 */
import { invariant, ProtocolError } from './errors.js';
import { bytesEqual, toHex } from './bytes.js';
import { importPublicKey, sha256, type PublicKey, type SignatureAlg } from './crypto.js';
import {
  KU_CRL_SIGN,
  KU_KEY_CERT_SIGN,
  MAX_CERT_BYTES,
  keyId,
  parseCertificate,
  parseCrlWithObject,
  type CertificateInfo,
  type CrlInfo,
} from './identity-cert.js';
import { caKey, chainHash, checkDevice, crlSignedBy, fail, isSigningCa, link, selfSigned } from './identity-chain.js';
import type { TrustBundle } from './identity-pem.js';

export * from './identity-cert.js';
export * from './identity-pem.js';
export * from './identity-issue.js';

/** Most certificates a device may present (device + intermediates, optionally the root). */
export const MAX_CHAIN_CERTS = 4;
/** Most certificates in a verified path, device to root inclusive. */
export const MAX_PATH_CERTS = 5;

export interface TrustStoreOptions {
  /** Refuse a chain when an issuing CA has no CRL in the bundle (default true): CRL_MISSING. */
  readonly requireCrl?: boolean;
  /** Verified chains kept (least recently used evicted), default 10,000. */
  readonly cacheSize?: number;
}

export interface IssuerInfo {
  readonly subject: string;
  /** Normalised certificate serial (uppercase hex, no leading zeros). */
  readonly serialHex: string;
  readonly certSha256: Uint8Array;
  readonly der: Uint8Array;
}

/** What a verified device chain establishes. Shared with the cache: treat as read-only. */
export interface VerifiedDevice {
  readonly packSerial: string;
  readonly publicKey: PublicKey;
  readonly alg: SignatureAlg;
  /** COSE kid of the device key (keyId): 16 bytes. */
  readonly kid: Uint8Array;
  /** SHA-256 of the device certificate DER. */
  readonly certSha256: Uint8Array;
  /** Effective validity of the whole path: latest notBefore, earliest notAfter. */
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** The issuers from the device's issuer up to and including the trusted root. */
  readonly issuerChain: readonly IssuerInfo[];
}

/**
 * What verifying a device's frames needs of its verified chain (a VerifiedDevice is one): the key,
 * the COSE kid a frame must carry, and the pack serial a frame must name.
 */
export interface DeviceKey {
  readonly publicKey: PublicKey;
  readonly kid: Uint8Array;
  readonly packSerial: string;
}

/** A device key as plain data (structured-clone safe): what a verification worker thread is sent. */
export interface DeviceKeyWire {
  readonly certSha256: Uint8Array;
  readonly packSerial: string;
  readonly alg: SignatureAlg;
  readonly raw: Uint8Array;
  readonly kid: Uint8Array;
}

/** `device`'s key as plain data for a worker. */
export function deviceKeyWire(device: VerifiedDevice): DeviceKeyWire {
  return { certSha256: device.certSha256, packSerial: device.packSerial, alg: device.alg, raw: device.publicKey.raw, kid: device.kid };
}

/**
 * Device keys imported from their wire form (node:crypto KeyObjects), by certificate SHA-256, the
 * least recently used evicted beyond `size`: a verification worker imports each device's key once,
 * not per frame. `imports` counts the imports (cache misses).
 */
export class DeviceKeyCache {
  private readonly map = new Map<string, DeviceKey>();
  imports = 0;

  constructor(private readonly size = 4096) {}

  /** The cached key for `w`, importing it on first use. Throws ProtocolError COSE_KEY for a bad key. */
  get(w: DeviceKeyWire): DeviceKey {
    const id = toHex(w.certSha256);
    const hit = this.map.get(id);
    if (hit !== undefined) {
      this.map.delete(id);
      this.map.set(id, hit);
      return hit;
    }
    const key: DeviceKey = { publicKey: importPublicKey(w.alg, w.raw), kid: w.kid, packSerial: w.packSerial };
    this.imports++;
    this.map.set(id, key);
    if (this.map.size > this.size) {
      const oldest = this.map.keys().next();
      if (oldest.done !== true) this.map.delete(oldest.value);
    }
    return key;
  }
}

/** A CA certificate that chains to a trusted root (roots have no parent). */
interface CaNode {
  readonly info: CertificateInfo;
  readonly parent: CaNode | undefined;
  /** Certificates from this CA up to the root, inclusive. */
  readonly depth: number;
  /** Subject DER ‖ SPKI hash: the identity a CRL is bound to. */
  readonly key: string;
}

interface CachedChain {
  readonly result: VerifiedDevice;
  /** Device first, root last. */
  readonly path: readonly CertificateInfo[];
  /** issuerKeys[i] = key of path[i + 1]. */
  readonly issuerKeys: readonly string[];
}

const MAX_SEEN_INTERMEDIATES = 1024;

export class TrustStore {
  private readonly cache = new Map<string, CachedChain>();
  /** Verified CAs by certificate SHA-256: the bundle's and those devices presented. */
  private readonly cas: Map<string, CaNode>;
  private readonly seenIntermediates: string[] = [];

  private constructor(
    cas: Map<string, CaNode>,
    private readonly bundleCas: readonly CaNode[],
    private readonly crls: ReadonlyMap<string, CrlInfo>,
    private readonly requireCrl: boolean,
    private readonly cacheSize: number,
  ) {
    this.cas = cas;
  }

  /**
   * Builds the store from a bundle. Roots must be self-signed CAs with keyCertSign; each
   * intermediate must chain to a root in the bundle; each CRL must be signed by a CA in the bundle
   * that has cRLSign (the newest by cRLNumber, then thisUpdate, wins per CA). Throws CERT_PARSE or
   * CRL_PARSE for unreadable entries, TRUST_BUNDLE for a root, intermediate or CRL that does not
   * fit, CRL_SIGNATURE for a CRL whose signature does not verify.
   */
  static async create(bundle: TrustBundle, opts: TrustStoreOptions = {}): Promise<TrustStore> {
    const where = (what: string, e: unknown): never => {
      if (e instanceof ProtocolError && (e.code === 'CERT_PARSE' || e.code === 'CRL_PARSE')) fail(e.code, `trust bundle ${what}: ${e.message}`, e);
      throw e;
    };
    const cas = new Map<string, CaNode>();
    const nodes: CaNode[] = [];
    if (bundle.roots.length === 0) fail('TRUST_BUNDLE', 'trust bundle: no root');
    bundle.roots.forEach((der, i) => {
      let info: CertificateInfo;
      try {
        info = parseCertificate(der);
      } catch (e) {
        return where(`roots[${i}]`, e);
      }
      if (!selfSigned(info)) fail('TRUST_BUNDLE', `trust bundle roots[${i}] "${info.subject}": not self-signed`);
      if (!isSigningCa(info, KU_KEY_CERT_SIGN) || info.unhandledCritical.length > 0) {
        fail('TRUST_BUNDLE', `trust bundle roots[${i}] "${info.subject}": not a CA with keyCertSign and only supported critical extensions`);
      }
      const h = toHex(info.sha256);
      if (cas.has(h)) return;
      const node: CaNode = { info, parent: undefined, depth: 1, key: caKey(info) };
      cas.set(h, node);
      nodes.push(node);
    });
    let pending = bundle.intermediates.map((der, i) => {
      try {
        return { i, info: parseCertificate(der) };
      } catch (e) {
        return where(`intermediates[${i}]`, e);
      }
    });
    // Link in rounds so the bundle's order does not matter.
    for (let progress = true; progress && pending.length > 0; ) {
      progress = false;
      pending = pending.filter(({ i, info }) => {
        if (cas.has(toHex(info.sha256))) return false;
        const parent = nodes.find((n) => {
          try {
            link(info, n.info);
            return true;
          } catch {
            return false;
          }
        });
        if (parent === undefined) return true;
        if (!isSigningCa(info, KU_KEY_CERT_SIGN) || info.unhandledCritical.length > 0) {
          fail('TRUST_BUNDLE', `trust bundle intermediates[${i}] "${info.subject}": not a CA with keyCertSign and only supported critical extensions`);
        }
        if (parent.depth + 1 >= MAX_PATH_CERTS) fail('TRUST_BUNDLE', `trust bundle intermediates[${i}]: too deep below its root`);
        const node: CaNode = { info, parent, depth: parent.depth + 1, key: caKey(info) };
        cas.set(toHex(info.sha256), node);
        nodes.push(node);
        progress = true;
        return false;
      });
    }
    const orphan = pending[0];
    if (orphan !== undefined) {
      fail('TRUST_BUNDLE', `trust bundle intermediates[${orphan.i}] "${orphan.info.subject}": does not chain to a root in the bundle`);
    }
    const crls = new Map<string, CrlInfo>();
    for (const [i, der] of bundle.crls.entries()) {
      let parsed: ReturnType<typeof parseCrlWithObject>;
      try {
        parsed = parseCrlWithObject(der);
      } catch (e) {
        return where(`crls[${i}]`, e);
      }
      const { info, crl } = parsed;
      const candidates = nodes.filter((n) => bytesEqual(n.info.subjectDer, info.issuerDer));
      if (candidates.length === 0) fail('TRUST_BUNDLE', `trust bundle crls[${i}]: issuer "${info.issuer}" is not a CA in the bundle`);
      let signer: CaNode | undefined;
      for (const n of candidates) {
        if (!isSigningCa(n.info, KU_CRL_SIGN)) continue;
        if (await crlSignedBy(crl, n.info)) {
          signer = n;
          break;
        }
      }
      if (signer === undefined) fail('CRL_SIGNATURE', `trust bundle crls[${i}]: no CA "${info.issuer}" with cRLSign in the bundle verifies its signature`);
      const prev = crls.get(signer.key);
      const newer = (a: CrlInfo, b: CrlInfo): boolean =>
        (a.crlNumber ?? -1n) > (b.crlNumber ?? -1n) ||
        ((a.crlNumber ?? -1n) === (b.crlNumber ?? -1n) && a.thisUpdate.getTime() > b.thisUpdate.getTime());
      if (prev === undefined || newer(info, prev)) crls.set(signer.key, info);
    }
    const cacheSize = opts.cacheSize ?? 10_000;
    invariant(Number.isSafeInteger(cacheSize) && cacheSize >= 0, 'cacheSize must be a non-negative integer');
    return new TrustStore(cas, [...nodes], crls, opts.requireCrl ?? true, cacheSize);
  }

  /**
   * The earliest nextUpdate among the bundle's CRLs (undefined without CRLs): after it, chains through
   * that CA fail with CRL_STALE, so an unattended gateway should warn before then and load a fresh bundle.
   */
  get crlsValidUntil(): Date | undefined {
    let min: number | undefined;
    for (const c of this.crls.values()) min = min === undefined ? c.nextUpdate.getTime() : Math.min(min, c.nextUpdate.getTime());
    return min === undefined ? undefined : new Date(min);
  }

  /** Number of verified chains in the cache. */
  get cachedChains(): number {
    return this.cache.size;
  }

  /**
   * Verifies a device certificate chain (device first, then intermediates as presented; the root
   * may be included or left out) at time `now`. Presented intermediates count only once they
   * chain to a root of this store. Throws ProtocolError — CHAIN_EMPTY, CHAIN_TOO_LONG, CERT_PARSE,
   * CHAIN_UNTRUSTED, CHAIN_BROKEN, CHAIN_NOT_CA, CHAIN_SIGNATURE, CERT_PROFILE, CERT_NOT_YET_VALID,
   * CERT_EXPIRED, CRL_MISSING, CERT_REVOKED, CRL_STALE; the order of the checks, which decides the
   * code when several apply, is docs/protocol.md §3.6. An invalid `now` is a bug (invariant).
   */
  verifyChain(chain: readonly Uint8Array[], now: Date): VerifiedDevice {
    invariant(now instanceof Date && Number.isFinite(now.getTime()), 'verifyChain: now must be a valid Date');
    if (!Array.isArray(chain)) fail('CERT_PARSE', 'chain: expected an array of DER certificates');
    if (chain.length === 0) fail('CHAIN_EMPTY', 'chain: no certificate');
    if (chain.length > MAX_CHAIN_CERTS) fail('CHAIN_TOO_LONG', `chain: ${chain.length} certificates, at most ${MAX_CHAIN_CERTS}`);
    chain.forEach((der, i) => {
      if (!(der instanceof Uint8Array) || der.length === 0 || der.length > MAX_CERT_BYTES) {
        fail('CERT_PARSE', `chain[${i}]: expected 1..${MAX_CERT_BYTES} bytes of DER`);
      }
    });
    const key = chainHash(chain);
    let entry = this.cache.get(key);
    if (entry !== undefined) {
      this.cache.delete(key); // re-insert: most recently used last
    } else {
      entry = this.verifyCold(chain);
    }
    if (this.cacheSize > 0) {
      this.cache.set(key, entry);
      if (this.cache.size > this.cacheSize) {
        const oldest = this.cache.keys().next();
        if (oldest.done !== true) this.cache.delete(oldest.value);
      }
    }
    this.checkTime(entry.path, now);
    this.checkRevocation(entry, now);
    return entry.result;
  }

  /** Everything that does not depend on `now`: parsing, issuers, signatures, CA flags, profile. */
  private verifyCold(chain: readonly Uint8Array[]): CachedChain {
    const infos = chain.map((der, i) => {
      const known = i > 0 ? this.cas.get(toHex(sha256(der))) : undefined;
      if (known !== undefined) return known.info;
      try {
        return parseCertificate(der);
      } catch (e) {
        return fail('CERT_PARSE', `chain[${i}]: ${e instanceof Error ? e.message : 'unreadable'}`, e);
      }
    });
    const device = infos[0];
    invariant(device !== undefined, 'chain is not empty');
    if (selfSigned(device)) fail('CHAIN_UNTRUSTED', `device certificate "${device.subject}" is self-signed`);
    // The first presented certificate we already trust anchors the path; those above it are not needed.
    let anchorAt = infos.findIndex((info, i) => i > 0 && this.cas.has(toHex(info.sha256)));
    if (anchorAt === -1) anchorAt = infos.length;
    for (let i = 0; i + 1 < anchorAt; i++) link(infos[i] as CertificateInfo, infos[i + 1] as CertificateInfo);
    const top = infos[anchorAt - 1] as CertificateInfo;
    let anchor = anchorAt < infos.length ? this.cas.get(toHex((infos[anchorAt] as CertificateInfo).sha256)) : undefined;
    if (anchor !== undefined) link(top, anchor.info);
    else anchor = this.findIssuer(top);
    const presented = infos.slice(0, anchorAt);
    const path: CertificateInfo[] = [...presented];
    const keys: string[] = [];
    for (let n: CaNode | undefined = anchor; n !== undefined; n = n.parent) path.push(n.info);
    if (path.length > MAX_PATH_CERTS) fail('CHAIN_TOO_LONG', `path: ${path.length} certificates to the root, at most ${MAX_PATH_CERTS}`);
    // RFC 5280 §4.2.1.9: pathLenConstraint bounds the intermediate CAs below each CA.
    for (let j = 1; j < path.length; j++) {
      const ca = path[j] as CertificateInfo;
      if (ca.pathLen !== undefined && j - 1 > ca.pathLen) {
        fail('CHAIN_TOO_LONG', `CA "${ca.subject}" allows ${ca.pathLen} intermediate CA(s) below it, the path has ${j - 1}`);
      }
    }
    const { packSerial, publicKey } = checkDevice(device);
    // Presented intermediates are now verified up to a root: remember them (bounded).
    let parent = anchor;
    for (let i = anchorAt - 1; i >= 1; i--) {
      const info = presented[i] as CertificateInfo;
      parent = { info, parent, depth: parent.depth + 1, key: caKey(info) };
      this.rememberIntermediate(parent);
    }
    for (let j = 1; j < path.length; j++) keys.push(caKey(path[j] as CertificateInfo));
    const notBefore = new Date(Math.max(...path.map((c) => c.notBefore.getTime())));
    const notAfter = new Date(Math.min(...path.map((c) => c.notAfter.getTime())));
    const issuerChain = path.slice(1).map((c) => Object.freeze({ subject: c.subject, serialHex: c.serial, certSha256: c.sha256, der: c.der }));
    const result: VerifiedDevice = Object.freeze({
      packSerial,
      publicKey,
      alg: publicKey.alg,
      kid: keyId(publicKey),
      certSha256: device.sha256,
      notBefore,
      notAfter,
      issuerChain: Object.freeze(issuerChain),
    });
    return { result, path, issuerKeys: keys };
  }

  /** The bundle CA that issued `top`: CHAIN_UNTRUSTED when none does, CHAIN_SIGNATURE when only the signature fails. */
  private findIssuer(top: CertificateInfo): CaNode {
    const named = this.bundleCas.filter((n) => bytesEqual(n.info.subjectDer, top.issuerDer));
    let signatureFailed = false;
    for (const n of named) {
      try {
        link(top, n.info);
        return n;
      } catch (e) {
        if (e instanceof ProtocolError && e.code === 'CHAIN_SIGNATURE') signatureFailed = true;
      }
    }
    if (signatureFailed) fail('CHAIN_SIGNATURE', `signature on "${top.subject}" does not verify with its trusted issuer's key`);
    if (selfSigned(top)) fail('CHAIN_UNTRUSTED', `self-signed "${top.subject}" is not a trusted root`);
    return fail('CHAIN_UNTRUSTED', `issuer of "${top.subject}" is not in the trust store`);
  }

  private rememberIntermediate(node: CaNode): void {
    const h = toHex(node.info.sha256);
    if (this.cas.has(h)) return;
    this.cas.set(h, node);
    this.seenIntermediates.push(h);
    if (this.seenIntermediates.length > MAX_SEEN_INTERMEDIATES) {
      const old = this.seenIntermediates.shift();
      if (old !== undefined) this.cas.delete(old);
    }
  }

  /** RFC 5280 §6.1.3 (a)(2): every certificate of the path must be valid at `now` (bounds inclusive). */
  private checkTime(path: readonly CertificateInfo[], now: Date): void {
    const t = now.getTime();
    for (const c of path) {
      if (t < c.notBefore.getTime()) fail('CERT_NOT_YET_VALID', `"${c.subject}" is valid from ${c.notBefore.toISOString()}`);
      if (t > c.notAfter.getTime()) fail('CERT_EXPIRED', `"${c.subject}" expired at ${c.notAfter.toISOString()}`);
    }
  }

  /** RFC 5280 §6.3: each non-root certificate against its issuer's CRL. */
  private checkRevocation(entry: CachedChain, now: Date): void {
    for (let i = 0; i < entry.issuerKeys.length; i++) {
      const cert = entry.path[i] as CertificateInfo;
      const issuer = entry.path[i + 1] as CertificateInfo;
      const crl = this.crls.get(entry.issuerKeys[i] ?? '');
      if (crl === undefined) {
        if (this.requireCrl) fail('CRL_MISSING', `no CRL from "${issuer.subject}" in the trust bundle`);
        continue;
      }
      if (crl.revoked.has(cert.serial)) fail('CERT_REVOKED', `"${cert.subject}" (serial ${cert.serial}) is revoked by "${issuer.subject}"`);
      if (crl.nextUpdate.getTime() < now.getTime()) {
        fail('CRL_STALE', `CRL from "${issuer.subject}" expired at ${crl.nextUpdate.toISOString()} (nextUpdate)`);
      }
    }
  }
}
