/**
 * A minimal DER reader for the few certificate fields the chain verifier needs and node:crypto
 * does not expose (docs/protocol.md §3.6 step 3): serial, issuer and subject Name bytes, subject
 * CN and serialNumber attributes, SubjectPublicKeyInfo bytes, and the extensions (basicConstraints,
 * keyUsage, criticality). It runs only on bytes OpenSSL has already parsed as a Certificate, and it
 * is stricter than OpenSSL (definite lengths only, single-byte tags), so it can refuse what OpenSSL
 * accepted but never read a different structure. It replaces a second full parse with
 * @peculiar/x509, which cost ~470 µs per certificate against ~10 µs here (measured on the NOTES.md
 * machine) and tripled the cold chain-verification rate. Every malformation throws CERT_PARSE.
 */
import { ProtocolError } from './errors.js';
import { fromUtf8, toHex } from './bytes.js';

interface Tlv {
  readonly tag: number;
  /** Offset of the tag byte. */
  readonly start: number;
  readonly contentStart: number;
  /** Offset just past the content. */
  readonly end: number;
}

function bad(why: string): never {
  throw new ProtocolError('CERT_PARSE', `DER: ${why}`);
}

/** One TLV at `pos`, which must end by `limit` (X.690 §8.1: definite lengths, low-tag-number form). */
function tlv(b: Uint8Array, pos: number, limit: number): Tlv {
  if (pos + 2 > limit) bad(`truncated at offset ${pos}`);
  const tag = b[pos] ?? 0;
  if ((tag & 0x1f) === 0x1f) bad(`multi-byte tag at offset ${pos}`);
  let len = b[pos + 1] ?? 0;
  let contentStart = pos + 2;
  if (len === 0x80) bad(`indefinite length at offset ${pos}`);
  if (len > 0x80) {
    const n = len & 0x7f;
    if (n > 3 || contentStart + n > limit) bad(`length field too long at offset ${pos}`);
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + (b[contentStart + i] ?? 0);
    contentStart += n;
  }
  const end = contentStart + len;
  if (end > limit) bad(`element at offset ${pos} overruns its container`);
  return { tag, start: pos, contentStart, end };
}

function children(b: Uint8Array, parent: Tlv): Tlv[] {
  const out: Tlv[] = [];
  for (let pos = parent.contentStart; pos < parent.end; ) {
    const t = tlv(b, pos, parent.end);
    out.push(t);
    pos = t.end;
    if (out.length > 256) bad('too many elements');
  }
  return out;
}

function expectTag(t: Tlv | undefined, tag: number, what: string): Tlv {
  if (t?.tag !== tag) bad(`${what}: expected tag 0x${tag.toString(16)}`);
  return t;
}

/** Dotted form of an OBJECT IDENTIFIER's content bytes (X.690 §8.19). */
function oidString(b: Uint8Array, t: Tlv): string {
  const parts: number[] = [];
  let v = 0;
  for (let i = t.contentStart; i < t.end; i++) {
    const x = b[i] ?? 0;
    if (v > 0x1fffffff) bad('OID arc too large');
    v = v * 128 + (x & 0x7f);
    if ((x & 0x80) === 0) {
      if (parts.length === 0) parts.push(v < 80 ? Math.floor(v / 40) : 2, v < 80 ? v % 40 : v - 80);
      else parts.push(v);
      v = 0;
    }
  }
  if (parts.length === 0 || ((b[t.end - 1] ?? 0) & 0x80) !== 0) bad('malformed OID');
  return parts.join('.');
}

export interface DerExtension {
  readonly oid: string;
  readonly critical: boolean;
  readonly value: Uint8Array;
}

export interface DerCertificateFields {
  /** INTEGER content bytes as hex (not normalised). */
  readonly serialHex: string;
  readonly issuerDer: Uint8Array;
  readonly subjectDer: Uint8Array;
  readonly spki: Uint8Array;
  /** Subject attribute values by OID (2.5.4.3 CN, 2.5.4.5 serialNumber, ...); non-text types read as "\uFFFD". */
  readonly subjectAttributes: ReadonlyMap<string, readonly string[]>;
  readonly extensions: readonly DerExtension[];
}

