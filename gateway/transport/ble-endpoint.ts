/**
 * One BLE device as the BLE transport (ble.ts) keeps it: its counters, caps and backoff, the
 * node-ble objects of the current session (one Device and one characteristic pair, reused across
 * reconnects — docs/hw-sim.md §4 quirks 4–6), and the connection in progress or open. A connection
 * exists before it is announced: BlueZ re-enables notifications inside Connect (the device then
 * sends its hello and resends unacknowledged frames), so messages decoded before `open` wait in a
 * small queue and are delivered right after it. Writes of one connection are chained so the chunks
 * of two messages never interleave (§6.3: one message in progress per direction).
 */
import { BLE_GATT, chunkMessage, type Message } from '../../protocol/index.js';
import { GatewayError } from '../errors.js';
import { errorText, type BleCharacteristic, type BleDevice, type BleSession } from './ble-session.js';
import { Channel, down, EndpointCounters, InputGate, sourceText, type SafeEvents } from './endpoint.js';
import { ChunkInput } from './input.js';
import { monotonic, type Backoff } from './limits.js';
import type { EndpointState } from './types.js';

/** Messages kept for a connection still being set up. */
const OPENING_QUEUE = 64;

/** What an endpoint needs from its transport. */
export interface BleEndpointContext {
  readonly events: SafeEvents;
  readonly chunkSize: number;
  readonly writeTimeoutMs: number;
  readonly reassembly: { readonly maxMessage: number; readonly timeoutMs: number };
  /** Closes `ch` (Channel.close, a failed write): the transport disconnects and schedules a reconnect. */
  close(ep: BleEndpoint, ch: Channel, reason: string): Promise<void>;
}

export class BleEndpoint {
  readonly id: string;
  readonly source: string;
  readonly counters = new EndpointCounters();
  state: EndpointState = 'waiting';
  nextAttemptAt: number | undefined;
  timer: NodeJS.Timeout | undefined;
  /** Bumped to invalidate a connect attempt in flight (link loss, close, recycle, stop). */
  attempt = 0;
  session: BleSession | undefined;
  device: BleDevice | undefined;
  notify: BleCharacteristic | undefined;
  write: BleCharacteristic | undefined;
  /** Whether our 'disconnect' listener is on `device`. */
  listening = false;
  channel: Channel | undefined;
  /** How long the last announced connection stayed up (ms); the transport resets the backoff after a stable one. */
  upFor = 0;
  private input: ChunkInput | undefined;
  /** Events of a connection not yet announced with `open`; undefined once it is open. */
  private queue: (() => void)[] | undefined;
  private overflow = 0;

  constructor(
    readonly address: string,
    readonly gate: InputGate,
    readonly backoff: Backoff,
  ) {
    this.id = `ble:${address}`;
    this.source = sourceText('ble', address);
  }

  /** Whether a channel is open and announced. */
  get isOpen(): boolean {
    return this.channel !== undefined && this.queue === undefined;
  }

  /** Uses `s`'s objects from now on, forgetting those of an earlier session. */
  bind(s: BleSession): void {
    if (this.session === s) return;
    this.session = s;
    this.forget();
  }

  /** Forgets the node-ble objects (the device left BlueZ's tree, or its GATT layout changed). */
  forget(): void {
    this.device = undefined;
    this.notify = undefined;
    this.write = undefined;
    this.listening = false;
  }

