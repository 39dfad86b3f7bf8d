/**
 * C2SP signed notes (c2sp.org/signed-note; Go's golang.org/x/mod/sumdb/note is the reference
 * implementation and its vectors are ours): a UTF-8 text ending in "\n", a blank line, then one or
 * more signature lines "— <key name> <base64(key ID(4) ‖ signature)>\n" (U+2014 em dash, space).
 * Checkpoints (checkpoint.ts) are notes; gateways sign them with Ed25519 (type 0x01) and
 * witnesses add cosignature/v1 lines (type 0x04). Notes arrive from the network, so parsing is
 * strict and bounded: at most 64 KiB and 100 signature lines, no ASCII control characters but
 * "\n", strict padded base64. Errors: NOTE_MALFORMED (syntax), NOTE_SIGNATURE (a known key's
 * signature fails), NOTE_UNVERIFIED (no known key signed), NOTE_KEY (bad signer/verifier set).
 */
import { concatBytes, fromBase64, fromUtf8, toBase64, utf8 } from './bytes.js';
import { ProtocolError } from './errors.js';
import { badNoteCharIndex, cosignatureTimestamp, isValidKeyName, type NoteKeyKind, type NoteSigner, type NoteVerifier } from './note-keys.js';

/** Largest signed note accepted or produced, in UTF-8 bytes (signed-note: verifiers SHOULD cap size). */
export const MAX_NOTE_SIZE = 64 * 1024;
/** Most signature lines accepted or produced (Go's sumdb/note cap; the spec requires ≥ 16). */
export const MAX_NOTE_SIGNATURES = 100;

/** One signature line as written. */
export interface NoteSignatureLine {
  readonly name: string;
  /** Key ID, unsigned 32-bit. */
  readonly keyHash: number;
  /** The line's base64 field exactly as written (key ID ‖ signature). */
  readonly base64: string;
  /** The signature bytes after the 4-byte key ID. */
  readonly signature: Uint8Array;
}

/** A note split into text and signature lines, nothing verified. */
export interface ParsedNote {
  /** The signed text, including its final "\n", excluding the blank separator line. */
  readonly text: string;
  readonly sigs: readonly NoteSignatureLine[];
}

/** A signature line after openNote. Unknown keys are kept with verified = false and kind 'unknown'. */
export interface NoteSignature extends NoteSignatureLine {
  readonly verified: boolean;
  readonly kind: NoteKeyKind | 'unknown';
  /** POSIX seconds of a verified cosignature. */
  readonly timestamp?: number;
}

export interface OpenedNote {
  readonly text: string;
  readonly sigs: readonly NoteSignature[];
}

const SIG_PREFIX = '\u2014 ';

const malformed = (why: string): ProtocolError => new ProtocolError('NOTE_MALFORMED', `note: ${why}`);

/** Checks characters and size of note text; returns its UTF-8 bytes. */
function noteBytes(s: string, what: string): Uint8Array {
  if (s.length > MAX_NOTE_SIZE) throw malformed(`${what}: larger than ${MAX_NOTE_SIZE} bytes`);
  const bad = badNoteCharIndex(s, true);
  if (bad >= 0) throw malformed(`${what}: control character or lone surrogate U+${s.charCodeAt(bad).toString(16).padStart(4, '0')} at offset ${bad}`);
  const b = utf8(s);
  if (b.length > MAX_NOTE_SIZE) throw malformed(`${what}: larger than ${MAX_NOTE_SIZE} bytes`);
  return b;
}

function toText(note: string | Uint8Array): string {
  if (typeof note === 'string') return note;
  if (!(note instanceof Uint8Array)) throw malformed('expected a string or bytes');
  if (note.length > MAX_NOTE_SIZE) throw malformed(`larger than ${MAX_NOTE_SIZE} bytes`);
  return fromUtf8(note, 'NOTE_MALFORMED', 'note');
}

/**
 * Splits a signed note into its text and signature lines without verifying anything.
 * Throws NOTE_MALFORMED for anything that is not a well-formed signed note.
 */