const TEXT_TAGS = new Set([0x0c, 0x13, 0x16]); // UTF8String, PrintableString, IA5String

function readName(b: Uint8Array, name: Tlv): Map<string, string[]> {
  const attrs = new Map<string, string[]>();
  for (const rdn of children(b, name)) {
    expectTag(rdn, 0x31, 'RelativeDistinguishedName');
    for (const atv of children(b, rdn)) {
      const [type, value] = children(b, expectTag(atv, 0x30, 'AttributeTypeAndValue'));
      const oid = oidString(b, expectTag(type, 0x06, 'attribute type'));
      if (value === undefined) bad('attribute without a value');
      const text = TEXT_TAGS.has(value.tag) ? fromUtf8(b.subarray(value.contentStart, value.end), 'CERT_PARSE', 'attribute value') : '\uFFFD';
      const list = attrs.get(oid) ?? [];
      list.push(text);
      attrs.set(oid, list);
    }
  }
  return attrs;
}

/** Reads the fields of an X.509 Certificate (RFC 5280 §4.1). Throws CERT_PARSE. */
export function readCertificateFields(b: Uint8Array): DerCertificateFields {
  const cert = expectTag(tlv(b, 0, b.length), 0x30, 'Certificate');
  if (cert.end !== b.length) bad('trailing bytes');
  const tbs = expectTag(children(b, cert)[0], 0x30, 'TBSCertificate');
  const f = children(b, tbs);
  let i = f[0]?.tag === 0xa0 ? 1 : 0; // [0] EXPLICIT version
  const serial = expectTag(f[i++], 0x02, 'serialNumber');
  expectTag(f[i++], 0x30, 'signature');
  const issuer = expectTag(f[i++], 0x30, 'issuer');
  expectTag(f[i++], 0x30, 'validity');
  const subject = expectTag(f[i++], 0x30, 'subject');
  const spki = expectTag(f[i++], 0x30, 'subjectPublicKeyInfo');
  const extensions: DerExtension[] = [];
  for (; i < f.length; i++) {
    const t = f[i] as Tlv;
    if (t.tag === 0x81 || t.tag === 0x82) continue; // issuerUniqueID, subjectUniqueID
    const list = expectTag(children(b, expectTag(t, 0xa3, 'extensions'))[0], 0x30, 'Extensions');
    for (const ext of children(b, list)) {
      const parts = children(b, expectTag(ext, 0x30, 'Extension'));
      const oid = oidString(b, expectTag(parts[0], 0x06, 'extnID'));
      const hasCritical = parts[1]?.tag === 0x01;
      const critical = hasCritical && (b[(parts[1] as Tlv).contentStart] ?? 0) !== 0;
      const value = expectTag(parts[hasCritical ? 2 : 1], 0x04, 'extnValue');
      extensions.push({ oid, critical, value: b.subarray(value.contentStart, value.end) });
    }
  }
  return {
    serialHex: toHex(b.subarray(serial.contentStart, serial.end)),
    issuerDer: b.slice(issuer.start, issuer.end),
    subjectDer: b.slice(subject.start, subject.end),
    spki: b.slice(spki.start, spki.end),
    subjectAttributes: readName(b, subject),
    extensions,
  };
}

/** basicConstraints value (RFC 5280 §4.2.1.9): SEQUENCE { cA BOOLEAN DEFAULT FALSE, pathLenConstraint INTEGER OPTIONAL }. */
export function readBasicConstraints(v: Uint8Array): { ca: boolean; pathLen: number | undefined } {
  const seq = expectTag(tlv(v, 0, v.length), 0x30, 'basicConstraints');
  let ca = false;
  let pathLen: number | undefined;
  for (const t of children(v, seq)) {
    if (t.tag === 0x01) ca = (v[t.contentStart] ?? 0) !== 0;
    else if (t.tag === 0x02) {
      if (t.end - t.contentStart > 2 || ((v[t.contentStart] ?? 0) & 0x80) !== 0) bad('pathLenConstraint out of range');
      pathLen = 0;
      for (let i = t.contentStart; i < t.end; i++) pathLen = pathLen * 256 + (v[i] ?? 0);
    } else bad('basicConstraints: unexpected element');
  }
  return { ca, pathLen };
}

