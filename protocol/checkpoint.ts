/**
 * C2SP tlog-checkpoint (c2sp.org/tlog-checkpoint): the signed tree head of a gateway's frame log.
 * The body is "<origin>\n<decimal tree size>\n<base64 root hash>\n" plus optional non-empty
 * extension lines, signed as a note (note.ts) by the gateway's Ed25519 key and cosigned by
 * witnesses (cosignature/v1). packchain gateways use the origin "packchain.gateway/<gateway-name>"
 * and name their signing key after the origin. Parsing is strict so a body has exactly one
 * accepted encoding: no leading zeros in the size, canonical padded base64 of exactly 32 bytes.
 * Errors: CHECKPOINT_MALFORMED, CHECKPOINT_ORIGIN, CHECKPOINT_WITNESSES, plus the NOTE_* and
 * MERKLE_* codes of the layers below.
 */
import { fromBase64, toBase64 } from './bytes.js';
import { ProtocolError } from './errors.js';
import { HASH_SIZE } from './merkle.js';
import { verifyConsistency } from './merkle-verify.js';
import { badNoteCharIndex, type NoteSigner, type NoteVerifier } from './note-keys.js';
import { MAX_NOTE_SIZE, openNote, parseNote, signNote, type OpenedNote } from './note.js';

/** A checkpoint body. `size` ≤ 2^53 − 1; `rootHash` is the RFC 9162 root, 32 bytes. */
export interface Checkpoint {
  readonly origin: string;
  readonly size: number;
  readonly rootHash: Uint8Array;
  /** Extension lines without their "\n" (NOT RECOMMENDED by the spec; packchain writes none). */
  readonly extensions: readonly string[];
}

/** What formatCheckpoint takes: a Checkpoint whose extensions may be omitted. */
export interface CheckpointInput {
  readonly origin: string;
  readonly size: number;
  readonly rootHash: Uint8Array;
  readonly extensions?: readonly string[];
}

/** Origin prefix of packchain gateway logs; the full origin is `packchain.gateway/<gateway-name>`. */
export const GATEWAY_ORIGIN_PREFIX = 'packchain.gateway/';
const GATEWAY_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

const malformed = (why: string): ProtocolError => new ProtocolError('CHECKPOINT_MALFORMED', `checkpoint: ${why}`);


/** The origin of gateway `name` (1–63 of A–Z a–z 0–9 . _ -, starting alphanumeric). Throws CHECKPOINT_ORIGIN. */
export function gatewayOrigin(name: string): string {
  if (typeof name !== 'string' || !GATEWAY_NAME.test(name)) {
    throw new ProtocolError('CHECKPOINT_ORIGIN', 'checkpoint: gateway name: expected 1-63 characters of A-Z a-z 0-9 . _ - starting with a letter or digit');
  }
  return GATEWAY_ORIGIN_PREFIX + name;
}

function checkLine(s: string, what: string): void {
  if (typeof s !== 'string' || s === '') throw malformed(`${what}: expected a non-empty line`);
  // Any Unicode text but control characters (signed-note §Format bans all but "\n", which ends
  // the line) and lone surrogates (no UTF-8 encoding).
  if (badNoteCharIndex(s, false) >= 0) throw malformed(`${what}: contains a control character, newline or invalid Unicode`);
}

/**
 * The checkpoint body (note text). Throws CHECKPOINT_MALFORMED for an empty or multi-line
 * origin or extension, a size that is not a safe non-negative integer, or a root that is not
 * 32 bytes.
 */
export function formatCheckpoint(c: CheckpointInput): string {
  checkLine(c.origin, 'origin');
  if (!Number.isSafeInteger(c.size) || c.size < 0) throw malformed(`size: expected an integer in [0, 2^53 - 1], got ${String(c.size)}`);
  if (!(c.rootHash instanceof Uint8Array) || c.rootHash.length !== HASH_SIZE) throw malformed('root hash: expected 32 bytes');
  const ext = c.extensions ?? [];
  ext.forEach((e, i) => {
    checkLine(e, `extension line ${i + 1}`);
  });
  const body = [c.origin, String(c.size), toBase64(c.rootHash), ...ext].join('\n') + '\n';
  if (body.length > MAX_NOTE_SIZE) throw malformed(`body longer than ${MAX_NOTE_SIZE} characters`);
  return body;
}

/**
 * Parses a checkpoint body (the note text, not the signed note). Throws CHECKPOINT_MALFORMED
 * unless it is at least three lines, each ending in "\n": a non-empty origin, a decimal size
 * without leading zeros and ≤ 2^53 − 1, the canonical padded base64 of a 32-byte root, then
 * non-empty extension lines. formatCheckpoint(parseCheckpoint(b)) === b for every accepted b.
 */
export function parseCheckpoint(body: string): Checkpoint {
  if (typeof body !== 'string') throw malformed('expected text');
  if (body.length > MAX_NOTE_SIZE) throw malformed(`body longer than ${MAX_NOTE_SIZE} characters`);
  if (!body.endsWith('\n')) throw malformed('expected the body to end in a newline');
  const lines = body.slice(0, -1).split('\n');
  if (lines.length < 3) throw malformed(`expected at least 3 lines (origin, size, root hash), got ${lines.length}`);
  const [origin = '', sizeText = '', rootText = '', ...extensions] = lines;
  checkLine(origin, 'origin');
  // Decimal without leading zeros (tlog-checkpoint §Note text item 2); ≤ 16 digits before the
  // numeric check keeps Number() exact.
  if (!/^(0|[1-9][0-9]{0,15})$/.test(sizeText) || !Number.isSafeInteger(Number(sizeText))) {
    throw malformed('size: expected a decimal integer without leading zeros, at most 2^53 - 1');
  }
  if (rootText.length !== 44) throw malformed('root hash: expected 44 characters of base64 (32 bytes)');
  const rootHash = fromBase64(rootText, 'CHECKPOINT_MALFORMED', 'checkpoint: root hash');
  if (rootHash.length !== HASH_SIZE) throw malformed('root hash: expected 32 bytes');
  extensions.forEach((e, i) => {
    checkLine(e, `extension line ${i + 1}`);
  });
  return { origin, size: Number(sizeText), rootHash, extensions };
}

