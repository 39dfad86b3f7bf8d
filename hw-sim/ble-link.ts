/**
 * The BMU's BLE radio (issue 4 item 4; docs/protocol.md §6): a DeviceLink over one device of the fake
 * BlueZ (bluez/). Outgoing messages become protocol BLE messages cut into chunks of at most ATT_MTU − 3
 * bytes and sent as notifications; chunks the host writes are reassembled by protocol's Reassembler
 * (sequence, length, CRC, timeout checks), one fresh reassembler state per connection.
 *
 * Link state: "up" means connected with notifications enabled — before that, a notification goes
 * nowhere (as on real hardware), so the firmware must not count a frame as sent. A link loss or the
 * host turning notifications off is "down": pending sends reject LINK_DOWN and the firmware keeps the
 * frames in its ring for the resend after the next subscription.
 *
 * Pacing: a BLE link carries a few notifications per connection interval. The link models that as a
 * notification budget (default 4 per 30 ms interval ≈ 133/s), so with MTU 23 a 300-byte frame takes
 * about 17 notifications ≈ 0.13 s of radio time, as it would on a real phone-class link.
 *
 * Fault hooks (faults.ts, docs/hw-sim.md §5), idle in normal operation: `tamper` rewrites a
 * message's chunks, `sendRaw` notifies chunks that belong to no message, `setSlowdown` divides the
 * notification rate.
 */
import { chunkMessage, Reassembler, type Message } from '../protocol/index.js';
import type { FakeBluez } from './bluez/service.js';
import type { BleDeviceHandle, DisconnectReason } from './bluez/handle.js';
import { SimError } from './errors.js';
import { EventedLink, type DeviceLink } from './link.js';
import { realTimer, type LinkTimer, type WireTamper } from './serial-link.js';

export interface BleLinkOptions {
  readonly bluez: FakeBluez;
  /** "AA:BB:CC:DD:EE:FF". */
  readonly address: string;
  /** Advertised name. */
  readonly name: string;
  /** ATT_MTU, 23..247 (default 23): chunks carry mtu − 3 bytes. */
  readonly mtu?: number;
  /** Device info characteristic value (protocol encodeDeviceInfo). */
  readonly deviceInfo: Uint8Array;
  readonly timer?: LinkTimer;
  /** Notifications per second the radio sustains (default 4 per 30 ms connection interval). */
  readonly notificationsPerSecond?: number;
  /** Reassembly timeout for host writes, ms (default 2000). */
  readonly reassemblyTimeoutMs?: number;
}

export interface BleLinkStats {
  messagesSent: number;
  chunksSent: number;
  /** Notifications refused because the link dropped mid-message. */
  chunksRefused: number;
  chunksReceived: number;
  ups: number;
  downs: number;
}

export class BleDeviceLink extends EventedLink implements DeviceLink {
  readonly stats: BleLinkStats = { messagesSent: 0, chunksSent: 0, chunksRefused: 0, chunksReceived: 0, ups: 0, downs: 0 };
  readonly handle: BleDeviceHandle;
  /** Fault hook (faults.ts); undefined in normal operation. */
  tamper: WireTamper | undefined;
  private slowdown = 1;
  private readonly timer: LinkTimer;
  private readonly reassembler: Reassembler;
  private readonly interval: number;
  private readonly abort = new AbortController();
  private up = false;
  private generation = 0;
  private busyUntil = 0;
  private writes: Promise<unknown> = Promise.resolve();
  private closed = false;

  private constructor(opts: BleLinkOptions) {
    super();
    this.timer = opts.timer ?? realTimer();
    const rate = opts.notificationsPerSecond ?? 4 / 0.03;
    if (!(rate > 0)) throw new SimError('LINK_CONFIG', `hw-sim: BLE link ${opts.address}: notification rate must be positive`);
    this.interval = 1000 / rate;
    this.reassembler = new Reassembler({ timeoutMs: opts.reassemblyTimeoutMs ?? 2000 });
    this.handle = opts.bluez.addDevice({
      address: opts.address,
      name: opts.name,
      mtu: opts.mtu ?? 23,
      deviceInfo: opts.deviceInfo,
      onWrite: (chunk) => {
        this.received(chunk);
      },
      onConnect: () => {
        this.deliver(this.reassembler.reset());
      },
      onSubscribe: () => {
        this.setUp(true, 'subscribed');
      },
      onUnsubscribe: () => {
        this.setUp(false, 'notifications off');
      },
      onDisconnect: (reason: DisconnectReason) => {
        this.deliver(this.reassembler.reset());
        this.setUp(false, reason);
      },
    });
  }