/** keyUsage value (RFC 5280 §4.2.1.3): a BIT STRING; bit n (0 = digitalSignature) becomes 1 << n. */
export function readKeyUsage(v: Uint8Array): number {
  const bits = expectTag(tlv(v, 0, v.length), 0x03, 'keyUsage');
  if (bits.end - bits.contentStart < 1 || bits.end - bits.contentStart > 3) bad('keyUsage: bad BIT STRING length');
  let flags = 0;
  for (let byte = 0; byte < bits.end - bits.contentStart - 1; byte++) {
    const x = v[bits.contentStart + 1 + byte] ?? 0;
    for (let bit = 0; bit < 8; bit++) if ((x & (0x80 >> bit)) !== 0) flags |= 1 << (byte * 8 + bit);
  }
  return flags;
}

/** The issuer Name bytes of a CertificateList (RFC 5280 §5.1): tbsCertList { version?, signature, issuer, … }. */
export function readCrlIssuer(b: Uint8Array): Uint8Array {
  const list = expectTag(tlv(b, 0, b.length), 0x30, 'CertificateList');
  if (list.end !== b.length) bad('trailing bytes after the CRL');
  const f = children(b, expectTag(children(b, list)[0], 0x30, 'TBSCertList'));
  const i = f[0]?.tag === 0x02 ? 1 : 0; // version INTEGER OPTIONAL
  expectTag(f[i], 0x30, 'signature');
  const issuer = expectTag(f[i + 1], 0x30, 'issuer');
  return b.slice(issuer.start, issuer.end);
}

/** DER TLV with a definite, minimal length (X.690 §10.1). */
export function derTlv(tag: number, content: Uint8Array): Uint8Array {
  const n = content.length;
  const len = n < 0x80 ? [n] : n < 0x100 ? [0x81, n] : n < 0x10000 ? [0x82, n >> 8, n & 0xff] : [0x83, n >> 16, (n >> 8) & 0xff, n & 0xff];
  const out = new Uint8Array(1 + len.length + n);
  out[0] = tag;
  out.set(len, 1);
  out.set(content, 1 + len.length);
  return out;
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * Re-encodes a TBSCertList without empty crlEntryExtensions: RFC 5280 §5.1 defines Extensions as
 * SEQUENCE SIZE (1..MAX), but @peculiar/x509 writes an empty SEQUENCE for entries without a reason.
 */
export function stripEmptyCrlEntryExtensions(tbs: Uint8Array): Uint8Array {
  const top = expectTag(tlv(tbs, 0, tbs.length), 0x30, 'TBSCertList');
  const parts = children(tbs, top).map((f, i) => {
    // revokedCertificates: the SEQUENCE after version/signature/issuer/thisUpdate[/nextUpdate].
    if (f.tag !== 0x30 || i < 3) return tbs.subarray(f.start, f.end);
    const entries = children(tbs, f).map((entry) => {
      const e = children(tbs, expectTag(entry, 0x30, 'revokedCertificate'));
      const kept = e.filter((x, j) => !(j === 2 && x.tag === 0x30 && x.end === x.contentStart));
      return derTlv(0x30, concat(kept.map((x) => tbs.subarray(x.start, x.end))));
    });
    return derTlv(0x30, concat(entries));
  });
  return derTlv(0x30, concat(parts));
}

/** CertificateList from a TBSCertList and the signatureAlgorithm and signatureValue TLVs of `signed`. */
export function replaceCrlTbs(signed: Uint8Array, tbs: Uint8Array): Uint8Array {
  const f = children(signed, expectTag(tlv(signed, 0, signed.length), 0x30, 'CertificateList'));
  const alg = expectTag(f[1], 0x30, 'signatureAlgorithm');
  const sig = expectTag(f[2], 0x03, 'signatureValue');
  return derTlv(0x30, concat([tbs, signed.subarray(alg.start, alg.end), signed.subarray(sig.start, sig.end)]));
}
