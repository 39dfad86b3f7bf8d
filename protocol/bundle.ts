/**
 * Offline proof bundles (docs/protocol.md §9): everything a third party needs to check, with no
 * network and no trust in the gateway or ledger operator, that one state-of-health frame was
 * signed by a certified pack and logged by a gateway. The bundle is a C2SP tlog-proof
 * (c2sp.org/tlog-proof@v1) whose `extra` line carries packchain's part — the log leaf data and
 * the device certificate chain — so generic tlog-proof tools can check the inclusion proof and
 * the checkpoint, and packchain verifiers check the rest.
 *
 * extra = base64(CBOR {0: 1, 1: leaf data (bstr), 2: [device certificate DER, intermediates...]}).
 *
 * The file is hostile input: the whole text is capped before parsing, every number and list is
 * bounded, and each step's failure carries its own code (BUNDLE_MALFORMED, NOTE_*, CHECKPOINT_*,
 * MERKLE_*, LEAF_MALFORMED, CERT_*, CHAIN_*, CRL_*, COSE_*, FRAME_*, BUNDLE_MISMATCH).
 */
import { bytesEqual, fromBase64, fromUtf8, toBase64 } from './bytes.js';
import { decodeCbor, encodeCbor, type CborValue } from './cbor.js';
import { parseCheckpoint, openCheckpoint, type WitnessCosignature } from './checkpoint.js';
import { verifySign1 } from './cose.js';
import { ProtocolError } from './errors.js';
import { decodeFrame } from './frame.js';
import type { SohFrame } from './frame-fields.js';
import { MAX_CHAIN_CERTS, type TrustStore, type VerifiedDevice } from './identity.js';
import { decodeLeaf, MAX_LEAF_BYTES, type LogLeaf } from './leaf.js';
import { leafHash, proveRecord, type HashReader } from './merkle.js';
import { MAX_PROOF_LENGTH, verifyInclusion } from './merkle-verify.js';
import { parseNote } from './note.js';
import type { NoteVerifier } from './note-keys.js';

export const PROOF_BUNDLE_HEADER = 'c2sp.org/tlog-proof@v1';
/** Largest bundle accepted, checked before parsing (a real one is ~4 KiB). */
export const MAX_BUNDLE_BYTES = 64 * 1024;
const EXTRA_VERSION = 1;
const MAX_CERT_DER = 4096;

export interface ProofBundle {
  /** Zero-based index of the leaf in the gateway's log. */
  readonly index: number;
  /** Log leaf data (protocol/leaf.ts), whose RFC 9162 leaf hash the proof covers. */
  readonly leaf: Uint8Array;
  /** Device certificate first, then intermediates (DER). */
  readonly chain: readonly Uint8Array[];
  /** RFC 9162 inclusion proof from the leaf's sibling up to the root's child. */
  readonly proof: readonly Uint8Array[];
  /** The signed checkpoint note, verbatim (with any witness cosignatures). */
  readonly checkpoint: string;
}

function malformed(why: string): never {
  throw new ProtocolError('BUNDLE_MALFORMED', `bundle: ${why}`);
}

/** Writes a bundle as tlog-proof text. Throws BUNDLE_MALFORMED for parts outside the caps. */
export function encodeProofBundle(b: ProofBundle): string {
  if (!Number.isSafeInteger(b.index) || b.index < 0) malformed('index must be a non-negative integer');
  if (b.chain.length < 1 || b.chain.length > MAX_CHAIN_CERTS) malformed(`chain must hold 1..${MAX_CHAIN_CERTS} certificates`);
  if (b.proof.length > MAX_PROOF_LENGTH || b.proof.some((h) => h.length !== 32)) malformed('proof must be at most 64 hashes of 32 bytes');
  if (!b.checkpoint.endsWith('\n')) malformed('checkpoint note must end with a newline');
  const extra = encodeCbor(
    new Map<number, CborValue>([
      [0, EXTRA_VERSION],
      [1, b.leaf],
      [2, [...b.chain]],
    ]),
  );
  const text = [PROOF_BUNDLE_HEADER, `extra ${toBase64(extra)}`, `index ${b.index}`, ...b.proof.map(toBase64), '', b.checkpoint].join('\n');
  if (text.length > MAX_BUNDLE_BYTES) malformed(`bundle of ${text.length} bytes exceeds ${MAX_BUNDLE_BYTES}`);
  return text;
}

/**
 * Builds a bundle for leaf `index` of a log, proving it against `checkpoint` (whose size says
 * which tree the proof is for) with hashes read from `reader`. Throws as proveRecord and
 * encodeProofBundle; MERKLE_INDEX if the index is not inside the checkpoint's tree.
 */
export function buildProofBundle(p: { index: number; leaf: Uint8Array; chain: readonly Uint8Array[]; checkpoint: string; reader: HashReader }): string {
  const { size } = parseCheckpoint(parseNote(p.checkpoint).text);
  const proof = proveRecord(size, p.index, p.reader);
  return encodeProofBundle({ index: p.index, leaf: p.leaf, chain: p.chain, proof, checkpoint: p.checkpoint });
}

