/**
 * The per-certificate checks of chain verification (docs/protocol.md §3.6 steps 5 and 7),
 * kept apart from the TrustStore that sequences and caches them: issuer linking (name, CA flags,
 * OpenSSL's checkIssued, signature), the device profile, CRL signature checks and the cache key.
 * Everything a certificate says is attacker-controlled until its signature chain is checked, so
 * each check names the certificate and throws a ProtocolError, never a library exception.
 */
import { ProtocolError, type IdentityErrorCode } from './errors.js';
import { bytesEqual, toHex } from './bytes.js';
import { fromKeyObject, sha256, type PublicKey } from './crypto.js';
import { x509 } from './identity-x509.js';
import { KU_DIGITAL_SIGNATURE, KU_KEY_CERT_SIGN, PACK_SERIAL_PATTERN, canonicalSpki, type CertificateInfo } from './identity-cert.js';

export function fail(code: IdentityErrorCode, message: string, cause?: unknown): never {
  throw new ProtocolError(code, message, cause === undefined ? undefined : { cause });
}

/** The identity a CRL is bound to: the CA's subject bytes and its key (a re-issued CA certificate keeps it). */
export function caKey(info: CertificateInfo): string {
  return `${toHex(info.subjectDer)}:${toHex(sha256(info.spki))}`;
}

/** basicConstraints cA TRUE and keyUsage present with `usage` (RFC 5280 §4.2.1.3, §4.2.1.9). */
export function isSigningCa(info: CertificateInfo, usage: number): boolean {
  return info.isCa && info.keyUsage !== undefined && (info.keyUsage & usage) !== 0;
}

/** Issuer = subject and the signature verifies with the certificate's own key. */
export function selfSigned(info: CertificateInfo): boolean {
  if (!bytesEqual(info.subjectDer, info.issuerDer)) return false;
  try {
    return info.cert.checkIssued(info.cert) && info.cert.verify(info.cert.publicKey);
  } catch {
    return false;
  }
}

/** Checks that `parent` issued `child` (RFC 5280 §6.1.3 (a)(1), (a)(4); §6.1.4 (k), (n)). */
export function link(child: CertificateInfo, parent: CertificateInfo): void {
  if (!bytesEqual(child.issuerDer, parent.subjectDer)) {
    fail('CHAIN_BROKEN', `certificate "${child.subject}" names issuer ≠ subject of the next certificate "${parent.subject}"`);
  }
  if (!isSigningCa(parent, KU_KEY_CERT_SIGN)) {
    fail('CHAIN_NOT_CA', `issuer "${parent.subject}" lacks basicConstraints cA or keyUsage keyCertSign`);
  }
  if (parent.unhandledCritical.length > 0) {
    fail('CERT_PROFILE', `issuer "${parent.subject}" has unsupported critical extension ${parent.unhandledCritical.join(', ')}`);
  }
  let ok: boolean;
  try {
    if (!child.cert.checkIssued(parent.cert)) {
      fail('CHAIN_BROKEN', `certificate "${child.subject}" was not issued by "${parent.subject}" (key identifier or key type mismatch)`);
    }
    ok = child.cert.verify(parent.cert.publicKey);
  } catch (e) {
    if (e instanceof ProtocolError) throw e;
    ok = false;
  }
  if (!ok) fail('CHAIN_SIGNATURE', `signature on "${child.subject}" does not verify with the key of "${parent.subject}"`);
}

/** The device profile (§3.2, §3.6 step 7): returns the pack serial and key, or throws CERT_PROFILE. */
export function checkDevice(device: CertificateInfo): { packSerial: string; publicKey: PublicKey } {
  const bad = (why: string): never => fail('CERT_PROFILE', `device certificate "${device.subject}": ${why}`);
  if (device.isCa) bad('is a CA (basicConstraints cA must be FALSE)');
  if (device.keyUsage === undefined || (device.keyUsage & KU_DIGITAL_SIGNATURE) === 0) bad('keyUsage must include digitalSignature');
  if (device.unhandledCritical.length > 0) bad(`unsupported critical extension ${device.unhandledCritical.join(', ')}`);
  const [cn, sn] = [device.commonNames, device.serialNumbers];
  if (sn.length !== 1) bad(`expected exactly one subject serialNumber attribute (2.5.4.5), found ${sn.length}`);
  if (cn.length !== 1) bad(`expected exactly one subject CN, found ${cn.length}`);
  const packSerial = sn[0] ?? '';
  if (cn[0] !== packSerial) bad('subject serialNumber differs from CN');
  if (!PACK_SERIAL_PATTERN.test(packSerial)) bad(`pack serial must match ${String(PACK_SERIAL_PATTERN)}`);
  let publicKey: PublicKey;
  try {
    publicKey = fromKeyObject(device.cert.publicKey);
  } catch (e) {
    return fail('CERT_PROFILE', `device certificate "${device.subject}": key is not Ed25519 or P-256`, e);
  }
  // Our kid is defined over the canonical SPKI; a compressed or otherwise re-encoded key is refused.
  if (!bytesEqual(canonicalSpki(publicKey), device.spki)) bad('key is not in canonical SPKI form (P-256 must be uncompressed)');
  return { packSerial, publicKey };
}

/** Whether `issuer`'s key verifies the CRL's signature; never throws. */
export async function crlSignedBy(crl: x509.X509Crl, issuer: CertificateInfo): Promise<boolean> {
  try {
    // A PublicKey (not the X509Certificate) so the CRL's own signature algorithm is used: the
    // library would otherwise take the algorithm that signed the issuer's certificate.
    return await crl.verify({ publicKey: new x509.PublicKey(issuer.spki) });
  } catch {
    return false;
  }
}

/** SHA-256 over (u32 length ‖ DER) per certificate: unlike plain concatenation, no two chains collide. */
export function chainHash(chain: readonly Uint8Array[]): string {
  const parts: Uint8Array[] = [];
  for (const der of chain) {
    const len = new Uint8Array(4);
    new DataView(len.buffer).setUint32(0, der.length);
    parts.push(len, der);
  }
  return toHex(sha256(...parts));
}