  /**
   * Finds the packchain characteristics of `device` (once per session) and routes notifications to
   * this endpoint. gatt() runs only once ServicesResolved reads true: it would wait forever if the
   * services resolved between its own read and its subscription (quirk 3). Rejects when the device
   * has no packchain service or BlueZ does not answer within `timeoutMs`.
   */
  async lookup(s: BleSession, device: BleDevice, timeoutMs: number): Promise<void> {
    const deadline = monotonic() + timeoutMs;
    while ((await s.getProperty(s.devicePath(this.address), 'org.bluez.Device1', 'ServicesResolved')) !== true) {
      if (monotonic() > deadline) throw new Error(`ble: services of ${this.address} not resolved within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const gatt = await s.timed(device.gatt(), 'GATT lookup', timeoutMs);
    const service = await gatt.getPrimaryService(BLE_GATT.service);
    const notify = await service.getCharacteristic(BLE_GATT.notify);
    const write = await service.getCharacteristic(BLE_GATT.write);
    notify.on('valuechanged', (value: Buffer) => {
      this.chunk(notify, value);
    });
    this.notify = notify;
    this.write = write;
  }

  /** A connection being set up: its input runs, its events wait for `announce`. */
  begin(ctx: BleEndpointContext): Channel {
    let chain: Promise<unknown> = Promise.resolve();
    const writer = (msg: Message): Promise<number> => {
      const run = (): Promise<number> => this.send(ctx, ch, chunkMessage(msg, ctx.chunkSize));
      const p = chain.then(run, run);
      chain = p.catch(() => undefined);
      return p;
    };
    const ch: Channel = new Channel(this.id, this.source, 'ble', writer, (reason) => ctx.close(this, ch, reason), this.counters);
    const queue: (() => void)[] = [];
    this.channel = ch;
    this.queue = queue;
    this.overflow = 0;
    const deliver = (run: () => void): void => {
      if (this.channel !== ch) return;
      if (this.queue !== queue) run();
      else if (queue.length < OPENING_QUEUE) queue.push(run);
      else {
        this.overflow += 1;
        this.counters.reject('QUEUE_OVERFLOW');
      }
    };
    this.input = new ChunkInput(
      this.gate,
      this.counters,
      {
        message: (m) => {
          deliver(() => {
            ctx.events.message(ch, m);
          });
        },
        reject: (code, detail, raw) => {
          deliver(() => {
            ctx.events.reject(ch, code, detail, raw);
          });
        },
      },
      ctx.reassembly,
    );
    return ch;
  }

  /** Announces the connection (`open`) and delivers what arrived while it was being set up. */
  announce(ctx: BleEndpointContext, ch: Channel): void {
    const queue = this.queue;
    if (this.channel !== ch || !queue) return;
    this.queue = undefined;
    this.state = 'open';
    this.counters.connects += 1;
    ctx.events.open(ch);
    for (const run of queue) run();
    if (this.overflow > 0) {
      ctx.events.reject(ch, 'QUEUE_OVERFLOW', `gateway: transport: ${this.overflow} messages arrived before the connection was ready and were dropped (the device resends unacknowledged frames)`);
    }
  }

  /**
   * Ends the current connection, if any: a message in progress is one BLE_TIMEOUT (§6.4), pending
   * writes fail TRANSPORT_DOWN, and an announced connection gets its `close` event. Returns
   * whether the connection had been announced.
   */
  finish(ctx: BleEndpointContext, reason: string): boolean {
    const ch = this.channel;
    if (!ch) return false;
    const announced = this.queue === undefined;
    if (announced) this.input?.end();
    this.channel = undefined;
    this.input = undefined;
    this.queue = undefined;
    ch.markClosed(reason);
    if (announced) {
      this.upFor = Date.now() - ch.openedAt;
      this.counters.disconnects += 1;
      ctx.events.close(ch, reason);
    }
    return announced;
  }

  /** A notification from `from` (stale characteristic objects are ignored). */
  private chunk(from: BleCharacteristic, value: Buffer): void {
    if (from !== this.notify || !this.input) return;
    this.input.push(new Uint8Array(value.buffer, value.byteOffset, value.byteLength), monotonic());
  }

  /** Reassembly timeouts (BLE_TIMEOUT). */
  tick(now: number): void {
    this.input?.tick(now);
  }

  /** Writes the chunks of one message in order, each with a deadline. Rejects TRANSPORT_DOWN / TRANSPORT_WRITE. */
  private async send(ctx: BleEndpointContext, ch: Channel, chunks: readonly Uint8Array[]): Promise<number> {
    let bytes = 0;
    for (const c of chunks) {
      const w = this.write;
      const s = this.session;
      if (this.channel !== ch || !w || !s) throw down(this.id, 'closed before the message was written');
      try {
        await s.timed(w.writeValueWithoutResponse(Buffer.from(c)), 'WriteValue', ctx.writeTimeoutMs);
      } catch (e) {
        if (this.channel !== ch) throw down(this.id, 'closed before the message was written');
        void ctx.close(this, ch, `write failed (${errorText(e)})`);
        throw new GatewayError('TRANSPORT_WRITE', `gateway: transport: GATT write to ${this.id} failed: ${errorText(e)}; closing the connection`, { cause: e });
      }
      bytes += c.length;
    }
    return bytes;
  }
}