export function parseNote(note: string | Uint8Array): ParsedNote {
  const s = toText(note);
  noteBytes(s, 'note');
  // The text ends at the last blank line (signed-note §Format); the text keeps its final "\n".
  const split = s.lastIndexOf('\n\n');
  if (split < 0) throw malformed('no blank line before the signatures');
  const text = s.slice(0, split + 1);
  const block = s.slice(split + 2);
  if (block === '' || !block.endsWith('\n')) throw malformed('expected signature lines ending in a newline after the blank line');
  const lines = block.slice(0, -1).split('\n');
  if (lines.length > MAX_NOTE_SIGNATURES) throw malformed(`${lines.length} signature lines, at most ${MAX_NOTE_SIGNATURES} allowed`);
  const sigs = lines.map((line, i): NoteSignatureLine => {
    if (!line.startsWith(SIG_PREFIX)) throw malformed(`signature line ${i + 1}: expected "— <name> <base64>"`);
    const rest = line.slice(SIG_PREFIX.length);
    const sp = rest.indexOf(' ');
    const name = sp < 0 ? rest : rest.slice(0, sp);
    const base64 = sp < 0 ? '' : rest.slice(sp + 1);
    if (!isValidKeyName(name)) throw malformed(`signature line ${i + 1}: invalid key name`);
    if (base64 === '') throw malformed(`signature line ${i + 1}: missing signature`);
    const raw = fromBase64(base64, 'NOTE_MALFORMED', `signature line ${i + 1}`);
    if (raw.length < 5) throw malformed(`signature line ${i + 1}: expected a 4-byte key ID and a signature`);
    const keyHash = (((raw[0] ?? 0) << 24) | ((raw[1] ?? 0) << 16) | ((raw[2] ?? 0) << 8) | (raw[3] ?? 0)) >>> 0;
    return { name, keyHash, base64, signature: raw.subarray(4) };
  });
  return { text, sigs };
}

const idOf = (name: string, keyHash: number): string => `${name}\n${keyHash}`;

/**
 * Parses a signed note and checks its signatures against the known `verifiers`, following
 * signed-note §Signatures and Go's note.Open: a line whose (name, key ID) matches no verifier is
 * kept unverified (repeats of an identical such line dropped); the first line of a known key is
 * verified, later lines of the same key are dropped.
 *
 * Throws NOTE_MALFORMED for bad syntax, NOTE_SIGNATURE if a known key's signature fails (the whole
 * note is rejected), NOTE_UNVERIFIED if no known key signed, NOTE_KEY if two verifiers share a
 * name and key ID that the note uses.
 */
export function openNote(note: string | Uint8Array, verifiers: readonly NoteVerifier[]): OpenedNote {
  const parsed = parseNote(note);
  const byId = new Map<string, NoteVerifier[]>();
  for (const v of verifiers) {
    const id = idOf(v.name, v.keyHash);
    const list = byId.get(id);
    if (list) list.push(v);
    else byId.set(id, [v]);
  }
  const msg = utf8(parsed.text);
  const sigs: NoteSignature[] = [];
  const seenKnown = new Set<string>();
  const seenUnknown = new Set<string>();
  let verified = 0;
  for (const line of parsed.sigs) {
    const id = idOf(line.name, line.keyHash);
    const list = byId.get(id);
    if (list === undefined) {
      const whole = `${line.name} ${line.base64}`;
      if (seenUnknown.has(whole)) continue;
      seenUnknown.add(whole);
      sigs.push({ ...line, verified: false, kind: 'unknown' });
      continue;
    }
    const [v, ...others] = list;
    if (v === undefined || others.length > 0) {
      throw new ProtocolError('NOTE_KEY', `note: ambiguous key ${line.name}+${line.keyHash.toString(16).padStart(8, '0')}: several verifiers share it`);
    }
    if (seenKnown.has(id)) continue;
    seenKnown.add(id);
    let ok: boolean;
    try {
      ok = v.verify(msg, line.signature);
    } catch (e) {
      throw new ProtocolError('NOTE_SIGNATURE', `note: verifier for ${line.name} failed`, { cause: e });
    }
    if (!ok) {
      throw new ProtocolError('NOTE_SIGNATURE', `note: invalid signature for key ${line.name}+${line.keyHash.toString(16).padStart(8, '0')}`);
    }
    verified++;
    const timestamp = v.kind === 'cosignature' ? cosignatureTimestamp(line.signature) : undefined;
    sigs.push(timestamp === undefined ? { ...line, verified: true, kind: v.kind } : { ...line, verified: true, kind: v.kind, timestamp });
  }
  if (verified === 0) throw new ProtocolError('NOTE_UNVERIFIED', 'note: no signature from a known key');
  return { text: parsed.text, sigs };
}