/** Signs a checkpoint as a note with the log's signer(s). Throws as formatCheckpoint and signNote. */
export function signCheckpoint(c: CheckpointInput, signers: readonly NoteSigner[]): string {
  return signNote(formatCheckpoint(c), signers);
}

export interface OpenCheckpointOptions {
  /** The origin the caller expects (for packchain gateways, gatewayOrigin(name)). */
  readonly origin: string;
  /** The log's key(s); a checkpoint must carry a valid signature from at least one. */
  readonly verifiers: readonly NoteVerifier[];
  /** Witness cosigners whose valid cosignatures are reported (unknown witnesses are ignored). */
  readonly witnesses?: readonly NoteVerifier[];
  /** Minimum number of distinct witnesses that must have cosigned (default 0). */
  readonly requiredWitnesses?: number;
}

export interface WitnessCosignature {
  readonly name: string;
  readonly keyHash: number;
  /** POSIX seconds the witness put in its cosignature (undefined for a non-cosignature key). */
  readonly timestamp: number | undefined;
}

export interface OpenedCheckpoint extends Checkpoint {
  /** The opened note, with every signature line and whether it verified. */
  readonly note: OpenedNote;
  /** Witnesses from `options.witnesses` whose cosignature verified, in note order. */
  readonly witnesses: readonly WitnessCosignature[];
}

const idOf = (v: { name: string; keyHash: number }): string => `${v.name}\n${v.keyHash}`;

/**
 * Opens a signed checkpoint: parses the note and body, checks the origin, then verifies the
 * signatures. Throws NOTE_MALFORMED / CHECKPOINT_MALFORMED for bad syntax, CHECKPOINT_ORIGIN if
 * the origin is not `options.origin`, NOTE_SIGNATURE if any known key's signature fails,
 * NOTE_UNVERIFIED unless one of `options.verifiers` signed it, NOTE_KEY if a log key and a witness
 * key share name and key ID, and CHECKPOINT_WITNESSES if fewer than `requiredWitnesses` cosigned.
 */
export function openCheckpoint(signedNote: string | Uint8Array, options: OpenCheckpointOptions): OpenedCheckpoint {
  // Syntax and origin first: cheap, and a checkpoint of another log is reported as such rather
  // than as "unverified". Nothing is returned until the signatures have been checked.
  const body = parseCheckpoint(parseNote(signedNote).text);
  if (body.origin !== options.origin) {
    throw new ProtocolError('CHECKPOINT_ORIGIN', `checkpoint: origin ${JSON.stringify(body.origin)} is not the expected ${JSON.stringify(options.origin)}`);
  }
  const logIds = new Set(options.verifiers.map(idOf));
  const witnesses = options.witnesses ?? [];
  const witnessIds = new Set(witnesses.map(idOf));
  for (const id of witnessIds) {
    if (logIds.has(id)) throw new ProtocolError('NOTE_KEY', 'checkpoint: a witness key has the same name and key ID as a log key');
  }
  const note = openNote(signedNote, [...options.verifiers, ...witnesses]);
  if (!note.sigs.some((s) => s.verified && logIds.has(idOf(s)))) {
    throw new ProtocolError('NOTE_UNVERIFIED', `checkpoint: no valid signature from the log key of ${body.origin}`);
  }
  const cosigned = note.sigs
    .filter((s) => s.verified && witnessIds.has(idOf(s)))
    .map((s): WitnessCosignature => ({ name: s.name, keyHash: s.keyHash, timestamp: s.timestamp }));
  const required = options.requiredWitnesses ?? 0;
  if (cosigned.length < required) {
    throw new ProtocolError('CHECKPOINT_WITNESSES', `checkpoint: ${cosigned.length} witness cosignatures, ${required} required`);
  }
  return { ...body, note, witnesses: cosigned };
}

/**
 * Checks that checkpoint `newer` extends checkpoint `older` of the same log (what a witness and the
 * ledger check before accepting a new checkpoint, c2sp.org/tlog-witness): same origin, newer size ≥
 * older size, and an RFC 9162 consistency proof between their roots. Bodies given as text are
 * parsed. It does not check signatures: open both with openCheckpoint first. Throws
 * CHECKPOINT_MALFORMED, CHECKPOINT_ORIGIN if the origins differ, MERKLE_INDEX if the newer size is
 * smaller, MERKLE_PROOF if the proof does not link the roots.
 */
export function checkConsistentCheckpoints(older: Checkpoint | string, newer: Checkpoint | string, proof: readonly Uint8Array[]): void {
  const a = typeof older === 'string' ? parseCheckpoint(older) : older;
  const b = typeof newer === 'string' ? parseCheckpoint(newer) : newer;
  if (a.origin !== b.origin) {
    throw new ProtocolError('CHECKPOINT_ORIGIN', `checkpoint: origins differ (${JSON.stringify(a.origin)} vs ${JSON.stringify(b.origin)})`);
  }
  verifyConsistency(a.size, b.size, proof, a.rootHash, b.rootHash);
}
