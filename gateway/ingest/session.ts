/**
 * Device sessions of the ingest pipeline (docs/gateway.md "Sessions"; docs/protocol.md §4.4, §3.6):
 * one per open transport channel. When a channel opens the gateway asks `Q hello`; the device answers
 * with its HelloInfo (`R ok {hello}`, or an unsolicited `H` after a reboot) and then resends every
 * unacknowledged frame. The hello is unauthenticated, so the session verifies the presented chain
 * against the trust store (roots, line CAs, CRLs — passed in and replaceable when the trust bundle is
 * reloaded) and checks that the hello's key and serial are the certificate's. Only then are the
 * channel's frames verified with the certified key; frames before that are refused with NO_SESSION,
 * frames of a refused device with the chain's code (CERT_REVOKED, CHAIN_UNTRUSTED, ...), frames of a
 * pack fresh from the line (no key, no chain) with DEVICE_UNPROVISIONED. A refusal never closes the
 * channel: the device stays visible in status and is taken in once a trust reload accepts it.
 *
 * Verified chains are re-checked against the clock (expiry, CRL nextUpdate) at most every
 * `revalidateMs`, and all at once on `setTrust`; TrustStore caches chains, so this is a lookup.
 */
import {
  bytesEqual,
  isProtocolError,
  parseResult,
  requestMessage,
  type HelloInfo,
  type Message,
  type TrustStore,
  type VerifiedDevice,
} from '../../protocol/index.js';
import type { DeviceChannel } from '../transport/types.js';
import type { RejectInput } from './quarantine.js';

export type SessionState =
  | { readonly kind: 'awaiting-hello' }
  | { readonly kind: 'verified'; readonly device: VerifiedDevice }
  | { readonly kind: 'unprovisioned' }
  | { readonly kind: 'refused'; readonly code: string; readonly detail: string; readonly serial?: string };

export interface SessionInfo {
  readonly channel: string;
  readonly source: string;
  readonly state: SessionState['kind'];
  readonly serial: string | undefined;
  readonly model: string | undefined;
  readonly firmware: string | undefined;
  /** Device's next counter and resend-buffer fill, from its last hello. */
  readonly nextCounter: number | undefined;
  readonly unacked: number | undefined;
  readonly code: string | undefined;
  readonly openedAt: number;
}

export interface SessionTableOptions {
  readonly trust: TrustStore;
  readonly now: () => number;
  /** Reports every refusal (the pipeline's quarantine). */
  readonly reject: (r: RejectInput) => void;
  /** First retry of an unanswered `Q hello` (default 5 s), doubling to `helloRetryMaxMs` (60 s). */
  readonly helloRetryMs?: number;
  readonly helloRetryMaxMs?: number;
  /** Re-check a verified chain's validity at most this often (default 60 s). */
  readonly revalidateMs?: number;
  /**
   * Called with a chain each time a session is verified, before any of its frames is let through:
   * the daemon's certificate store keeps it (leaves name certificates only by hash). A throw
   * refuses the session with CERT_STORE (its frames would be unverifiable later).
   */
  readonly chainVerified?: (chain: readonly Uint8Array[], device: VerifiedDevice) => void;
}

/** The answer to "may this channel's frame be verified, and with which device?" */
export type Gate = { readonly ok: true; readonly device: VerifiedDevice } | { readonly ok: false; readonly code: string; readonly detail: string; readonly serial?: string };

class Session {
  state: SessionState = { kind: 'awaiting-hello' };
  hello: HelloInfo | undefined;
  helloRequestId = -1;
  checkedAt = 0;
  retryMs: number;
  timer: NodeJS.Timeout | undefined;
  constructor(
    readonly channel: DeviceChannel,
    retryMs: number,
  ) {
    this.retryMs = retryMs;
  }
}

export class SessionTable {
  private readonly sessions = new Map<string, Session>();
  private trust: TrustStore;
  private nextRequestId = 1;
  private readonly retryMs: number;
  private readonly retryMaxMs: number;
  private readonly revalidateMs: number;
  private closed = false;

  constructor(private readonly opts: SessionTableOptions) {
    this.trust = opts.trust;
    this.retryMs = opts.helloRetryMs ?? 5_000;
    this.retryMaxMs = opts.helloRetryMaxMs ?? 60_000;
    this.revalidateMs = opts.revalidateMs ?? 60_000;
  }

