/**
 * The gateway ↔ upstream-ledger sync protocol (docs/protocol.md §10): what a gateway uploads (a run
 * of its log's leaves, the certificates they name, and optionally a signed checkpoint with an
 * RFC 9162 consistency proof from the size the ledger last accepted), what the ledger answers (its
 * view of that gateway's log and, for an accepted checkpoint, the checkpoint cosigned by the ledger
 * as witness), and how every request is authenticated by the gateway's own Ed25519 log key.
 *
 * Everything here crosses the network: decoders cap every count and length before allocating and
 * throw SYNC_MALFORMED naming the field; a bad authorization throws SYNC_AUTH. Pure: the caller
 * supplies the clock and the nonce bytes.
 *
 * Request signatures are domain-separated from checkpoint signatures by their first line
 * (`packchain.sync-request/v1`), which is never a gateway log origin (those start with
 * `packchain.gateway/`), so a signed request can never pass for a signed checkpoint or back.
 */
import { fromBase64, fromBase64Url, toBase64, toBase64Url, toHex, utf8 } from './bytes.js';
import { decodeCbor, encodeCbor, type CborValue } from './cbor.js';
import { sha256 } from './crypto.js';
import { ProtocolError } from './errors.js';
import { MAX_CERT_BYTES } from './identity.js';
import { MAX_LEAF_BYTES } from './leaf.js';
import { MAX_PROOF_LENGTH } from './merkle-verify.js';
import { MAX_NOTE_SIZE } from './note.js';
import type { NoteSigner, NoteVerifier } from './note-keys.js';

export const SYNC_VERSION = 1;
/** Most leaves in one upload (a batch); the client splits a longer backlog. */
export const MAX_UPLOAD_ENTRIES = 8192;
/** Most distinct certificates (device certificates and intermediates) in one upload. */
export const MAX_UPLOAD_CERTS = 1024;
/** Largest upload body accepted, checked before decoding. */
export const MAX_UPLOAD_BYTES = 12 * 1024 * 1024;
/** Most per-entry rejects an upload result lists (the counts cover all of them). */
export const MAX_RESULT_REJECTS = 100;
/** How far a request's timestamp may be from the ledger's clock, either way. */
export const SYNC_AUTH_SKEW_MS = 5 * 60 * 1000;
/** Nonce length in bytes (base64url without padding on the wire: 22 characters). */
export const SYNC_NONCE_BYTES = 16;
/** The HTTP authorization scheme of a gateway request. */
export const SYNC_AUTH_SCHEME = 'Packchain-Gateway';
const REQUEST_DOMAIN = 'packchain.sync-request/v1';
const HASH_SIZE = 32;

function malformed(why: string): never {
  throw new ProtocolError('SYNC_MALFORMED', `sync: ${why}`);
}

/** One upload: leaves [from, from + entries.length) of the gateway log `origin`. */
export interface UploadRequest {
  /** The gateway's log origin (gatewayOrigin(name)); must be the authenticated gateway's. */
  readonly origin: string;
  /** Log index of entries[0]. */
  readonly from: number;
  /** Leaf data (protocol/leaf.ts), byte for byte as stored and hashed by the gateway. */
  readonly entries: readonly Uint8Array[];
  /** DER certificates the entries name (device certificates) and their intermediates. */
  readonly certs: readonly Uint8Array[];
  /** A signed checkpoint of the gateway log whose size is ≤ from + entries.length. */
  readonly checkpoint?: string;
  /** RFC 9162 consistency proof from a tree of `proofFrom` leaves to the checkpoint's tree. */
  readonly proof?: readonly Uint8Array[];
  /** The size the proof starts from: the size of the checkpoint the ledger last accepted. */
  readonly proofFrom?: number;
}

