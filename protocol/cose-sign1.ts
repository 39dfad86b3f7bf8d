/**
 * COSE_Sign1 structure without cryptography (docs/protocol.md §2.2): parsing (RFC 9052 §4.2),
 * Sig_structure (RFC 9052 §4.4), kid derivation and message assembly. Node-free, so the browser and
 * the firmware side share it; cose.ts (node:crypto) and cose-portable.ts (@noble) add the signature
 * check on top.
 *
 * Two parsers. `parseSign1` enforces the packchain profile exactly (DESIGN.md decision 1):
 *   COSE_Sign1 = #6.18([ protected: bstr .cbor {1: alg, 4: kid}, unprotected: {}, payload: bstr,
 *                        signature: bstr .size 64 ])
 * with alg −8 (EdDSA/Ed25519, RFC 9053 §2.2) or −7 (ES256, RFC 9053 §2.1, raw r‖s) and kid the 16-byte
 * `coseKid` of the device key. `parseSign1Generic` reads any COSE_Sign1 with those two algorithms
 * (headers in either bucket, optional tag, external_aad) so published examples can be checked.
 *
 * Everything is built from the bytes as received: the Sig_structure embeds the received protected
 * header and payload byte strings behind freshly written heads, never a re-encoding of decoded
 * maps, so a verifier signs off exactly the bytes it stores. The message is capped at 768 bytes
 * before any decoding, and the CBOR codec rejects anything non-deterministic.
 */
import { bytesEqual, concatBytes, utf8 } from './bytes.js';
import { byteStringHead, CborTag, decodeCbor, encodeCbor, headLength, writeHead, type CborMap, type CborValue } from './cbor.js';
import type { SignatureAlg } from './crypto.js';
import { sha256Portable } from './crypto-portable.js';
import { invariant, ProtocolError } from './errors.js';

/** CBOR tag of COSE_Sign1 (RFC 9052 §2). */
export const COSE_SIGN1_TAG = 18;
/** Largest accepted COSE_Sign1 message in bytes; checked before decoding. */
export const COSE_MAX_BYTES = 768;
/** Length of a packchain kid: the first 16 bytes of SHA-256(SubjectPublicKeyInfo DER). */
export const COSE_KID_BYTES = 16;
/** COSE algorithm identifiers (RFC 9053 Table 1 and Table 2 / IANA COSE Algorithms). */
export const COSE_ALG: Readonly<Record<SignatureAlg, number>> = Object.freeze({ Ed25519: -8, ES256: -7 });

const HEADER_ALG = 1;
const HEADER_CRIT = 2;
const HEADER_KID = 4;
const SIGNATURE_BYTES = 64;
const EMPTY = new Uint8Array(0);
/** 0x84 (array of 4), then "Signature1" as a text string (RFC 9052 §4.4 context). */
const SIG1_PREFIX = concatBytes(Uint8Array.of(0x84, 0x6a), utf8('Signature1'));

/** A profile COSE_Sign1, parsed but not verified. Byte fields are views into the input. */
export interface ParsedSign1 {
  readonly alg: SignatureAlg;
  readonly kid: Uint8Array;
  /** The protected header bstr contents, as received. */
  readonly protectedBytes: Uint8Array;
  readonly payload: Uint8Array;
  readonly signature: Uint8Array;
  /** The encoded Sig_structure: what the signature covers. */
  readonly toBeSigned: Uint8Array;
}

/** Any COSE_Sign1 with a supported algorithm, parsed but not verified. */
export interface ParsedSign1Generic extends Omit<ParsedSign1, 'kid'> {
  readonly kid: Uint8Array | undefined;
  readonly tagged: boolean;
  readonly protectedHeader: CborMap;
  readonly unprotectedHeader: CborMap;
}

/** What a successful verification returns. `payload` is a view into the verified message. */
export interface VerifiedSign1 {
  readonly alg: SignatureAlg;
  readonly kid: Uint8Array;
  readonly payload: Uint8Array;
}

/**
 * Sig_structure for COSE_Sign1 (RFC 9052 §4.4): ["Signature1", body_protected, external_aad, payload],
 * written from the given byte strings with deterministic heads.
 */
