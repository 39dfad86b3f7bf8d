/**
 * Device certificates as the ledger sees them (docs/ledger.md "Verification and witnessing"): the
 * DER certificates gateways upload are kept by SHA-256 (with subject and issuer names, to rebuild
 * chains); a leaf names its device certificate by SHA-256; the chain is rebuilt by following issuer
 * names through uploaded and stored certificates and verified with the TrustStore at the leaf's
 * receive time. Nothing a gateway says about a certificate is believed: an unknown certificate is a
 * rejected leaf (CERT_UNKNOWN), an unparsable one CERT_PARSE, and so on with the TrustStore's codes.
 *
 * A verified device is cached per process (key, kid, serial, validity window); a later leaf of the
 * same device needs only a comparison of its receive time with that window (and the CRLs' expiry)
 * — the main thread's per-leaf cost stays small. Any other time falls back to a full verifyChain,
 * which names the failing check. The cache is dropped when the trust store is replaced.
 */
import {
  deviceKeyWire,
  isProtocolError,
  MAX_CHAIN_CERTS,
  parseCertificate,
  toHex,
  type CertificateInfo,
  type DeviceKeyWire,
  type TrustStore,
  type VerifiedDevice,
} from '../protocol/index.js';
import type { Queryable } from './db/driver.js';

/** A device certificate the ledger could verify (at some time) or the reason it cannot. */
export type DeviceResolution =
  | { readonly ok: true; readonly chain: readonly Uint8Array[]; readonly device: VerifiedDevice; readonly wire: DeviceKeyWire }
  | { readonly ok: false; readonly code: string; readonly message: string; readonly chain: readonly Uint8Array[] | undefined; readonly claimedSerial: string | null };

/** Codes of verifyChain that depend on the time of verification (anything else holds at every time). */
const TIME_CODES = new Set(['CERT_EXPIRED', 'CERT_NOT_YET_VALID', 'CRL_STALE']);

interface StoredCert {
  readonly der: Uint8Array;
  readonly info: CertificateInfo;
}

function tryParse(der: Uint8Array): CertificateInfo | undefined {
  try {
    return parseCertificate(der);
  } catch {
    return undefined;
  }
}

/** Stores certificates (parsable ones only; an unparsable one can only ever reject the leaves naming it). */
export async function storeCerts(q: Queryable, certs: readonly Uint8Array[]): Promise<Map<string, StoredCert>> {
  const parsed = new Map<string, StoredCert>();
  for (const der of certs) {
    const info = tryParse(der);
    if (info !== undefined) parsed.set(toHex(info.sha256), { der: info.der, info });
  }
  if (parsed.size > 0) {
    const list = [...parsed.values()];
    await q.query(
      `INSERT INTO certs (sha256, der, subject, issuer)
       SELECT * FROM unnest($1::bytea[], $2::bytea[], $3::bytea[], $4::bytea[]) ON CONFLICT (sha256) DO NOTHING`,
      [list.map((c) => c.info.sha256), list.map((c) => c.der), list.map((c) => c.info.subjectDer), list.map((c) => c.info.issuerDer)],
    );
  }
  return parsed;
}

async function loadCerts(q: Queryable, where: 'sha256' | 'subject', keys: readonly Uint8Array[]): Promise<StoredCert[]> {
  if (keys.length === 0) return [];
  const rows = await q.query<{ der: Uint8Array }>(`SELECT der FROM certs WHERE ${where} = ANY($1::bytea[])`, [keys]);
  return rows.flatMap((r) => {
    const info = tryParse(r.der);
    return info === undefined ? [] : [{ der: info.der, info }];
  });
}

/** Resolves device certificates by SHA-256 to verified devices, with a per-process cache. */
export class DeviceResolver {
  private cache = new Map<string, DeviceResolution>();

  constructor(private trust: TrustStore) {}

  /** Replaces the trust store (a reloaded bundle or CRL) and forgets every cached verdict. */
  setTrust(trust: TrustStore): void {
    this.trust = trust;
    this.cache = new Map();
  }