const bytesList = (v: CborValue | undefined, what: string, max: number, maxItem: number, exact?: number): Uint8Array[] => {
  if (!Array.isArray(v)) malformed(`${what} must be an array`);
  if (v.length > max) malformed(`${what}: ${v.length} items exceeds the cap of ${max}`);
  return v.map((x, i) => {
    if (!(x instanceof Uint8Array)) malformed(`${what}[${i}] must be bytes`);
    if (exact !== undefined ? x.length !== exact : x.length === 0 || x.length > maxItem) {
      malformed(`${what}[${i}] must be ${exact !== undefined ? `${exact}` : `1..${maxItem}`} bytes`);
    }
    return x;
  });
};

const index = (v: CborValue | undefined, what: string): number => {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) malformed(`${what} must be a non-negative integer`);
  return v;
};

/** Checks the parts the two sides must agree on before anything is sent or believed. */
function checkUpload(u: UploadRequest): void {
  if (typeof u.origin !== 'string' || u.origin.length === 0 || u.origin.length > 256) malformed('origin must be text of 1..256 characters');
  index(u.from, 'from');
  if (u.entries.length > MAX_UPLOAD_ENTRIES) malformed(`entries: ${u.entries.length} exceeds the cap of ${MAX_UPLOAD_ENTRIES}`);
  if (u.certs.length > MAX_UPLOAD_CERTS) malformed(`certs: ${u.certs.length} exceeds the cap of ${MAX_UPLOAD_CERTS}`);
  if (!Number.isSafeInteger(u.from + u.entries.length)) malformed('from + entries exceeds the index range');
  const hasCp = u.checkpoint !== undefined;
  if (hasCp !== (u.proof !== undefined) || hasCp !== (u.proofFrom !== undefined)) malformed('checkpoint, proof and proofFrom come together or not at all');
  if (u.checkpoint !== undefined && (u.checkpoint.length === 0 || u.checkpoint.length > MAX_NOTE_SIZE || !u.checkpoint.endsWith('\n'))) {
    malformed(`checkpoint must be a newline-terminated note of at most ${MAX_NOTE_SIZE} bytes`);
  }
  if (u.proof !== undefined && u.proof.length > MAX_PROOF_LENGTH) malformed(`proof: more than ${MAX_PROOF_LENGTH} hashes`);
  if (u.proofFrom !== undefined) index(u.proofFrom, 'proofFrom');
}

/** Encodes an upload as deterministic CBOR (docs/protocol.md §10.2). Throws SYNC_MALFORMED. */
export function encodeUploadRequest(u: UploadRequest): Uint8Array {
  checkUpload(u);
  const m = new Map<number, CborValue>([
    [0, SYNC_VERSION],
    [1, u.origin],
    [2, u.from],
    [3, [...u.entries]],
    [4, [...u.certs]],
  ]);
  if (u.checkpoint !== undefined && u.proof !== undefined && u.proofFrom !== undefined) {
    m.set(5, u.checkpoint);
    m.set(6, [...u.proof]);
    m.set(7, u.proofFrom);
  }
  return encodeCbor(m);
}

/**
 * Decodes an upload body. Hostile input: the size cap is checked before decoding and every count
 * and length before use. Leaves are not decoded here (the ledger judges each on its own and keeps
 * going). Throws SYNC_MALFORMED naming the field, or a CBOR_* code for bytes that are not CBOR.
 */