export function sigStructure(protectedBytes: Uint8Array, externalAad: Uint8Array, payload: Uint8Array): Uint8Array {
  return sigStructureInto(undefined, protectedBytes, externalAad, payload);
}

/**
 * sigStructure written at the start of `scratch` when it is long enough (a view of it is returned:
 * valid until the scratch is written again), else into a new array. verifySign1 passes a scratch:
 * a new array per frame costs an off-heap allocation on the verify path.
 */
function sigStructureInto(scratch: Uint8Array | undefined, protectedBytes: Uint8Array, externalAad: Uint8Array, payload: Uint8Array): Uint8Array {
  const size =
    SIG1_PREFIX.length +
    headLength(protectedBytes.length) + protectedBytes.length +
    headLength(externalAad.length) + externalAad.length +
    headLength(payload.length) + payload.length;
  const out = scratch !== undefined && scratch.length >= size ? scratch.subarray(0, size) : new Uint8Array(size);
  out.set(SIG1_PREFIX, 0);
  let at = SIG1_PREFIX.length;
  for (const part of [protectedBytes, externalAad, payload]) {
    at = writeHead(out, at, 2, part.length);
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** packchain kid: the first 16 bytes of SHA-256 over the device key's SubjectPublicKeyInfo DER. */
export function coseKid(spki: Uint8Array): Uint8Array {
  return sha256Portable(spki).slice(0, COSE_KID_BYTES);
}

function algFromId(id: number | string): SignatureAlg {
  if (id === COSE_ALG.Ed25519) return 'Ed25519';
  if (id === COSE_ALG.ES256) return 'ES256';
  throw new ProtocolError('COSE_ALG_UNKNOWN', `cose: algorithm ${JSON.stringify(id)} is not supported (expected -8 EdDSA or -7 ES256)`);
}

interface Envelope {
  tagged: boolean;
  protectedBytes: Uint8Array;
  unprotected: CborMap;
  payload: Uint8Array;
  signature: Uint8Array;
}

/** The four-element COSE_Sign1 array (RFC 9052 §4.2), optionally behind tag 18. */
function envelope(bytes: Uint8Array, requireTag: boolean, maxDepth: number): Envelope {
  if (bytes.length > COSE_MAX_BYTES) {
    throw new ProtocolError('COSE_TOO_LARGE', `cose: message of ${bytes.length} bytes exceeds the ${COSE_MAX_BYTES}-byte cap`);
  }
  const top: CborValue = decodeCbor(bytes, { maxDepth });
  let body: CborValue = top;
  const tagged = top instanceof CborTag;
  if (top instanceof CborTag) {
    if (top.tag !== COSE_SIGN1_TAG) throw new ProtocolError('COSE_TAG', `cose: tag ${top.tag} is not COSE_Sign1 (${COSE_SIGN1_TAG})`);
    body = top.value;
  } else if (requireTag) {
    throw new ProtocolError('COSE_TAG', `cose: message must be tagged COSE_Sign1 (${COSE_SIGN1_TAG})`);
  }
  if (!Array.isArray(body) || body.length !== 4) {
    throw new ProtocolError('COSE_MALFORMED', 'cose: COSE_Sign1 must be an array of 4 items [protected, unprotected, payload, signature]');
  }
  const [protectedBytes, unprotected, payload, signature] = body;
  if (!(protectedBytes instanceof Uint8Array)) throw new ProtocolError('COSE_MALFORMED', 'cose: item 0 (protected) must be a byte string');
  if (!(unprotected instanceof Map)) throw new ProtocolError('COSE_MALFORMED', 'cose: item 1 (unprotected) must be a map');
  if (payload === null) throw new ProtocolError('COSE_MALFORMED', 'cose: item 2 (payload) is nil: detached payloads are not supported');
  if (!(payload instanceof Uint8Array)) throw new ProtocolError('COSE_MALFORMED', 'cose: item 2 (payload) must be a byte string');
  if (!(signature instanceof Uint8Array)) throw new ProtocolError('COSE_MALFORMED', 'cose: item 3 (signature) must be a byte string');
  return { tagged, protectedBytes, unprotected, payload, signature };
}

function checkSignatureLength(signature: Uint8Array, alg: SignatureAlg): void {
  // RFC 8032 §5.1.6: 64 bytes; RFC 9053 §2.1: ES256 is r‖s, 32 bytes each.
  if (signature.length !== SIGNATURE_BYTES) {
    throw new ProtocolError('COSE_SIGNATURE', `cose: ${alg} signature must be ${SIGNATURE_BYTES} bytes, got ${signature.length}`);
  }
}

/**
 * Parses a packchain-profile COSE_Sign1 without verifying it (the gateway reads `kid` to find the
 * device key). Throws ProtocolError: COSE_TOO_LARGE (over 768 bytes, before decoding), CBOR_* (not
 * deterministic CBOR, trailing bytes, too deep), COSE_TAG (untagged or a tag other than 18),
 * COSE_MALFORMED (not [bstr, map, bstr, bstr]; nil payload), COSE_HEADER (protected header not
 * exactly {1: int, 4: 16-byte bstr}, crit present, unprotected not empty), COSE_ALG_UNKNOWN,
 * COSE_SIGNATURE (signature not 64 bytes).
 */
export function parseSign1(bytes: Uint8Array): ParsedSign1 {
  return parseCommon(bytes, undefined) ?? parseSign1General(bytes);
}

/**
 * parseSign1 for a caller that uses the result at once and drops it (verification): the
 * Sig_structure of a common-layout message is a view of `scratch`, overwritten by the next call.
 */
export function parseSign1Transient(bytes: Uint8Array, scratch: Uint8Array): ParsedSign1 {
  return parseCommon(bytes, scratch) ?? parseSign1General(bytes);
}

/** The protected header every profile message carries, up to the alg byte: bstr(21) {1: alg, 4: bstr(16) kid}. */
const PROFILE_PROTECTED = Uint8Array.of(0x55, 0xa2, 0x01);

/**
 * parseSign1's one-pass reader for the layout every profile message has —
 * d2 84 55 a2 01 (26|27) 04 50 kid(16) a0 payload-bstr 58 40 signature(64) — with the payload's head
 * in shortest form. Returns exactly what parseSign1General returns for such bytes, or undefined for
 * anything else (the general path then decides and names the error; cose-fast.test.ts compares
 * the two over mutated messages).
 */
function parseCommon(b: Uint8Array, scratch: Uint8Array | undefined): ParsedSign1 | undefined {
  const n = b.length;
  if (n > COSE_MAX_BYTES || n < 28 + 66 || b[0] !== 0xd2 || b[1] !== 0x84) return undefined;
  if (b[2] !== PROFILE_PROTECTED[0] || b[3] !== PROFILE_PROTECTED[1] || b[4] !== PROFILE_PROTECTED[2] || b[6] !== 0x04 || b[7] !== 0x50 || b[24] !== 0xa0) return undefined;
  const algByte = b[5];
  const alg: SignatureAlg | undefined = algByte === 0x27 ? 'Ed25519' : algByte === 0x26 ? 'ES256' : undefined;
  if (alg === undefined) return undefined;
  const ib = b[25] as number;
  let at = 26;
  let len: number;
  if (ib >= 0x40 && ib < 0x58) len = ib - 0x40;
  else if (ib === 0x58 && (b[26] as number) >= 24) {
    len = b[26] as number;
    at = 27;
  } else if (ib === 0x59 && (b[26] as number) > 0) {
    len = (b[26] as number) * 256 + (b[27] as number);
    at = 28;
  } else return undefined;
  if (at + len + 66 !== n || b[at + len] !== 0x58 || b[at + len + 1] !== 0x40) return undefined;
  const protectedBytes = b.subarray(3, 24);
  const payload = b.subarray(at, at + len);
  return {
    alg,
    kid: b.subarray(8, 24),
    protectedBytes,
    payload,
    signature: b.subarray(n - 64, n),
    toBeSigned: sigStructureInto(scratch, protectedBytes, EMPTY, payload),
  };
}

/**
 * parseSign1 through the general CBOR decoder: the definition of a profile message and of its error
 * codes. Exported for cose-fast.test.ts, not from index.ts.
 */
export function parseSign1General(bytes: Uint8Array): ParsedSign1 {
  // Depth 4 = tag → array → unprotected map → one nested level, so a stray x5chain array in the
  // unprotected bucket is reported as COSE_HEADER rather than CBOR_TOO_DEEP.
  const env = envelope(bytes, true, 4);
  const p = env.protectedBytes;
  if (p.length === 0) throw new ProtocolError('COSE_HEADER', 'cose: protected header is empty; the profile requires {1: alg, 4: kid}');
  const h = decodeCbor(p, { maxDepth: 2 });
  if (!(h instanceof Map)) throw new ProtocolError('COSE_HEADER', 'cose: protected header must be a CBOR map');
  if (h.has(HEADER_CRIT)) throw new ProtocolError('COSE_HEADER', 'cose: crit (2) is not allowed in the profile');
  for (const label of h.keys()) {
    if (label !== HEADER_ALG && label !== HEADER_KID) {
      throw new ProtocolError('COSE_HEADER', `cose: protected header label ${JSON.stringify(label)} is not allowed; the profile has exactly {1: alg, 4: kid}`);
    }
  }
  const algId = h.get(HEADER_ALG);
  if (typeof algId !== 'number') throw new ProtocolError('COSE_HEADER', 'cose: protected header alg (1) must be present and an integer');
  const kid = h.get(HEADER_KID);
  if (!(kid instanceof Uint8Array) || kid.length !== COSE_KID_BYTES) {
    throw new ProtocolError('COSE_HEADER', `cose: protected header kid (4) must be a ${COSE_KID_BYTES}-byte string`);
  }
  const alg = algFromId(algId);
  if (env.unprotected.size !== 0) throw new ProtocolError('COSE_HEADER', 'cose: unprotected header must be an empty map in the profile');
  checkSignatureLength(env.signature, alg);
  return {
    alg,
    kid,
    protectedBytes: p,
    payload: env.payload,
    signature: env.signature,
    toBeSigned: sigStructure(p, EMPTY, env.payload),
  };
}

/** Options of the generic parser. */
export interface GenericSign1Options {
  /** external_aad of the Sig_structure (RFC 9052 §4.3); empty by default. */
  externalAad?: Uint8Array;
}

/**
 * Parses any COSE_Sign1 (RFC 9052 §4.2) whose algorithm is −7 or −8, for checking published
 * examples: the tag is optional (an untagged array is accepted; another tag is COSE_TAG), alg and kid
 * may sit in either bucket (protected wins, RFC 9052 §3), a label in both buckets or any crit is
 * COSE_HEADER, and an empty protected map — h'' or h'a0' — contributes h'' to the Sig_structure
 * (RFC 9052 §3, §4.4). Still strict CBOR: non-deterministic encodings throw CBOR_*. Throws the codes
 * of parseSign1 (COSE_HEADER also for a missing alg or a non-bstr kid).
 */
export function parseSign1Generic(bytes: Uint8Array, options: GenericSign1Options = {}): ParsedSign1Generic {
  const env = envelope(bytes, false, 8);
  const p = env.protectedBytes;
  const prot = p.length === 0 ? new Map<number | string, CborValue>() : decodeCbor(p, { maxDepth: 8 });
  if (!(prot instanceof Map)) throw new ProtocolError('COSE_HEADER', 'cose: protected header must be a CBOR map');
  const unprot = env.unprotected;
  for (const label of unprot.keys()) {
    if (prot.has(label)) throw new ProtocolError('COSE_HEADER', `cose: label ${JSON.stringify(label)} appears in both header buckets`);
  }
  if (prot.has(HEADER_CRIT) || unprot.has(HEADER_CRIT)) {
    throw new ProtocolError('COSE_HEADER', 'cose: crit (2) is present; this verifier understands no critical header parameters');
  }
  const algId = prot.get(HEADER_ALG) ?? unprot.get(HEADER_ALG);
  if (algId === undefined) throw new ProtocolError('COSE_HEADER', 'cose: alg (1) is missing');
  if (typeof algId !== 'number' && typeof algId !== 'string') throw new ProtocolError('COSE_HEADER', 'cose: alg (1) must be an integer or text');
  const alg = algFromId(algId);
  const kid = prot.get(HEADER_KID) ?? unprot.get(HEADER_KID);
  if (kid !== undefined && !(kid instanceof Uint8Array)) throw new ProtocolError('COSE_HEADER', 'cose: kid (4) must be a byte string');
  checkSignatureLength(env.signature, alg);
  const bodyProtected = prot.size === 0 ? EMPTY : p;
  return {
    alg,
    kid,
    tagged: env.tagged,
    protectedHeader: prot,
    unprotectedHeader: unprot,
    protectedBytes: p,
    payload: env.payload,
    signature: env.signature,
    toBeSigned: sigStructure(bodyProtected, options.externalAad ?? EMPTY, env.payload),
  };
}

/** A key to verify with: the public key and, for the profile, the kid it must carry. */
export interface Sign1Key<K> {
  readonly publicKey: K;
  readonly kid: Uint8Array;
}

/**
 * The key checks and the signature check shared by every verifier: the message's alg must be the
 * key's (COSE_ALG_MISMATCH), its kid the key's if `kid` is given (COSE_KID_MISMATCH), and the
 * signature must verify (COSE_SIGNATURE). `verify` must return false, not throw, for bad input.
 */
export function verifyParsed<K extends { readonly alg: SignatureAlg }>(
  parsed: Pick<ParsedSign1Generic, 'alg' | 'kid' | 'toBeSigned' | 'signature' | 'payload'>,
  key: { readonly publicKey: K; readonly kid?: Uint8Array | undefined },
  verify: (key: K, msg: Uint8Array, sig: Uint8Array) => boolean,
): { alg: SignatureAlg; kid: Uint8Array | undefined; payload: Uint8Array } {
  if (parsed.alg !== key.publicKey.alg) {
    throw new ProtocolError('COSE_ALG_MISMATCH', `cose: message is signed with ${parsed.alg} but the key is ${key.publicKey.alg}`);
  }
  if (key.kid !== undefined && (parsed.kid === undefined || !bytesEqual(parsed.kid, key.kid))) {
    throw new ProtocolError('COSE_KID_MISMATCH', 'cose: message kid does not match the key');
  }
  if (!verify(key.publicKey, parsed.toBeSigned, parsed.signature)) {
    throw new ProtocolError('COSE_SIGNATURE', `cose: ${parsed.alg} signature does not verify`);
  }
  return { alg: parsed.alg, kid: parsed.kid, payload: parsed.payload };
}

/** What to sign: the profile's protected header fields and the payload bytes (a frame). */
export interface Sign1Input {
  readonly alg: SignatureAlg;
  readonly kid: Uint8Array;
  readonly payload: Uint8Array;
}

/**
 * Assembles a profile COSE_Sign1, obtaining the signature from `sign` (given the Sig_structure, it
 * returns the 64-byte Ed25519 signature or raw ES256 r‖s — from @noble, node:crypto or a secure
 * element). Throws COSE_HEADER for a kid that is not 16 bytes, COSE_TOO_LARGE if the message would
 * exceed 768 bytes (before signing).
 */
export function buildSign1(input: Sign1Input, sign: (toBeSigned: Uint8Array) => Uint8Array): Uint8Array {
  if (input.kid.length !== COSE_KID_BYTES) throw new ProtocolError('COSE_HEADER', `cose: kid must be ${COSE_KID_BYTES} bytes, got ${input.kid.length}`);
  const protectedBytes = encodeCbor(new Map<number, CborValue>([[HEADER_ALG, COSE_ALG[input.alg]], [HEADER_KID, input.kid]]));
  // tag + array head + protected bstr + empty map + payload bstr + 64-byte signature bstr (2-byte head).
  const size = 2 + byteStringHead(protectedBytes.length).length + protectedBytes.length + 1 + byteStringHead(input.payload.length).length + input.payload.length + 2 + SIGNATURE_BYTES;
  if (size > COSE_MAX_BYTES) throw new ProtocolError('COSE_TOO_LARGE', `cose: message would be ${size} bytes, over the ${COSE_MAX_BYTES}-byte cap`);
  const signature = sign(sigStructure(protectedBytes, EMPTY, input.payload));
  invariant(signature.length === SIGNATURE_BYTES, 'signer returns a 64-byte signature');
  const out = encodeCbor(new CborTag(COSE_SIGN1_TAG, [protectedBytes, new Map(), input.payload, signature]));
  invariant(out.length === size, 'COSE_Sign1 size prediction');
  return out;
}