  /** A channel opened: start a session and ask for the hello. */
  open(ch: DeviceChannel): void {
    this.drop(ch.id);
    const s = new Session(ch, this.retryMs);
    this.sessions.set(ch.id, s);
    this.askHello(s);
  }

  /** A channel closed: its session ends (a reconnect starts a new one with a new hello). */
  closeChannel(ch: DeviceChannel): void {
    const s = this.sessions.get(ch.id);
    if (s?.channel === ch) this.drop(ch.id);
  }

  private drop(id: string): void {
    const s = this.sessions.get(id);
    if (s === undefined) return;
    clearTimeout(s.timer);
    this.sessions.delete(id);
  }

  private askHello(s: Session): void {
    if (this.closed || this.sessions.get(s.channel.id) !== s) return;
    s.helloRequestId = this.nextRequestId;
    this.nextRequestId = this.nextRequestId >= 0xffff_ffff ? 1 : this.nextRequestId + 1;
    s.channel.send(requestMessage(s.helloRequestId, { op: 'hello' })).catch(() => undefined);
    // Unanswered (a device still booting, a lost line): ask again with backoff. Verified and refused
    // sessions are not asked again — a hello makes the device resend its whole ring.
    clearTimeout(s.timer);
    s.timer = setTimeout(() => {
      if (s.state.kind === 'awaiting-hello' || s.state.kind === 'unprovisioned') {
        s.retryMs = Math.min(s.retryMs * 2, this.retryMaxMs);
        this.askHello(s);
      }
    }, s.retryMs);
    s.timer.unref();
  }

  /**
   * Handles a non-frame message of channel `ch`: hellos (`H`, or `R` to our `Q hello`) establish the
   * session; anything else a device must not send is reported. Never throws for any message.
   */
  message(ch: DeviceChannel, msg: Message): void {
    const s = this.sessions.get(ch.id);
    if (s?.channel !== ch) return; // a message after close, or from a superseded connection
    switch (msg.type) {
      case 'hello': {
        const { type: _type, ...hello } = msg;
        this.accept(s, hello);
        return;
      }
      case 'response': {
        if (msg.id !== s.helloRequestId) {
          this.opts.reject({ code: 'UNEXPECTED_MESSAGE', channel: ch.id, detail: `gateway: response to request ${msg.id}, which this gateway did not send` });
          return;
        }
        try {
          const r = parseResult('hello', msg);
          if (r.op === 'hello') this.accept(s, r.hello);
        } catch (e) {
          const detail = typeof msg.result === 'string' ? `status ${msg.status}: ${msg.result}` : isProtocolError(e) ? e.message : 'malformed';
          this.opts.reject({ code: 'HELLO_FAILED', channel: ch.id, detail: `gateway: hello request failed: ${detail}` });
        }
        return;
      }
      case 'error':
        // Informational (docs/protocol.md §4.6), e.g. BUFFER_FULL: the device dropped unacked frames.
        this.opts.reject({ code: 'DEVICE_NOTICE', channel: ch.id, serial: this.serialOf(s), detail: `gateway: device notice ${msg.code}: ${msg.message}` });
        return;
      default:
        this.opts.reject({ code: 'UNEXPECTED_MESSAGE', channel: ch.id, detail: `gateway: a device sent a ${msg.type} message, which only hosts send` });
    }
  }

  private serialOf(s: Session): string | undefined {
    return s.state.kind === 'verified' ? s.state.device.packSerial : undefined;
  }

  /** Judges a hello: unprovisioned, refused (with the chain's code) or verified. */
  private accept(s: Session, hello: HelloInfo): void {
    s.hello = hello;
    clearTimeout(s.timer);
    s.retryMs = this.retryMs;
    this.judge(s);
    if (s.state.kind === 'unprovisioned') {
      // Asked again slowly: a pack provisioned while attached starts streaming without a replug.
      s.timer = setTimeout(() => {
        this.askHello(s);
      }, this.retryMaxMs);
      s.timer.unref();
    }
  }

