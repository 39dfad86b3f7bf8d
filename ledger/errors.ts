/**
 * The ledger module's one error class. Every failure the ledger reports to a caller is a LedgerError
 * whose `code` says what went wrong; callers branch on `code`, never on message text, and messages
 * start with "ledger: " and say what was expected. The HTTP API sends the code and message as
 * `{"error": {"code", "message"}}`. Codes are grouped by the part of the ledger that
 * raises them (one union per area, so each area's owner adds codes with a one-line edit: append a
 * new group rather than editing another area's). Bad input — from a gateway, a service engineer's
 * request or the database — is not a bug: it yields a LedgerError that the caller counts and
 * survives. A broken internal invariant is a bug: `invariant()` throws a plain Error.
 */
import type { SyncState } from '../protocol/index.js';

/** The battery-passport export (ledger/passport.ts, docs/passport.md). */
export type PassportErrorCode =
  | 'PASSPORT_NO_FRAMES' // no verified frame of the pack to compute a passport from
  | 'PASSPORT_INPUT'; // a frame of another pack, or frames not in increasing counter order (a caller bug surfaced as an error)

/** The ledger core: storage, gateway enrollment and authentication, uploads, queries, tokens (ledger/ledger.ts, docs/ledger.md "Storage", "Verification and witnessing", "Fork detection"). */
export type CoreErrorCode =
  | 'STORAGE' // the database failed or is unreachable (the message says which statement)
  | 'STORAGE_LOCKED' // another live process holds the embedded store's lock file
  | 'STORAGE_CONFIG' // bad storage options (directory, URL, pool size) or a schema newer than this ledger
  | 'LEDGER_CLOSED' // a call after close()
  | 'GATEWAY_KEY' // enrollment: not a C2SP Ed25519 verifier key named packchain.gateway/<name>
  | 'GATEWAY_EXISTS' // enrollment: another key is enrolled for that origin
  | 'GATEWAY_UNKNOWN' // no enrolled gateway of that origin (request authentication, admin commands)
  | 'GATEWAY_DISABLED' // the gateway is enrolled but disabled by an operator
  | 'AUTH_FAILED' // the request authorization is missing, malformed, stale or does not verify
  | 'AUTH_REPLAY' // the request nonce was already used inside the skew window
  | 'UPLOAD_MALFORMED' // the upload body is not a valid sync upload (protocol SYNC_MALFORMED / CBOR_*)
  | 'ORIGIN_MISMATCH' // the upload (or its checkpoint) names another gateway's log
  | 'UPLOAD_GAP' // the upload starts beyond the leaves the ledger holds (state attached)
  | 'ENTRY_CONFLICT' // a leaf at an index the ledger holds has another hash (evidence kept)
  | 'CHECKPOINT_SIGNATURE' // the checkpoint is malformed or not validly signed by the gateway's key
  | 'CHECKPOINT_BEYOND_ENTRIES' // the checkpoint's size is beyond the leaves held after this upload
  | 'CHECKPOINT_STALE' // proofFrom is not the size the ledger last accepted (state attached)
  | 'CHECKPOINT_CONFLICT' // the gateway signed a tree that does not extend what it signed before (evidence kept)
  | 'CONSISTENCY_PROOF_INVALID' // the consistency proof does not verify although the leaves give the signed root (evidence kept)
  | 'ENTRIES_MISMATCH' // the proof verifies but the leaves held do not give the checkpoint's root
  | 'TOKEN_NAME' // a token name that is not 1-64 of A-Z a-z 0-9 . _ -
  | 'TOKEN_EXISTS' // an active token of that name exists
  | 'TOKEN_UNKNOWN' // no active token of that name
  | 'BAD_QUERY'; // a query argument out of range (limit, time range, counter)

/** The HTTP service, keys and CLI (ledger/http/, ledger/keys.ts; docs/ledger.md "API", "Operations"). */
export type ServiceErrorCode =
  | 'UNAUTHORIZED' // a service-engineer route without a valid Bearer token
  | 'PACK_NOT_FOUND' // no verified frame of that pack serial
  | 'FRAME_NOT_FOUND' // no verified frame of that pack and counter (or not yet covered by a checkpoint)
  | 'NOT_FOUND' // no such route
  | 'METHOD_NOT_ALLOWED' // the route exists for other methods
  | 'BODY_TOO_LARGE' // an upload body beyond protocol MAX_UPLOAD_BYTES
  | 'UNSUPPORTED_MEDIA_TYPE' // an upload that is not application/cbor
  | 'RATE_LIMITED' // too many requests (reserved for a reverse proxy or a later limit)
  | 'INTERNAL' // an unexpected failure (a bug; logged with its stack, never sent)
  | 'LISTEN' // the service cannot listen on the address
  | 'KEY_FILE' // the witness key file is missing, unreadable, malformed or not a cosignature key
  | 'KEY_PERMISSIONS' // the witness key file is readable or writable by group or others, or not a regular file
  | 'INIT_EXISTS' // `ledger init` would overwrite a witness key
  | 'TRUST_LOAD' // the trust bundle file is unreadable or does not build a trust store
  | 'USAGE'; // a command-line argument out of range

export type LedgerErrorCode = PassportErrorCode | CoreErrorCode | ServiceErrorCode;

/** Extra data some errors carry: the gateway's log state (UPLOAD_GAP, CHECKPOINT_STALE, conflicts). */
export interface LedgerErrorOptions extends ErrorOptions {
  readonly state?: SyncState;
}

export class LedgerError extends Error {
  override readonly name = 'LedgerError';

  /** `message` must start with "ledger: " and say what was expected. */
  /** The gateway's log state as the ledger holds it, for errors a sync client recovers from by re-reading it. */
  readonly state: SyncState | undefined;

  constructor(
    readonly code: LedgerErrorCode,
    message: string,
    options?: LedgerErrorOptions,
  ) {
    super(message, options);
    this.state = options?.state;
  }
}

/** True when `e` is a LedgerError, optionally with one of `codes`. */
export function isLedgerError(e: unknown, ...codes: LedgerErrorCode[]): e is LedgerError {
  return e instanceof LedgerError && (codes.length === 0 || codes.includes(e.code));
}

/** Asserts an internal invariant. A failure is a bug in the ledger, never bad input. */
export function invariant(condition: unknown, message: string): asserts condition {
  if (!condition) throw new Error(`ledger: invariant violated: ${message}`);
}