  /**
   * Resolutions for the given certificate hashes (hex), verifying each uncached device chain at
   * `firstSeen.get(hex)` (the receive time of its first leaf in the upload). `uploaded` holds this
   * upload's certificates (already stored by storeCerts in the same transaction).
   */
  async resolve(q: Queryable, hexes: Iterable<string>, firstSeen: ReadonlyMap<string, number>, uploaded: ReadonlyMap<string, StoredCert>): Promise<Map<string, DeviceResolution>> {
    const out = new Map<string, DeviceResolution>();
    const missing: string[] = [];
    for (const h of hexes) {
      const c = this.cache.get(h);
      if (c !== undefined) out.set(h, c);
      else missing.push(h);
    }
    if (missing.length === 0) return out;
    const known = new Map(uploaded);
    const fromDb = await loadCerts(q, 'sha256', missing.filter((h) => !known.has(h)).map((h) => Uint8Array.from(Buffer.from(h, 'hex'))));
    for (const c of fromDb) known.set(toHex(c.info.sha256), c);
    // Issuers by subject: from this upload first, then the database, one query per chain level.
    const bySubject = new Map<string, StoredCert>();
    for (const c of known.values()) if (!bySubject.has(toHex(c.info.subjectDer))) bySubject.set(toHex(c.info.subjectDer), c);
    const chains = new Map<string, Uint8Array[]>();
    const tops = new Map<string, CertificateInfo>();
    for (const h of missing) {
      const c = known.get(h);
      if (c === undefined) continue;
      chains.set(h, [c.der]);
      tops.set(h, c.info);
    }
    for (let level = 1; level < MAX_CHAIN_CERTS; level++) {
      const want = [...tops.values()].filter((t) => !bytesEq(t.subjectDer, t.issuerDer) && !bySubject.has(toHex(t.issuerDer)));
      for (const c of await loadCerts(q, 'subject', dedupe(want.map((t) => t.issuerDer)))) {
        if (!bySubject.has(toHex(c.info.subjectDer))) bySubject.set(toHex(c.info.subjectDer), c);
      }
      for (const [h, top] of [...tops]) {
        const parent = bytesEq(top.subjectDer, top.issuerDer) ? undefined : bySubject.get(toHex(top.issuerDer));
        if (parent === undefined || bytesEq(parent.info.subjectDer, parent.info.issuerDer)) {
          tops.delete(h); // reached a root (the trust store holds it) or an issuer we do not have
          continue;
        }
        chains.get(h)?.push(parent.der);
        tops.set(h, parent.info);
      }
      if (tops.size === 0) break;
    }
    for (const h of missing) {
      const chain = chains.get(h);
      const r = chain === undefined ? unknown(h) : this.verify(chain, firstSeen.get(h) ?? 0);
      // A verdict that depends on the time is not cached: another leaf may have another time.
      // Nor is an unknown certificate: a later upload may bring it.
      if (r.ok || (!TIME_CODES.has(r.code) && r.code !== 'CERT_UNKNOWN')) this.cache.set(h, r);
      out.set(h, r);
    }
    return out;
  }

  private verify(chain: readonly Uint8Array[], at: number): DeviceResolution {
    try {
      const device = this.trust.verifyChain(chain, new Date(at));
      return { ok: true, chain, device, wire: deviceKeyWire(device) };
    } catch (e) {
      if (!isProtocolError(e)) throw e;
      const first = chain[0];
      const claimed = first === undefined ? undefined : tryParse(first)?.serialNumbers[0];
      return { ok: false, code: e.code, message: e.message, chain, claimedSerial: claimed ?? null };
    }
  }

  /**
   * The verdict for a leaf of a resolved device received at `t`: undefined when the chain holds at
   * `t`, else the code and message of the check that fails. The cached window decides the common
   * case; a time outside it (or a time-dependent failure) runs the full chain check at `t`.
   */
  checkAt(r: DeviceResolution, t: number): { code: string; message: string } | undefined {
    if (r.ok) {
      const until = this.trust.crlsValidUntil?.getTime() ?? Infinity;
      if (t >= r.device.notBefore.getTime() && t <= r.device.notAfter.getTime() && t <= until) return undefined;
    } else if (r.chain === undefined || !TIME_CODES.has(r.code)) {
      return { code: r.code, message: r.message };
    }
    const chain = r.chain;
    if (chain === undefined) return { code: 'CERT_UNKNOWN', message: 'ledger: device certificate not found' };
    const again = this.verify(chain, t);
    return again.ok ? undefined : { code: again.code, message: again.message };
  }
}

function unknown(hex: string): DeviceResolution {
  return { ok: false, code: 'CERT_UNKNOWN', message: `ledger: device certificate ${hex} was not uploaded by any gateway`, chain: undefined, claimedSerial: null };
}

function bytesEq(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0;
}

function dedupe(list: readonly Uint8Array[]): Uint8Array[] {
  const seen = new Map<string, Uint8Array>();
  for (const b of list) seen.set(toHex(b), b);
  return [...seen.values()];
}