export function decodeUploadRequest(body: Uint8Array): UploadRequest {
  if (body.length > MAX_UPLOAD_BYTES) malformed(`upload: ${body.length} bytes exceeds the ${MAX_UPLOAD_BYTES}-byte cap`);
  const m = decodeCbor(body, { maxDepth: 2 });
  if (!(m instanceof Map)) malformed('upload: expected a CBOR map');
  for (const k of m.keys()) {
    if (typeof k !== 'number' || k < 0 || k > 7) malformed(`upload: unknown key ${JSON.stringify(k)}`);
  }
  if (m.get(0) !== SYNC_VERSION) malformed(`upload: version (0) must be ${SYNC_VERSION}`);
  const origin = m.get(1);
  if (typeof origin !== 'string') malformed('upload: origin (1) must be text');
  const checkpoint = m.get(5);
  if (checkpoint !== undefined && typeof checkpoint !== 'string') malformed('upload: checkpoint (5) must be text');
  const u: UploadRequest = {
    origin,
    from: index(m.get(2), 'upload: from (2)'),
    entries: bytesList(m.get(3), 'upload: entries (3)', MAX_UPLOAD_ENTRIES, MAX_LEAF_BYTES),
    certs: bytesList(m.get(4), 'upload: certs (4)', MAX_UPLOAD_CERTS, MAX_CERT_BYTES),
    ...(checkpoint !== undefined && { checkpoint }),
    ...(m.has(6) && { proof: bytesList(m.get(6), 'upload: proof (6)', MAX_PROOF_LENGTH, HASH_SIZE, HASH_SIZE) }),
    ...(m.has(7) && { proofFrom: index(m.get(7), 'upload: proofFrom (7)') }),
  };
  checkUpload(u);
  return u;
}

/** The ledger's view of one gateway's log (JSON on the wire, docs/protocol.md §10.3). */
export interface SyncState {
  readonly origin: string;
  /** Size of the checkpoint the ledger last accepted (0 before the first). */
  readonly size: number;
  /** Its root hash (the empty tree's for size 0). */
  readonly rootHash: Uint8Array;
  /** That checkpoint as the ledger holds it: the gateway's note with the ledger's cosignature; null before the first. */
  readonly checkpoint: string | null;
  /** Leaves [0, staged) are held by the ledger (≥ size): the next upload starts at `staged`. */
  readonly staged: number;
}

/** One leaf the ledger refused to count as a verified frame (the leaf stays in the log). */
export interface EntryReject {
  readonly index: number;
  readonly code: string;
  readonly message: string;
}

/** The answer to an upload (JSON, docs/protocol.md §10.3). */
export interface UploadResult {
  readonly state: SyncState;
  /** Leaves newly stored by this upload. */
  readonly stored: number;
  /** Leaves the ledger already held with the same hash (a repeated upload stores nothing). */
  readonly duplicates: number;
  /** Stored leaves whose frame did not verify (counted, kept out of pack history). */
  readonly rejected: number;
  /** The first MAX_RESULT_REJECTS of them. */
  readonly rejects: readonly EntryReject[];
  /** The uploaded checkpoint cosigned by the ledger when this upload's checkpoint was accepted, else null. */
  readonly cosigned: string | null;
}

/** JSON form of a SyncState (root hash in base64). */
export function syncStateJson(s: SyncState): Record<string, unknown> {
  return { origin: s.origin, size: s.size, rootHash: toBase64(s.rootHash), checkpoint: s.checkpoint, staged: s.staged };
}

export function uploadResultJson(r: UploadResult): Record<string, unknown> {
  return { state: syncStateJson(r.state), stored: r.stored, duplicates: r.duplicates, rejected: r.rejected, rejects: r.rejects.slice(0, MAX_RESULT_REJECTS), cosigned: r.cosigned };
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const count = (v: unknown, what: string): number => {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) malformed(`${what} must be a non-negative integer`);
  return v;
};

/** Parses a SyncState from JSON (the client's side: the ledger's answer is checked too). Throws SYNC_MALFORMED. */
export function parseSyncState(v: unknown): SyncState {
  if (!isRecord(v)) malformed('state must be an object');
  const { origin, rootHash, checkpoint } = v;
  if (typeof origin !== 'string') malformed('state.origin must be text');
  if (typeof rootHash !== 'string') malformed('state.rootHash must be base64 text');
  const root = fromBase64(rootHash, 'SYNC_MALFORMED', 'sync: state.rootHash');
  if (root.length !== HASH_SIZE) malformed(`state.rootHash must be ${HASH_SIZE} bytes`);
  if (checkpoint !== null && (typeof checkpoint !== 'string' || checkpoint.length > MAX_NOTE_SIZE)) malformed('state.checkpoint must be a note or null');
  const size = count(v['size'], 'state.size');
  const staged = count(v['staged'], 'state.staged');
  if (staged < size) malformed('state.staged must be ≥ state.size');
  return { origin, size, rootHash: root, checkpoint, staged };
}

