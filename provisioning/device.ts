/**
 * The station's session with one pack (docs/provisioning.md; docs/protocol.md §4): requests with
 * ids and a per-request timeout over a PackLink (link.ts: the serial line of serial-link.ts or BLE of
 * ble-link.ts — the same messages either way), and the pack's answers mapped to ProvisioningError
 * codes the technician can act on. The station is not a gateway: frames the pack streams unprompted
 * are counted and ignored, never acknowledged (an ack would free frames from the pack's resend
 * buffer that no gateway has stored). Noise (bad lines, broken chunks) is counted, not fatal — both
 * transports resynchronise (§5.3, §6.4). When the link closes (unplug, BLE link loss), every pending
 * and later request fails with DEVICE_LOST.
 */
import { randomInt } from 'node:crypto';
import {
  parseResult,
  requestMessage,
  type DecodeEvent,
  type HelloInfo,
  type Message,
  type OpResult,
  type ProtocolErrorCode,
  type RequestCall,
  type RequestOp,
  type ResponseMessage,
} from '../protocol/index.js';
import { ProvisioningError, type PackFailureCode } from './errors.js';
import type { PackLink } from './link.js';
import { SerialLink, type SerialLinkOptions } from './serial-link.js';

/** Opening a pack on a serial port (PackSession.open). */
export type PackSessionOptions = SerialLinkOptions;

export interface CallOptions {
  /** How long to wait for the response. */
  readonly timeoutMs: number;
  /** The code of a timeout: NO_ANSWER before the pack has answered anything, DEVICE_LOST after (default). */
  readonly timeoutCode?: Extract<PackFailureCode, 'NO_ANSWER' | 'DEVICE_LOST'>;
}

/** What the session saw besides the responses it waited for. */
export interface PackSessionStats {
  bytesIn: number;
  /** Messages decoded (any type). */
  messages: number;
  /** Lines (serial) or chunks and messages (BLE) that failed to decode, by protocol code (LINE_CRC, BLE_SEQUENCE, MSG_MALFORMED, ...). */
  lineErrors: Partial<Record<ProtocolErrorCode, number>>;
  lineErrorCount: number;
  /** Signed frames the pack streamed on its own: ignored, never acknowledged. */
  framesIgnored: number;
  /** Unprompted `H` hello messages (sent on connect or reboot). */
  helloNotices: number;
  /** `E` error notices. */
  errorNotices: number;
  /** Responses to no pending request (late answers to a timed-out request, a duplicate). */
  strayResponses: number;
  /** Messages a pack never sends (requests, acks). */
  unexpected: number;
}

/** The result type of `op` (keygen and pubkey share one shape). */
export type ResultOf<Op extends RequestOp> = OpResult extends infer R ? (R extends { op: infer O } ? (Op extends O ? R : never) : never) : never;

interface Pending {
  readonly op: RequestOp;
  readonly resolve: (r: ResponseMessage) => void;
  readonly reject: (e: ProvisioningError) => void;
}

/** Request ids fit 32 bits (docs/protocol.md §4.5); start at a random one so an old session's late answer is stray. */
const MAX_ID = 0xffffffff;
/** How often identify() repeats its hello while the pack is silent (a pack still booting, a garbled first line). */
const HELLO_RETRY_MS = 500;

export class PackSession {
  readonly stats: PackSessionStats = {
    bytesIn: 0, messages: 0, lineErrors: {}, lineErrorCount: 0, framesIgnored: 0, helloNotices: 0, errorNotices: 0, strayResponses: 0, unexpected: 0,
  };
  /** The last unprompted hello the pack sent, if any. */
  lastHelloNotice: HelloInfo | undefined;
  /** The link's name (port path or `ble:ADDRESS`): messages start with it. */
  readonly path: string;
  private readonly pending = new Map<number, Pending>();
  private nextId = randomInt(1, 0x7fffffff);
  private lostError: ProvisioningError | undefined;
  private closing: Promise<void> | undefined;

  /** A session over an open link (it attaches to the link; one session per link). */
  constructor(private readonly link: PackLink) {
    this.path = link.name;
    link.attach({
      received: (bytes, events) => {
        this.onReceived(bytes, events);
      },
      closed: (err) => {
        this.lose(err);
      },
    });
  }

  /**
   * Opens the pack on a serial port. Throws ProvisioningError NO_DEVICE when it cannot be opened
   * (no such path, permission denied, not a tty, locked by another program), naming the path and
   * the reason.
   */
  static async open(opts: PackSessionOptions): Promise<PackSession> {
    return new PackSession(await SerialLink.open(opts));
  }

  /** True once the link closed or failed; every request then fails with DEVICE_LOST. */
  get lost(): boolean {
    return this.lostError !== undefined;
  }

  /**
   * Sends one request and waits for the response with its id, whatever its status. Throws
   * ProvisioningError DEVICE_LOST (link closed, unplugged or lost, before or while waiting; a write
   * failure) or `timeoutCode` when no response arrives in time.
   */
  request(call: RequestCall, opts: CallOptions): Promise<ResponseMessage> {
    return this.await(call, opts.timeoutMs, opts.timeoutCode ?? 'DEVICE_LOST', 0);
  }

