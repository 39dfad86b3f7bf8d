/**
 * What the serial, BLE and memory transports share per device endpoint: the `Channel` handed to the
 * pipeline (one per connection; sends refused once closed), the endpoint's counters for `status()`,
 * the input caps (a token bucket on messages and one on bytes, with RATE_LIMITED reported at most
 * once a second per endpoint so a flood cannot turn into a flood of events), and `SafeEvents`, which
 * shields the transport from pipeline handlers that throw. The transports differ only in how bytes
 * get in and out; the rules about what reaches the pipeline live here.
 */
import type { Message } from '../../protocol/index.js';
import { GatewayError } from '../errors.js';
import { monotonic, positive, TokenBucket, type Clock } from './limits.js';
import type { ChannelEvents, DeviceChannel, EndpointState, EndpointStatus, InputFlow, RejectCode, TransportKind } from './types.js';

/** Longest source text a log leaf accepts (protocol leaf.ts MAX_SOURCE_LENGTH). */
export const MAX_SOURCE_LENGTH = 128;

/**
 * `kind:name` as a leaf source: control characters become `?` and a name too long for 128
 * characters keeps its tail (the distinguishing part of /dev/serial/by-id/... names) after `…`.
 */
export function sourceText(kind: TransportKind, name: string): string {
  // eslint-disable-next-line no-control-regex -- replacing control characters is the point
  const clean = name.replace(/[\u0000-\u001f\u007f-\u009f]/gu, '?');
  const full = `${kind}:${clean}`;
  if (full.length <= MAX_SOURCE_LENGTH) return full;
  return `${kind}:…${clean.slice(clean.length - (MAX_SOURCE_LENGTH - kind.length - 2))}`;
}

/** How a channel puts a message on its link: resolves with the bytes written. */
export type ChannelWriter = (msg: Message) => Promise<number>;

/** One connection. The transport calls `markClosed` once, just before the `close` event. */
export class Channel implements DeviceChannel {
  readonly openedAt = Date.now();
  private closed = false;
  private readonly onClosed = new Set<(reason: string) => void>();

  constructor(
    readonly id: string,
    readonly source: string,
    readonly kind: TransportKind,
    private readonly writer: ChannelWriter,
    private readonly closer: (reason: string) => Promise<void>,
    private readonly counters: EndpointCounters,
  ) {}

  get isOpen(): boolean {
    return !this.closed;
  }

  async send(msg: Message): Promise<void> {
    if (this.closed) throw down(this.id, 'is closed');
    const bytes = await this.writer(msg);
    this.counters.messagesOut += 1;
    this.counters.bytesOut += bytes;
  }

  close(reason = 'closed by the gateway'): Promise<void> {
    if (this.closed) return Promise.resolve();
    return this.closer(reason);
  }

  /**
   * Registers a callback for the close (e.g. to fail a write in progress); returns its remover. On
   * a channel already closed the callback runs on the next microtask, never synchronously.
   */
  whenClosed(cb: (reason: string) => void): () => void {
    if (this.closed) {
      queueMicrotask(() => {
        cb('closed');
      });
      return () => undefined;
    }
    this.onClosed.add(cb);
    return () => this.onClosed.delete(cb);
  }

  markClosed(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    for (const cb of [...this.onClosed]) cb(reason);
    this.onClosed.clear();
  }
}

/** GatewayError TRANSPORT_DOWN for channel `id`. */
export function down(id: string, why: string): GatewayError {
  return new GatewayError('TRANSPORT_DOWN', `gateway: transport: channel ${id} ${why}; expected an open channel (wait for the next open event)`);
}

/** Per-endpoint counters, kept across reconnects. */
export class EndpointCounters {
  connects = 0;
  disconnects = 0;
  failures = 0;
  bytesIn = 0;
  bytesOut = 0;
  messagesIn = 0;
  messagesOut = 0;
  droppedBytes = 0;
  lastError: string | undefined;
  readonly rejects: Partial<Record<RejectCode, number>> = {};

  reject(code: RejectCode, n = 1): void {
    this.rejects[code] = (this.rejects[code] ?? 0) + n;
  }

  status(id: string, state: EndpointState, openSince: number | undefined, nextAttemptAt: number | undefined): EndpointStatus {
    return {
      id,
      state,
      connects: this.connects,
      disconnects: this.disconnects,
      failures: this.failures,
      lastError: this.lastError,
      openSince,
      nextAttemptAt,
      bytesIn: this.bytesIn,
      bytesOut: this.bytesOut,
      messagesIn: this.messagesIn,
      messagesOut: this.messagesOut,
      rejects: { ...this.rejects },
      droppedBytes: this.droppedBytes,
    };
  }
}