/** Parses an UploadResult from JSON. Throws SYNC_MALFORMED. */
export function parseUploadResult(v: unknown): UploadResult {
  if (!isRecord(v)) malformed('result must be an object');
  const rejects = v['rejects'];
  if (!Array.isArray(rejects) || rejects.length > MAX_RESULT_REJECTS) malformed(`result.rejects must be an array of at most ${MAX_RESULT_REJECTS}`);
  const cosigned = v['cosigned'];
  if (cosigned !== null && (typeof cosigned !== 'string' || cosigned.length > MAX_NOTE_SIZE)) malformed('result.cosigned must be a note or null');
  return {
    state: parseSyncState(v['state']),
    stored: count(v['stored'], 'result.stored'),
    duplicates: count(v['duplicates'], 'result.duplicates'),
    rejected: count(v['rejected'], 'result.rejected'),
    rejects: rejects.map((r: unknown, i): EntryReject => {
      if (!isRecord(r) || typeof r['code'] !== 'string' || typeof r['message'] !== 'string') malformed(`result.rejects[${i}] must be {index, code, message}`);
      return { index: count(r['index'], `result.rejects[${i}].index`), code: r['code'], message: r['message'] };
    }),
    cosigned,
  };
}

/** What a request signature covers. */
export interface SyncRequestParts {
  readonly method: string;
  /** Path and query exactly as sent, e.g. `/v1/gateway/upload`. */
  readonly path: string;
  /** Request time, ms since the Unix epoch. */
  readonly timestamp: number;
  /** SYNC_NONCE_BYTES random bytes, never reused by a gateway. */
  readonly nonce: Uint8Array;
  /** The request body (empty for GET). */
  readonly body: Uint8Array;
}

/**
 * The signed message (docs/protocol.md §10.1): the domain line, then method, path, timestamp,
 * base64url nonce, hex SHA-256 of the body and the key name, each on its own line.
 */
export function syncRequestMessage(p: SyncRequestParts, keyName: string): Uint8Array {
  if (!/^[A-Z]{1,16}$/.test(p.method)) throw new ProtocolError('SYNC_AUTH', 'sync: method must be 1..16 upper-case letters');
  if (!p.path.startsWith('/') || p.path.length > 2048 || /[\s]/.test(p.path)) throw new ProtocolError('SYNC_AUTH', 'sync: path must start with / and hold no whitespace (≤ 2048 characters)');
  if (!Number.isSafeInteger(p.timestamp) || p.timestamp < 0) throw new ProtocolError('SYNC_AUTH', 'sync: timestamp must be non-negative integer ms');
  if (p.nonce.length !== SYNC_NONCE_BYTES) throw new ProtocolError('SYNC_AUTH', `sync: nonce must be ${SYNC_NONCE_BYTES} bytes`);
  return utf8(`${REQUEST_DOMAIN}\n${p.method}\n${p.path}\n${p.timestamp}\n${toBase64Url(p.nonce)}\n${toHex(sha256(p.body))}\n${keyName}\n`);
}

/** Signs a request with the gateway's log key; returns the Authorization header value. */
export function signSyncRequest(p: SyncRequestParts, signer: NoteSigner): string {
  const sig = signer.sign(syncRequestMessage(p, signer.name));
  const keyHash = signer.keyHash.toString(16).padStart(8, '0');
  return `${SYNC_AUTH_SCHEME} key=${signer.name}+${keyHash} ts=${p.timestamp} nonce=${toBase64Url(p.nonce)} sig=${toBase64(sig)}`;
}