  /**
   * A request whose response must be status "ok" with a well-formed result for the op. Throws as
   * `request`, plus DEVICE_ERROR for an error status (the message carries the pack's status and
   * text) or a result that does not fit the op (docs/protocol.md §4.5).
   */
  async call<C extends RequestCall>(call: C, opts: CallOptions): Promise<ResultOf<C['op']>> {
    return this.checked<C['op']>(call.op, await this.request(call, opts));
  }

  /**
   * Asks the pack who it is (`hello`), repeating the request every 500 ms until one of them is
   * answered or `timeoutMs` passes: a pack still booting, or whose first line was garbled or sent
   * before it listened, gets another chance within the same deadline. Throws NO_ANSWER when
   * nothing answers, DEVICE_LOST, or DEVICE_ERROR for an error status or a malformed hello.
   */
  async identify(timeoutMs: number): Promise<HelloInfo> {
    const r = this.checked('hello', await this.await({ op: 'hello' }, timeoutMs, 'NO_ANSWER', HELLO_RETRY_MS));
    return r.hello;
  }

  /** Closes the link; pending requests fail with DEVICE_LOST. Idempotent; never throws. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.lose(new ProvisioningError('DEVICE_LOST', `provisioning: ${this.path}: session closed`));
      await this.link.close();
    })();
    return this.closing;
  }

  /**
   * Writes `call` and waits for a response to it; with `retryMs` > 0 the request is written again
   * (with a new id) every `retryMs` until any of the copies is answered — all ids share one entry.
   */
  private await(call: RequestCall, timeoutMs: number, timeoutCode: 'NO_ANSWER' | 'DEVICE_LOST', retryMs: number): Promise<ResponseMessage> {
    if (this.lostError) return Promise.reject(this.lostError);
    return new Promise<ResponseMessage>((resolve, reject) => {
      const ids: number[] = [];
      let retry: NodeJS.Timeout | undefined;
      const done = (): void => {
        clearTimeout(timer);
        if (retry) clearInterval(retry);
        for (const id of ids) this.pending.delete(id);
      };
      const timer = setTimeout(() => {
        done();
        const what = timeoutCode === 'NO_ANSWER' ? 'no answer' : 'the pack stopped answering';
        reject(new ProvisioningError(timeoutCode, `provisioning: ${this.path}: ${what}: expected a response to "${call.op}" within ${timeoutMs} ms`));
      }, timeoutMs);
      const entry: Pending = {
        op: call.op,
        resolve: (r) => {
          done();
          resolve(r);
        },
        reject: (e) => {
          done();
          reject(e);
        },
      };
      const send = (): void => {
        if (this.lostError) return;
        const id = this.nextId;
        this.nextId = this.nextId >= MAX_ID ? 1 : this.nextId + 1;
        ids.push(id);
        this.pending.set(id, entry);
        // A failed write closes the link, which fails this request (and every other) with DEVICE_LOST.
        this.link.send(requestMessage(id, call)).catch((e: unknown) => {
          this.lose(e instanceof ProvisioningError ? e : new ProvisioningError('DEVICE_LOST', `provisioning: ${this.path}: write failed`, { cause: e }));
        });
      };
      send();
      if (retryMs > 0) retry = setInterval(send, retryMs);
    });
  }

  /** The checked result of a response to `op`: DEVICE_ERROR for an error status or a malformed result. */
  private checked<Op extends RequestOp>(op: Op, res: ResponseMessage): ResultOf<Op> {
    if (res.status !== 'ok') {
      const text = typeof res.result === 'string' ? `: ${res.result}` : '';
      throw new ProvisioningError('DEVICE_ERROR', `provisioning: ${this.path}: "${op}" failed with status ${res.status}${text}`);
    }
    try {
      return parseResult(op, res) as ResultOf<Op>;
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      throw new ProvisioningError('DEVICE_ERROR', `provisioning: ${this.path}: malformed "${op}" result: ${msg}`, { cause: e });
    }
  }

  private lose(err: ProvisioningError): void {
    this.lostError ??= err;
    const entries = new Set(this.pending.values());
    this.pending.clear();
    for (const p of entries) p.reject(this.lostError);
  }

  private onReceived(bytes: number, events: readonly DecodeEvent[]): void {
    this.stats.bytesIn += bytes;
    for (const ev of events) {
      if (ev.kind === 'error') {
        this.stats.lineErrorCount++;
        this.stats.lineErrors[ev.error.code] = (this.stats.lineErrors[ev.error.code] ?? 0) + 1;
        continue;
      }
      this.stats.messages++;
      this.onMessage(ev.message);
    }
  }

  private onMessage(m: Message): void {
    switch (m.type) {
      case 'response': {
        const p = this.pending.get(m.id);
        if (!p) {
          this.stats.strayResponses++;
          return;
        }
        p.resolve(m); // clears its timer and every id of the entry
        return;
      }
      case 'frame':
        this.stats.framesIgnored++; // never acked: the station is not a gateway
        return;
      case 'hello': {
        this.stats.helloNotices++;
        const { type: _type, ...info } = m;
        this.lastHelloNotice = info;
        return;
      }
      case 'error':
        this.stats.errorNotices++;
        return;
      case 'request':
      case 'ack':
        this.stats.unexpected++;
        return;
    }
  }
}
