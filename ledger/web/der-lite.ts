/**
 * The few DER reads the browser stand-ins need (X.690 §8.1 definite-length TLVs): walking a
 * certificate to its to-be-signed bytes, names, key and signature, and a SubjectPublicKeyInfo to its
 * key. Input is hostile (a certificate from a proof bundle): every length is checked against the
 * buffer before slicing, lengths beyond 4 octets are refused, and failures throw a plain Error that
 * the callers turn into what node:crypto would report (a parse error / `false`).
 */

export interface Tlv {
  readonly tag: number;
  /** The whole element, header included. */
  readonly all: Uint8Array;
  readonly content: Uint8Array;
}

/** Reads the TLV at `off`. Throws for a truncated or indefinite/overlong length. */
export function readTlv(b: Uint8Array, off = 0): Tlv {
  const tag = b[off];
  const first = b[off + 1];
  if (tag === undefined || first === undefined) throw new Error('DER: truncated header');
  if ((tag & 0x1f) === 0x1f) throw new Error('DER: multi-byte tags are not used here');
  let len = first;
  let head = 2;
  if (first & 0x80) {
    const n = first & 0x7f;
    if (n === 0 || n > 4) throw new Error('DER: indefinite or oversized length');
    len = 0;
    for (let i = 0; i < n; i++) {
      const byte = b[off + 2 + i];
      if (byte === undefined) throw new Error('DER: truncated length');
      len = len * 256 + byte;
    }
    head += n;
  }
  const end = off + head + len;
  if (end > b.length) throw new Error('DER: element runs past the input');
  return { tag, all: b.subarray(off, end), content: b.subarray(off + head, end) };
}

/** The children of a constructed element's content, in order. */
export function children(content: Uint8Array): Tlv[] {
  const out: Tlv[] = [];
  for (let off = 0; off < content.length; ) {
    const t = readTlv(content, off);
    out.push(t);
    off += t.all.length;
    if (out.length > 64) throw new Error('DER: too many elements');
  }
  return out;
}

export interface CertificateParts {
  /** The first Certificate in the input (exactly its bytes). */
  readonly raw: Uint8Array;
  readonly tbs: Uint8Array;
  /** signatureAlgorithm AlgorithmIdentifier, whole DER. */
  readonly sigAlg: Uint8Array;
  /** signatureValue BIT STRING contents without the unused-bits octet. */
  readonly signature: Uint8Array;
  readonly issuer: Uint8Array;
  readonly subject: Uint8Array;
  readonly spki: Uint8Array;
}

/** Splits a Certificate (RFC 5280 §4.1) into the parts a signature check needs. Throws Error. */
export function certificateParts(der: Uint8Array): CertificateParts {
  const cert = readTlv(der);
  if (cert.tag !== 0x30) throw new Error('DER: certificate is not a SEQUENCE');
  const [tbs, sigAlg, sig] = children(cert.content);
  if (tbs?.tag !== 0x30 || sigAlg?.tag !== 0x30 || sig?.tag !== 0x03) throw new Error('DER: certificate is not {tbs, algorithm, signature}');
  if (sig.content[0] !== 0) throw new Error('DER: signature BIT STRING has unused bits');
  const fields = children(tbs.content);
  const at = fields[0]?.tag === 0xa0 ? 1 : 0; // [0] EXPLICIT version is optional (v1)
  const issuer = fields[at + 2];
  const subject = fields[at + 4];
  const spki = fields[at + 5];
  if (issuer?.tag !== 0x30 || subject?.tag !== 0x30 || spki?.tag !== 0x30) throw new Error('DER: TBSCertificate lacks issuer, subject or key');
  return {
    raw: cert.all,
    tbs: tbs.all,
    sigAlg: sigAlg.all,
    signature: sig.content.subarray(1),
    issuer: issuer.all,
    subject: subject.all,
    spki: spki.all,
  };
}

/** The subjectPublicKey BIT STRING contents and the AlgorithmIdentifier of an SPKI. Throws Error. */
export function spkiParts(spki: Uint8Array): { algorithm: Uint8Array; key: Uint8Array } {
  const top = readTlv(spki);
  if (top.tag !== 0x30 || top.all.length !== spki.length) throw new Error('DER: SubjectPublicKeyInfo is not one SEQUENCE');
  const [alg, bits] = children(top.content);
  if (alg?.tag !== 0x30 || bits?.tag !== 0x03 || bits.content[0] !== 0) throw new Error('DER: SubjectPublicKeyInfo is not {algorithm, key}');
  return { algorithm: alg.all, key: bits.content.subarray(1) };
}