  private judge(s: Session): void {
    const hello = s.hello;
    if (hello === undefined) return;
    const ch = s.channel.id;
    if (hello.alg === null || hello.publicKey === null || hello.chain.length === 0) {
      if (s.state.kind === 'unprovisioned') return;
      s.state = { kind: 'unprovisioned' };
      this.opts.reject({
        code: 'DEVICE_UNPROVISIONED',
        channel: ch,
        detail: `gateway: device (model ${JSON.stringify(hello.model)}, firmware ${hello.firmware}) has ${hello.alg === null ? 'no key' : 'no certificate chain'}: provision it first`,
      });
      return;
    }
    let device: VerifiedDevice;
    try {
      device = this.trust.verifyChain(hello.chain, new Date(this.opts.now()));
    } catch (e) {
      if (!isProtocolError(e)) throw e;
      this.refuse(s, e.code, `gateway: certificate chain refused: ${e.message}`);
      return;
    }
    const alg = device.alg === 'Ed25519' ? -8 : -7;
    if (hello.alg !== alg || !bytesEqual(hello.publicKey, device.publicKey.raw)) {
      this.refuse(s, 'HELLO_KEY_MISMATCH', `gateway: the hello's key is not the key of its certificate for ${device.packSerial}`, device.packSerial);
      return;
    }
    if (hello.serial !== device.packSerial) {
      this.refuse(s, 'HELLO_SERIAL_MISMATCH', `gateway: the hello says serial ${JSON.stringify(hello.serial)}, its certificate ${JSON.stringify(device.packSerial)}`, device.packSerial);
      return;
    }
    // Every time, not only on the first verdict: a reboot's hello may carry a new chain (cheap: the store dedups by hash).
    if (this.opts.chainVerified !== undefined) {
      try {
        this.opts.chainVerified(hello.chain, device);
      } catch (e) {
        this.refuse(s, 'CERT_STORE', `gateway: the certificate chain of ${device.packSerial} could not be stored: ${(e as Error).message}`, device.packSerial);
        return;
      }
    }
    s.state = { kind: 'verified', device };
    s.checkedAt = this.opts.now();
  }

  private refuse(s: Session, code: string, detail: string, serial?: string): void {
    const again = s.state.kind === 'refused' && s.state.code === code;
    s.state = serial === undefined ? { kind: 'refused', code, detail } : { kind: 'refused', code, detail, serial };
    // Counted when the verdict changes, not each time a reload or revalidation repeats it.
    if (!again) this.opts.reject({ code, channel: s.channel.id, serial, detail });
  }

  /**
   * Whether a frame from `ch` may be verified now, and with which device. Re-checks a verified
   * chain's dates and revocation every `revalidateMs`. Never throws.
   */
  gate(ch: DeviceChannel): Gate {
    const s = this.sessions.get(ch.id);
    if (s?.channel !== ch) return { ok: false, code: 'NO_SESSION', detail: 'gateway: frame on a channel without a session' };
    if (s.state.kind === 'verified' && this.opts.now() - s.checkedAt >= this.revalidateMs) this.judge(s);
    const st = s.state;
    switch (st.kind) {
      case 'verified':
        return { ok: true, device: st.device };
      case 'awaiting-hello':
        return { ok: false, code: 'NO_SESSION', detail: 'gateway: frame before a verified hello (the device resends it after the hello)' };
      case 'unprovisioned':
        return { ok: false, code: 'DEVICE_UNPROVISIONED', detail: 'gateway: frame from a device whose hello had no key or chain' };
      case 'refused':
        return st.serial === undefined ? { ok: false, code: st.code, detail: st.detail } : { ok: false, code: st.code, detail: st.detail, serial: st.serial };
    }
  }

  /**
   * Replaces the trust store (a reloaded bundle: new CRLs, new line CAs) and judges every session's
   * last hello again, so a newly revoked device stops at once and a newly trusted one starts.
   */
  setTrust(trust: TrustStore): void {
    this.trust = trust;
    for (const s of this.sessions.values()) this.judge(s);
  }

  list(): SessionInfo[] {
    return [...this.sessions.values()].map((s) => ({
      channel: s.channel.id,
      source: s.channel.source,
      state: s.state.kind,
      serial: s.state.kind === 'verified' ? s.state.device.packSerial : s.state.kind === 'refused' ? s.state.serial : undefined,
      model: s.hello?.model,
      firmware: s.hello?.firmware,
      nextCounter: s.hello?.nextCounter,
      unacked: s.hello?.unacked,
      code: s.state.kind === 'refused' ? s.state.code : undefined,
      openedAt: s.channel.openedAt,
    }));
  }

  /** Ends every session and stops hello retries. */
  close(): void {
    this.closed = true;
    for (const id of [...this.sessions.keys()]) this.drop(id);
  }
}