  /** Registers the device with the fake BlueZ; it advertises at once. Throws as FakeBluez.addDevice. */
  static attach(opts: BleLinkOptions): BleDeviceLink {
    return new BleDeviceLink(opts);
  }

  get isUp(): boolean {
    return this.up;
  }

  send(msg: Message): Promise<number> {
    return this.enqueue(() => {
      const chunks = chunkMessage(msg, this.handle.maxChunk);
      return this.tamper?.(msg, chunks) ?? chunks;
    });
  }

  /**
   * Fault injection: notifies chunks that are no (valid) message — stray continuations, a START
   * declaring too much — in order with the messages, one per notification slot. Each chunk must
   * fit the MTU (else the notify throws BLUEZ_CHUNK). Rejects as `send`.
   */
  sendRaw(chunks: readonly Uint8Array[]): Promise<number> {
    return this.enqueue(() => chunks);
  }

  /** Fault injection (slow link): `factor` (≥ 1) times fewer notifications per second; 1 restores the rate. */
  setSlowdown(factor: number): void {
    if (!(factor >= 1 && factor < Infinity)) throw new SimError('LINK_CONFIG', `hw-sim: BLE link ${this.handle.address}: slowdown must be a finite factor ≥ 1, got ${factor}`);
    this.slowdown = factor;
  }

  /**
   * Queues chunks behind earlier messages. `chunks` is called only once the link has accepted the
   * message, so a one-shot tamper is never used up by a message refused with LINK_DOWN.
   */
  private enqueue(chunks: () => readonly Uint8Array[]): Promise<number> {
    if (this.closed) return Promise.reject(new SimError('LINK_CLOSED', `hw-sim: BLE link ${this.handle.address} is closed`));
    if (!this.up) return Promise.reject(new SimError('LINK_DOWN', `hw-sim: BLE link ${this.handle.address} is down`));
    const list = chunks();
    const gen = this.generation;
    const p = this.writes.then(() => this.transmit(list, gen));
    this.writes = p.catch(() => undefined);
    return p;
  }


  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    this.abort.abort();
    this.setUp(false, 'closed');
    this.handle.remove();
    this.events.clear();
    return Promise.resolve();
  }

  /** Sends the chunks one per notification slot; a drop midway fails the whole message. */
  private async transmit(chunks: readonly Uint8Array[], gen: number): Promise<number> {
    let bytes = 0;
    for (const chunk of chunks) {
      const now = this.timer.now();
      const at = Math.max(now, this.busyUntil);
      this.busyUntil = at + this.interval * this.slowdown;
      if (at > now) {
        try {
          await this.timer.sleep(at - now, this.abort.signal);
        } catch {
          // aborted by close(): the checks below report it
        }
      }
      if (this.closed) throw new SimError('LINK_CLOSED', `hw-sim: BLE link ${this.handle.address} is closed`);
      if (gen !== this.generation || !this.handle.notify(chunk)) {
        this.stats.chunksRefused++;
        throw new SimError('LINK_DOWN', `hw-sim: BLE link ${this.handle.address} went down mid-message`);
      }
      this.stats.chunksSent++;
      bytes += chunk.length;
    }
    this.stats.messagesSent++;
    return bytes;
  }

  private received(chunk: Uint8Array): void {
    this.stats.chunksReceived++;
    this.deliver(this.reassembler.push(chunk, this.timer.now()));
  }


  private setUp(up: boolean, reason: string): void {
    if (up === this.up) return;
    this.up = up;
    this.generation++;
    this.busyUntil = 0;
    if (up) {
      this.stats.ups++;
      this.events.emitUp();
    } else {
      this.stats.downs++;
      this.events.emitDown(reason);
    }
  }
}