export interface RateCaps {
  /** Decoded lines or BLE messages (and decoder errors) per second (default 200). */
  readonly messagesPerSecond?: number;
  /** Raw input bytes per second (default 65536: over five times a 115200-baud line). */
  readonly bytesPerSecond?: number;
  /** Bucket size in seconds of rate (default 2): how long a burst may run at the link's full speed. */
  readonly burstSeconds?: number;
}

/** The caps of one endpoint. Throws GatewayError TRANSPORT_CONFIG for non-positive values. */
export class InputGate {
  readonly messagesPerSecond: number;
  readonly bytesPerSecond: number;
  private readonly messages: TokenBucket;
  private readonly bytes: TokenBucket;
  private windowStart = -Infinity;
  private windowDrops = 0;

  constructor(
    caps: RateCaps = {},
    private readonly now: Clock = monotonic,
  ) {
    this.messagesPerSecond = caps.messagesPerSecond ?? 200;
    this.bytesPerSecond = caps.bytesPerSecond ?? 65_536;
    const burst = caps.burstSeconds ?? 2;
    positive(this.messagesPerSecond, 'rate.messagesPerSecond');
    positive(this.bytesPerSecond, 'rate.bytesPerSecond');
    positive(burst, 'rate.burstSeconds');
    this.messages = new TokenBucket(this.messagesPerSecond, Math.max(1, this.messagesPerSecond * burst), now);
    this.bytes = new TokenBucket(this.bytesPerSecond, Math.max(4096, this.bytesPerSecond * burst), now);
  }

  /** How many of `n` input bytes may be processed now. */
  admitBytes(n: number): number {
    return this.bytes.takeUpTo(n);
  }

  /** Whether a whole unit of `n` bytes (a BLE chunk) may be processed now; takes nothing if not. */
  admitUnit(n: number): boolean {
    return this.bytes.take(n);
  }

  /** Whether one more decoded message or decoder error may reach the pipeline now. */
  admitMessage(): boolean {
    return this.messages.take(1);
  }

  /**
   * Records a drop; returns the detail text for a RATE_LIMITED event if one is due (the first drop
   * of each one-second window), else undefined (the drop is only counted).
   */
  dropped(what: string): string | undefined {
    const t = this.now();
    this.windowDrops += 1;
    if (t - this.windowStart < 1000) return undefined;
    const detail =
      `gateway: transport: ${what} dropped: input over the cap of ${this.messagesPerSecond} messages/s and ${this.bytesPerSecond} bytes/s` +
      (this.windowDrops > 1 ? ` (${this.windowDrops - 1} earlier drops in the last window)` : '') +
      '; further drops within a second are only counted';
    this.windowStart = t;
    this.windowDrops = 0;
    return detail;
  }
}

/**
 * The pipeline's handlers behind a shield: an exception or a rejected promise from a handler is
 * counted, never propagated into serialport's or dbus-next's event path.
 */
export class SafeEvents {
  errors = 0;
  lastError: string | undefined;

  constructor(private readonly events: ChannelEvents) {}

  /** The pipeline's back-pressure, when it has any (ChannelEvents.flow). */
  get flow(): InputFlow | undefined {
    return this.events.flow;
  }

  open(ch: DeviceChannel): void {
    this.run('open', ch);
  }
  message(ch: DeviceChannel, msg: Message): void {
    this.run('message', ch, msg);
  }
  reject(ch: DeviceChannel, code: RejectCode, detail: string, raw?: string): void {
    this.run('reject', ch, code, detail, raw);
  }
  close(ch: DeviceChannel, reason: string): void {
    this.run('close', ch, reason);
  }

  private run<K extends 'open' | 'message' | 'reject' | 'close'>(name: K, ...args: Parameters<ChannelEvents[K]>): void {
    try {
      // A handler typed `void` may still be async: a rejection must not become an unhandled one.
      const handler = this.events[name] as (...a: Parameters<ChannelEvents[K]>) => unknown;
      const r = handler.apply(this.events, args);
      if (r instanceof Promise) r.catch((e: unknown) => { this.failed(e); });
    } catch (e) {
      this.failed(e);
    }
  }

  private failed(e: unknown): void {
    this.errors += 1;
    this.lastError = e instanceof Error ? e.message : String(e);
  }
}

/** Sums endpoint statuses into the totals of a TransportStatus. */
export function totals(endpoints: readonly EndpointStatus[]): { open: number; reconnects: number; rejects: Partial<Record<RejectCode, number>> } {
  const rejects: Partial<Record<RejectCode, number>> = {};
  let open = 0;
  let reconnects = 0;
  for (const e of endpoints) {
    if (e.state === 'open') open += 1;
    reconnects += Math.max(0, e.connects - 1);
    for (const [code, n] of Object.entries(e.rejects) as [RejectCode, number][]) rejects[code] = (rejects[code] ?? 0) + n;
  }
  return { open, reconnects, rejects };
}
