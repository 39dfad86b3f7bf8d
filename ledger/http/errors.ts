/**
 * LedgerError code → HTTP status, in one table (docs/ledger.md "Errors"), and the JSON error body
 * `{"error": {"code", "message"}}` of api.md — plus, for the 409s a sync client recovers from
 * (UPLOAD_GAP, CHECKPOINT_STALE and the conflicts), the gateway's log `state` as the ledger holds
 * it (protocol syncStateJson), so the gateway can resume without another round trip. The table is
 * a Record over every code: a code added to ledger/errors.ts without a status fails to compile.
 * Fastify's own errors (body too large, wrong content type, bad JSON) map to ledger codes here too,
 * so every error a client sees has the same shape. Unknown errors are 500 INTERNAL with a fixed
 * message: the stack goes to the log, never to the client.
 */
import { syncStateJson } from '../../protocol/index.js';
import { isLedgerError, type LedgerErrorCode } from '../errors.js';

export const HTTP_STATUS: Readonly<Record<LedgerErrorCode, number>> = Object.freeze({
  // service-engineer requests
  UNAUTHORIZED: 401,
  BAD_QUERY: 400,
  PACK_NOT_FOUND: 404,
  FRAME_NOT_FOUND: 404,
  PASSPORT_NO_FRAMES: 404,
  PASSPORT_INPUT: 500, // the ledger's own frames do not make a passport: a bug
  NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  RATE_LIMITED: 429,
  // gateway requests
  AUTH_FAILED: 401,
  AUTH_REPLAY: 401,
  GATEWAY_UNKNOWN: 401,
  GATEWAY_DISABLED: 403,
  ORIGIN_MISMATCH: 403,
  BODY_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  UPLOAD_MALFORMED: 400,
  CHECKPOINT_SIGNATURE: 400,
  CONSISTENCY_PROOF_INVALID: 400,
  ENTRIES_MISMATCH: 400,
  UPLOAD_GAP: 409,
  ENTRY_CONFLICT: 409,
  CHECKPOINT_BEYOND_ENTRIES: 409,
  CHECKPOINT_STALE: 409,
  CHECKPOINT_CONFLICT: 409,
  // operator commands (CLI; over HTTP only if a later admin route exposes them)
  GATEWAY_KEY: 400,
  GATEWAY_EXISTS: 409,
  TOKEN_NAME: 400,
  TOKEN_EXISTS: 409,
  TOKEN_UNKNOWN: 404,
  USAGE: 400,
  // the service itself
  STORAGE: 503,
  STORAGE_LOCKED: 503,
  LEDGER_CLOSED: 503,
  STORAGE_CONFIG: 500,
  INTERNAL: 500,
  LISTEN: 500,
  KEY_FILE: 500,
  KEY_PERMISSIONS: 500,
  INIT_EXISTS: 500,
  TRUST_LOAD: 500,
});

export interface ErrorBody {
  readonly error: { readonly code: string; readonly message: string };
  readonly state?: Record<string, unknown>;
}

/** Fastify error codes of the request layer → ledger codes. */
const FASTIFY: Readonly<Record<string, LedgerErrorCode>> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'BODY_TOO_LARGE',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'BAD_QUERY',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'BAD_QUERY',
  FST_ERR_CTP_INVALID_JSON_BODY: 'BAD_QUERY',
  FST_ERR_BAD_URL: 'BAD_QUERY',
};

/** The status and body for `e`; `internal` is true for an unexpected error (log it with its stack). */
export function errorReply(e: unknown): { status: number; body: ErrorBody; internal: boolean } {
  if (isLedgerError(e)) {
    const state = e.state === undefined ? {} : { state: syncStateJson(e.state) };
    return { status: HTTP_STATUS[e.code], body: { error: { code: e.code, message: e.message }, ...state }, internal: HTTP_STATUS[e.code] === 500 };
  }
  const fcode = (e as { code?: unknown } | undefined)?.code;
  const mapped = typeof fcode === 'string' ? FASTIFY[fcode] : undefined;
  if (mapped !== undefined) {
    const msg = (e as Error).message;
    return { status: HTTP_STATUS[mapped], body: { error: { code: mapped, message: `ledger: ${msg.charAt(0).toLowerCase()}${msg.slice(1)}` } }, internal: false };
  }
  return { status: 500, body: { error: { code: 'INTERNAL', message: 'ledger: internal error (logged on the server)' } }, internal: true };
}