/** A parsed Authorization header of a gateway request. */
export interface SyncAuthorization {
  readonly keyName: string;
  readonly keyHash: number;
  readonly timestamp: number;
  readonly nonce: Uint8Array;
  readonly signature: Uint8Array;
}

/** Parses the Authorization header. Throws SYNC_AUTH naming what is wrong. */
export function parseSyncAuthorization(header: string | undefined): SyncAuthorization {
  const fail = (why: string): never => {
    throw new ProtocolError('SYNC_AUTH', `sync: authorization: ${why}`);
  };
  if (header === undefined || header.length === 0) return fail(`missing (expected "${SYNC_AUTH_SCHEME} key=… ts=… nonce=… sig=…")`);
  if (header.length > 1024) return fail('longer than 1024 characters');
  const [scheme, ...params] = header.trim().split(/ +/);
  if (scheme !== SYNC_AUTH_SCHEME) return fail(`scheme must be ${SYNC_AUTH_SCHEME}`);
  const kv = new Map<string, string>();
  for (const p of params) {
    const eq = p.indexOf('=');
    if (eq <= 0) return fail(`parameter ${JSON.stringify(p.slice(0, 40))} is not name=value`);
    const name = p.slice(0, eq);
    if (kv.has(name)) return fail(`parameter ${name} repeated`);
    kv.set(name, p.slice(eq + 1));
  }
  for (const need of ['key', 'ts', 'nonce', 'sig']) if (!kv.has(need)) fail(`parameter ${need} missing`);
  if (kv.size !== 4) fail('unknown parameter (expected key, ts, nonce, sig)');
  const key = kv.get('key') ?? '';
  const plus = key.lastIndexOf('+');
  if (plus <= 0 || !/^[0-9a-f]{8}$/.test(key.slice(plus + 1))) fail('key must be <name>+<8 hex digits of the key ID>');
  const ts = kv.get('ts') ?? '';
  if (!/^[0-9]{1,16}$/.test(ts)) fail('ts must be integer ms since the epoch');
  const nonce = fromBase64Url(kv.get('nonce') ?? '', 'SYNC_AUTH', 'sync: authorization: nonce');
  const signature = fromBase64(kv.get('sig') ?? '', 'SYNC_AUTH', 'sync: authorization: sig');
  if (nonce.length !== SYNC_NONCE_BYTES) fail(`nonce must be ${SYNC_NONCE_BYTES} bytes`);
  if (signature.length !== 64) fail('sig must be a 64-byte Ed25519 signature');
  return { keyName: key.slice(0, plus), keyHash: Number.parseInt(key.slice(plus + 1), 16), timestamp: Number(ts), nonce, signature };
}

/**
 * Verifies a parsed authorization against the gateway's verifier key and the request as received:
 * the key must be `verifier` (name and key ID), the timestamp within SYNC_AUTH_SKEW_MS of `now`,
 * and the signature valid over method, path, timestamp, nonce and body. Remembering nonces (the
 * replay check inside the skew window) is the caller's job. Throws SYNC_AUTH.
 */
export function verifySyncRequest(auth: SyncAuthorization, verifier: NoteVerifier, request: Omit<SyncRequestParts, 'timestamp' | 'nonce'>, now: number): void {
  if (auth.keyName !== verifier.name || auth.keyHash !== verifier.keyHash) throw new ProtocolError('SYNC_AUTH', `sync: authorization: key ${auth.keyName} is not the verifier's`);
  if (Math.abs(now - auth.timestamp) > SYNC_AUTH_SKEW_MS) {
    throw new ProtocolError('SYNC_AUTH', `sync: authorization: timestamp ${auth.timestamp} is more than ${SYNC_AUTH_SKEW_MS / 1000} s from the ledger's clock ${now}`);
  }
  const msg = syncRequestMessage({ ...request, timestamp: auth.timestamp, nonce: auth.nonce }, auth.keyName);
  if (!verifier.verify(msg, auth.signature)) throw new ProtocolError('SYNC_AUTH', 'sync: authorization: signature does not verify');
}
