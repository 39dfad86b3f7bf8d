/**
 * The ingest pipeline's reject ledger: every frame or message the gateway refuses is counted here
 * by reason code, and the last N rejects are kept as samples for `gateway status` and metrics
 * (docs/gateway.md "Reject codes"). Memory is bounded whatever devices send: one counter per code
 * (codes are a closed set plus protocol's and the transports' codes), a fixed-size ring of samples,
 * and every sample's detail and raw preview capped. Rejects are data, not exceptions: a reject is
 * recorded and the process carries on (STYLE.md habit 3, docs/protocol.md §1.3 "implementations
 * SHOULD count rejections by code").
 */

/**
 * Reject codes the ingest pipeline adds to protocol's (COSE_*, FRAME_*, CBOR_*, CERT_*, CHAIN_*,
 * CRL_*, MSG_*) and the transports' (LINE_*, BLE_*, RATE_LIMITED, ...), which pass through unchanged.
 */
export type IngestRejectCode =
  | 'NO_SESSION' // a frame on a channel whose device has not (yet) sent a hello the gateway verified
  | 'DEVICE_UNPROVISIONED' // a hello with no key or an empty certificate chain (a pack fresh from the line)
  | 'HELLO_KEY_MISMATCH' // the hello's alg/public key is not the key in its own device certificate
  | 'HELLO_SERIAL_MISMATCH' // the hello's pack serial is not the certificate's
  | 'HELLO_FAILED' // the device answered the gateway's hello request with an error status or a malformed result
  | 'FRAME_SERIAL_MISMATCH' // a validly signed frame whose serial field is not its certificate's pack serial
  | 'COUNTER_REPLAY' // a frame counter already stored with different bytes (counter rollback, cloned key)
  | 'INGEST_BUSY' // verification queue or the channel's in-flight cap full: not acked, the device resends later
  | 'STORE_UNAVAILABLE' // the log refused the append (quota, I/O): not acked, the device keeps the frame
  | 'WORKER_FAILED' // a verification worker died with the frame in its batch: not acked, resent later
  | 'DEVICE_NOTICE' // an `E` notice from a device (e.g. BUFFER_FULL: its resend ring dropped unacked frames)
  | 'UNEXPECTED_MESSAGE'; // a message type a device must not send to a gateway (A, Q), or a stray response

/** Codes that mean someone is forging or replaying, not noise: operators alert on these. */
export const SECURITY_CODES: ReadonlySet<string> = new Set([
  'COSE_SIGNATURE',
  'COSE_KID_MISMATCH',
  'COSE_ALG_MISMATCH',
  'FRAME_SERIAL_MISMATCH',
  'COUNTER_REPLAY',
  'HELLO_KEY_MISMATCH',
  'HELLO_SERIAL_MISMATCH',
  'CHAIN_UNTRUSTED',
  'CHAIN_SIGNATURE',
  'CHAIN_BROKEN',
  'CERT_REVOKED',
]);

export interface RejectSample {
  /** Gateway clock, ms since the epoch. */
  readonly at: number;
  readonly code: string;
  /** The channel id (`serial:/dev/ttyUSB0`, `ble:C0:DE:…`). */
  readonly channel: string;
  /** Pack serial when known (from a verified certificate, never from unverified input alone). */
  readonly serial?: string;
  /** Frame counter when the frame decoded far enough to have one. */
  readonly counter?: number;
  /** Human-readable reason, at most MAX_DETAIL characters. */
  readonly detail: string;
  /** Hex of the first MAX_PREVIEW_BYTES bytes of the offending message body, or a transport's preview. */
  readonly preview?: string;
}

export interface RejectInput {
  readonly code: string;
  readonly channel: string;
  readonly serial?: string | undefined;
  readonly counter?: number | undefined;
  readonly detail: string;
  readonly raw?: Uint8Array | string | undefined;
}

export interface QuarantineOptions {
  /** Samples kept (default 100). */
  readonly samples?: number;
  readonly now?: () => number;
}

export interface QuarantineStatus {
  readonly total: number;
  /** Rejects by code since start. */
  readonly byCode: Readonly<Record<string, number>>;
  /** Rejects whose code is a security event (SECURITY_CODES). */
  readonly security: number;
  /** The most recent rejects, oldest first. */
  readonly recent: readonly RejectSample[];
}

export const MAX_DETAIL = 200;
export const MAX_PREVIEW_BYTES = 48;
/** Distinct codes kept; beyond it (a transport inventing codes) they are counted under OTHER. */
const MAX_CODES = 256;
const CODE_SHAPE = /^[A-Z][A-Z0-9_]{0,47}$/;

/** Caps text from devices so it can reach logs and terminals: control characters become '?'. */
export function clip(text: string, max = MAX_DETAIL): string {
  // eslint-disable-next-line no-control-regex -- the point is to strip control characters
  const clean = text.replace(/[\u0000-\u001f\u007f-\u009f]/g, '?');
  return clean.length <= max ? clean : `${clean.slice(0, max - 1)}…`;
}

function preview(raw: Uint8Array | string): string {
  if (typeof raw === 'string') return clip(raw, MAX_PREVIEW_BYTES * 2);
  const head = Buffer.from(raw.buffer, raw.byteOffset, Math.min(raw.length, MAX_PREVIEW_BYTES)).toString('hex');
  return raw.length > MAX_PREVIEW_BYTES ? `${head}…` : head;
}

export class Quarantine {
  private readonly counts = new Map<string, number>();
  private readonly ring: (RejectSample | undefined)[];
  private next = 0;
  private total = 0;
  private security = 0;
  private readonly now: () => number;

  /** Throws RangeError for a sample count outside 1..10,000 (a configuration bug). */
  constructor(opts: QuarantineOptions = {}) {
    const n = opts.samples ?? 100;
    if (!Number.isSafeInteger(n) || n < 1 || n > 10_000) throw new RangeError(`gateway: quarantine samples must be 1..10000, got ${n}`);
    this.ring = new Array<RejectSample | undefined>(n).fill(undefined);
    this.now = opts.now ?? Date.now;
  }

  /** Counts a reject and keeps it as the newest sample. Never throws for any input. */
  record(r: RejectInput): void {
    const code = CODE_SHAPE.test(r.code) ? r.code : 'OTHER';
    const key = this.counts.has(code) || this.counts.size < MAX_CODES ? code : 'OTHER';
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
    this.total++;
    if (SECURITY_CODES.has(code)) this.security++;
    const sample: RejectSample = {
      at: this.now(),
      code,
      channel: clip(r.channel, 160),
      ...(r.serial === undefined ? {} : { serial: clip(r.serial, 64) }),
      ...(r.counter === undefined ? {} : { counter: r.counter }),
      detail: clip(r.detail),
      ...(r.raw === undefined ? {} : { preview: preview(r.raw) }),
    };
    this.ring[this.next] = sample;
    this.next = (this.next + 1) % this.ring.length;
  }

  /** Rejects so far with `code`. */
  count(code: string): number {
    return this.counts.get(code) ?? 0;
  }

  status(): QuarantineStatus {
    const recent: RejectSample[] = [];
    for (let i = 0; i < this.ring.length; i++) {
      const s = this.ring[(this.next + i) % this.ring.length];
      if (s !== undefined) recent.push(s);
    }
    return { total: this.total, byCode: Object.fromEntries(this.counts), security: this.security, recent };
  }
}