/** Signature lines for `signers` over `msg`, skipping (name, key ID) pairs in `skip`. */
function signLines(msg: Uint8Array, signers: readonly NoteSigner[], skip: Set<string>): string[] {
  const lines: string[] = [];
  for (const s of signers) {
    if (!isValidKeyName(s.name)) throw new ProtocolError('NOTE_KEY', 'note: signer has an invalid key name');
    if (!Number.isInteger(s.keyHash) || s.keyHash < 0 || s.keyHash > 0xffffffff) {
      throw new ProtocolError('NOTE_KEY', `note: signer ${s.name}: key ID is not an unsigned 32-bit integer`);
    }
    const id = idOf(s.name, s.keyHash);
    if (skip.has(id)) continue;
    skip.add(id);
    const sig = s.sign(msg);
    if (!(sig instanceof Uint8Array) || sig.length === 0) throw new ProtocolError('NOTE_KEY', `note: signer ${s.name} returned no signature`);
    const head = Uint8Array.of(s.keyHash >>> 24, (s.keyHash >>> 16) & 0xff, (s.keyHash >>> 8) & 0xff, s.keyHash & 0xff);
    lines.push(`${SIG_PREFIX}${s.name} ${toBase64(concatBytes(head, sig))}\n`);
  }
  return lines;
}

function assemble(text: string, lines: readonly string[]): string {
  if (lines.length > MAX_NOTE_SIGNATURES) throw malformed(`${lines.length} signature lines, at most ${MAX_NOTE_SIGNATURES} allowed`);
  const out = `${text}\n${lines.join('')}`;
  if (utf8(out).length > MAX_NOTE_SIZE) throw malformed(`signed note would exceed ${MAX_NOTE_SIZE} bytes`);
  return out;
}

/**
 * Signs `text` (which must end in "\n") with each signer, in order, and returns the signed note.
 * A signer repeating an earlier signer's (name, key ID) is skipped. Throws NOTE_MALFORMED for text
 * that is not valid note text or a result over the limits, NOTE_KEY for no signers or a bad signer.
 */
export function signNote(text: string, signers: readonly NoteSigner[]): string {
  if (typeof text !== 'string' || !text.endsWith('\n')) throw malformed('text: expected text ending in a newline');
  const msg = noteBytes(text, 'text');
  if (signers.length === 0) throw new ProtocolError('NOTE_KEY', 'note: at least one signer is needed');
  return assemble(text, signLines(msg, signers, new Set()));
}

/**
 * Adds signature lines (e.g. a witness cosignature) to an already signed note, without verifying
 * the existing ones. Existing lines stay as they are, in order; new lines follow. A signer whose
 * (name, key ID) already has a line is skipped, so adding is idempotent. Throws NOTE_MALFORMED for
 * a malformed note or a result over the limits, NOTE_KEY for a bad signer.
 */
export function addSignatures(signedNote: string | Uint8Array, signers: readonly NoteSigner[]): string {
  const parsed = parseNote(signedNote);
  const have = new Set(parsed.sigs.map((s) => idOf(s.name, s.keyHash)));
  const existing = parsed.sigs.map((s) => `${SIG_PREFIX}${s.name} ${s.base64}\n`);
  const added = signLines(utf8(parsed.text), signers, have);
  return assemble(parsed.text, [...existing, ...added]);
}
