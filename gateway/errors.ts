/**
 * The gateway module's one error class. Every failure the gateway reports to a caller is a
 * GatewayError whose `code` says what went wrong; callers branch on `code`, never on message text,
 * and messages start with "gateway: " and say what was expected. Codes are grouped by the part of
 * the gateway that raises them (one union per area, so each area's owner adds codes with a one-line
 * edit: append a new group rather than editing another area's). Bad input — from a device, a file
 * on disk or the network — is not a bug: it yields a GatewayError that the caller counts and
 * survives. A broken internal invariant is a bug: `invariant()` throws a plain Error.
 */

/** The durable Merkle log store (gateway/store/, docs/gateway.md "Log storage"). */
export type StoreErrorCode =
  | 'STORE_CORRUPT' // durable data is damaged beyond a torn tail (an acknowledged entry, a checkpoint that does not match the tree)
  | 'STORE_QUOTA' // the append would exceed the disk quota and no synced segment can be pruned
  | 'STORE_CLOSED' // an operation after close(), or a write on a store opened read-only
  | 'STORE_LOCKED' // another live process holds the data directory's lock
  | 'STORE_IO' // the file system failed (ENOSPC, EIO, permissions); the failed commit was not acknowledged
  | 'STORE_RANGE' // an entry index or tree size beyond the log, or in a pruned segment
  | 'STORE_INPUT' // an append whose leaf, pack serial or counter is out of range
  | 'STORE_CONFIG'; // bad options, or a directory holding another log (origin, segment size, format)

/** Device transports: serial ports and BLE (gateway/transport/, docs/gateway.md "Transports"). */
export type TransportErrorCode =
  | 'TRANSPORT_DOWN' // send() on a closed channel, or the connection closed before the message was written
  | 'TRANSPORT_WRITE' // a port or GATT write failed or did not complete in time (the channel is then closed)
  | 'TRANSPORT_CONFIG' // bad transport options (ports, rates, backoff, line or chunk size, BLE adapter)
  | 'TRANSPORT_STATE'; // start() on a transport that was already started or stopped

/** The verification pipeline (gateway/ingest/, docs/gateway.md "Ingest"). Rejected frames are data, not these. */
export type IngestErrorCode =
  | 'INGEST_CONFIG' // bad pipeline, verify-pool or dedupe options
  | 'INGEST_WORKER'; // a verification worker thread cannot start (entry file missing, loader failure)

/** Configuration, the gateway key and `gateway init` (gateway/config.ts, keys.ts, init.ts; docs/gateway.md "Configuration"). */
export type ConfigErrorCode =
  | 'CONFIG' // the config file is unreadable, not YAML/JSON, has an unknown key or a value out of range (the message names the key)
  | 'KEY_FILE' // the gateway key file is missing, unreadable, malformed, or holds the key of another gateway name
  | 'KEY_PERMISSIONS' // the gateway key file is not a regular file or is readable or writable by group or others
  | 'INIT_EXISTS'; // `gateway init` would overwrite an existing config or key file

/** Operations: the /healthz, /metrics, /status endpoint and `gateway status` (gateway/ops/). */
export type OpsErrorCode =
  | 'OPS_LISTEN' // the HTTP endpoint cannot listen (address in use, not permitted, not local)
  | 'OPS_STATUS'; // `gateway status` cannot reach a running gateway or cannot read its answer

/** The daemon and the log commands: trust bundle, certificate store, history, verify, prove (gateway/daemon.ts, gateway/audit/). */
export type DaemonErrorCode =
  | 'TRUST_LOAD' // the trust bundle file is unreadable or does not build a trust store
  | 'CERT_STORE' // the certificate store cannot be written, or a stored chain is damaged
  | 'NOT_FOUND' // `gateway prove`: no entry of that pack and counter in the log
  | 'NOT_COVERED' // `gateway prove`: the entry is not yet covered by a signed checkpoint, or its chain is unknown
  | 'PROOF_INVALID' // `gateway verify-proof`: the bundle failed a check (the protocol code is in the message)
  | 'USAGE'; // a command-line argument out of range

/** The sync client to the upstream ledger (gateway/sync/, docs/gateway.md "Sync to the ledger"). Each is counted and retried with backoff; none stops ingest. */
export type SyncErrorCode =
  | 'SYNC_CONFIG' // bad sync options, or a second sync loop on a store that already has one
  | 'SYNC_UNREACHABLE' // the ledger could not be reached (connection refused or reset, DNS, TLS)
  | 'SYNC_TIMEOUT' // a request took longer than upstream.timeoutMs
  | 'SYNC_REFUSED' // the ledger answered with an error status (its code and message are in the message)
  | 'SYNC_ANSWER' // the ledger's answer is not what the protocol allows (not JSON, a bad field, another origin, an upload that did not advance)
  | 'SYNC_DIVERGED' // the ledger's view of this log is not this log: a root that differs at its accepted size, or more entries than the log holds
  | 'SYNC_PRUNED' // the ledger asks for entries this gateway already pruned (the ledger lost data it had acknowledged)
  | 'SYNC_WITNESS'; // the cosigned checkpoint does not carry a valid cosignature of the configured ledger witness key

export type GatewayErrorCode = StoreErrorCode | TransportErrorCode | IngestErrorCode | ConfigErrorCode | OpsErrorCode | DaemonErrorCode | SyncErrorCode;

export class GatewayError extends Error {
  override readonly name = 'GatewayError';

  /** `message` must start with "gateway: " and say what was expected. */
  constructor(
    readonly code: GatewayErrorCode,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** True when `e` is a GatewayError, optionally with one of `codes`. */
export function isGatewayError(e: unknown, ...codes: GatewayErrorCode[]): e is GatewayError {
  return e instanceof GatewayError && (codes.length === 0 || codes.includes(e.code));
}

/** Asserts an internal invariant. A failure is a bug in the gateway, never bad input. */
export function invariant(condition: unknown, message: string): asserts condition {
  if (!condition) throw new Error(`gateway: invariant violated: ${message}`);
}