/** Parses tlog-proof text with packchain extra data. Throws BUNDLE_MALFORMED (and CBOR_* for the extra). */
export function decodeProofBundle(input: string | Uint8Array): ProofBundle {
  if (input.length > MAX_BUNDLE_BYTES) malformed(`${input.length} bytes exceeds the ${MAX_BUNDLE_BYTES}-byte cap`);
  const text = typeof input === 'string' ? input : fromUtf8(input, 'BUNDLE_MALFORMED', 'bundle');
  const blank = text.indexOf('\n\n');
  if (blank < 0) malformed('no blank line before the checkpoint');
  const lines = text.slice(0, blank).split('\n');
  const checkpoint = text.slice(blank + 2);
  if (lines[0] !== PROOF_BUNDLE_HEADER) malformed(`first line must be ${PROOF_BUNDLE_HEADER}`);
  const extraLine = lines[1] ?? '';
  if (!extraLine.startsWith('extra ')) malformed('second line must be "extra <base64>" carrying the leaf and chain');
  const indexLine = lines[2] ?? '';
  if (!/^index (0|[1-9][0-9]{0,15})$/.test(indexLine)) malformed('third line must be "index <decimal, no leading zeros>"');
  const index = Number(indexLine.slice(6));
  if (!Number.isSafeInteger(index)) malformed('index beyond 2^53 - 1');
  const hashLines = lines.slice(3);
  if (hashLines.length > MAX_PROOF_LENGTH) malformed(`more than ${MAX_PROOF_LENGTH} proof hashes`);
  const proof = hashLines.map((l, i) => {
    const h = fromBase64(l, 'BUNDLE_MALFORMED', `bundle: proof hash ${i}`);
    if (h.length !== 32) malformed(`proof hash ${i} is ${h.length} bytes, expected 32`);
    return h;
  });
  const extraBytes = fromBase64(extraLine.slice(6), 'BUNDLE_MALFORMED', 'bundle: extra');
  const extra = decodeCbor(extraBytes, { maxDepth: 2 });
  if (!(extra instanceof Map) || extra.size !== 3 || extra.get(0) !== EXTRA_VERSION) malformed('extra must be the map {0: 1, 1: leaf, 2: chain}');
  const leaf = extra.get(1);
  const chain = extra.get(2);
  if (!(leaf instanceof Uint8Array) || leaf.length === 0 || leaf.length > MAX_LEAF_BYTES) malformed(`extra leaf must be 1..${MAX_LEAF_BYTES} bytes`);
  if (!Array.isArray(chain) || chain.length < 1 || chain.length > MAX_CHAIN_CERTS) malformed(`extra chain must hold 1..${MAX_CHAIN_CERTS} certificates`);
  const certs = chain.map((c, i) => {
    if (!(c instanceof Uint8Array) || c.length === 0 || c.length > MAX_CERT_DER) malformed(`extra chain entry ${i} must be 1..${MAX_CERT_DER} bytes of DER`);
    return c;
  });
  if (checkpoint.length === 0 || !checkpoint.endsWith('\n')) malformed('checkpoint note missing or not newline-terminated');
  return { index, leaf, chain: certs, proof, checkpoint };
}

export interface BundleTrust {
  /** Trusted roots, intermediates and CRLs (what `packchain provision export` writes). */
  readonly trust: TrustStore;
  /** Gateway log keys; a checkpoint must be signed by the key named after its origin. */
  readonly logs: readonly NoteVerifier[];
  /** Witness keys (the upstream ledger); their valid cosignatures are reported. */
  readonly witnesses?: readonly NoteVerifier[];
  /** Minimum number of witness cosignatures required (default 0). */
  readonly requiredWitnesses?: number;
}

export interface VerifiedBundle {
  /** The gateway log's origin, e.g. packchain.gateway/line-3. */
  readonly origin: string;
  readonly treeSize: number;
  readonly rootHash: Uint8Array;
  readonly index: number;
  readonly leaf: LogLeaf;
  readonly frame: SohFrame;
  readonly device: VerifiedDevice;
  readonly witnesses: readonly WitnessCosignature[];
}

/**
 * Verifies a proof bundle end to end: the checkpoint's gateway signature (and witnesses), the
 * inclusion of the leaf in that tree, the device chain to a trusted root with CRLs (validity judged
 * at the gateway's receive time in the leaf, which the checkpoint signature covers), that the leaf
 * names that certificate, the frame's COSE signature under the certified key, and that the frame's
 * pack serial is the certificate's. Throws the code of the first check that fails.
 */
export function verifyProofBundle(input: string | Uint8Array, trust: BundleTrust): VerifiedBundle {
  const b = decodeProofBundle(input);
  const { origin } = parseCheckpoint(parseNote(b.checkpoint).text);
  const logs = trust.logs.filter((v) => v.name === origin);
  if (logs.length === 0) throw new ProtocolError('NOTE_UNVERIFIED', `bundle: no trusted log key for origin ${JSON.stringify(origin)}`);
  const cp = openCheckpoint(b.checkpoint, {
    origin,
    verifiers: logs,
    witnesses: trust.witnesses ?? [],
    requiredWitnesses: trust.requiredWitnesses ?? 0,
  });
  verifyInclusion(b.index, cp.size, leafHash(b.leaf), b.proof, cp.rootHash);
  const leaf = decodeLeaf(b.leaf);
  const device = trust.trust.verifyChain(b.chain, new Date(leaf.receivedAt));
  if (!bytesEqual(device.certSha256, leaf.certSha256)) {
    throw new ProtocolError('BUNDLE_MISMATCH', 'bundle: the leaf names a different device certificate than the chain carries');
  }
  const { payload } = verifySign1(leaf.frame, { publicKey: device.publicKey, kid: device.kid });
  const frame = decodeFrame(payload);
  if (frame.serial !== device.packSerial) {
    throw new ProtocolError('BUNDLE_MISMATCH', `bundle: frame serial ${frame.serial} is not the certificate's ${device.packSerial}`);
  }
  return { origin, treeSize: cp.size, rootHash: cp.rootHash, index: b.index, leaf, frame, device, witnesses: cp.witnesses };
}
