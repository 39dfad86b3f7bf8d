/**
 * The two ways hostile bytes reach the pipeline in this suite. Serial: the gateway's MemoryTransport
 * (its LineInput, protocol LineDecoder → parseLine → decodeMessage, the port's line and rate caps),
 * wrapped as a `Link`. BLE: `BleLink`, the gateway's own BLE input path short of D-Bus — ChunkInput
 * (protocol Reassembler, the endpoint's InputGate caps), a transport Channel and SafeEvents, as
 * gateway/transport/ble-endpoint.ts wires them for a node-ble notification — with the device's side
 * of GATT played by protocol chunkMessage / Reassembler and a clock the suite advances (reassembly
 * timeouts without sleeping). Both deliver asynchronously, one microtask per unit, like real ports.
 */
import { chunkMessage, Reassembler, type Message } from '../../protocol/index.js';
import type { ChannelEvents, DeviceChannel, MemoryDevice, RateCaps } from '../../gateway/index.js';
import { Channel, EndpointCounters, InputGate, SafeEvents, sourceText } from '../../gateway/transport/endpoint.js';
import { ChunkInput } from '../../gateway/transport/input.js';

/** A device's end of a connection, whichever transport carries it. */
export interface Link {
  readonly id: string;
  readonly kind: 'serial' | 'ble';
  /** Sends a well-formed message. */
  send(msg: Message): void;
  /** Sends raw units: serial bytes, or BLE notifications (one chunk each). */
  raw(units: readonly Uint8Array[]): void;
  onReceive(cb: (msg: Message) => void): void;
  /** Whether the connection is open. */
  readonly isOpen: boolean;
  plug(): void;
  unplug(): void;
}

export function serialLink(d: MemoryDevice): Link {
  return {
    id: d.id,
    kind: 'serial',
    send: (m) => {
      d.send(m);
    },
    raw: (units) => {
      for (const u of units) d.write(u);
    },
    onReceive: (cb) => {
      d.onReceive(cb);
    },
    get isOpen() {
      return d.channel?.isOpen === true;
    },
    plug: () => {
      d.plug();
    },
    unplug: () => {
      d.unplug('hostile suite: unplugged');
    },
  };
}

/** ATT payload size the suite's BLE links use (ATT_MTU 247). */
export const BLE_CHUNK = 244;

export class BleLink implements Link {
  readonly kind = 'ble';
  readonly id: string;
  readonly counters = new EndpointCounters();
  private readonly gate: InputGate;
  private channel: Channel | undefined;
  private input: ChunkInput | undefined;
  private readonly device = new Reassembler({ timeoutMs: 1e9 });
  private readonly listeners: ((m: Message) => void)[] = [];
  /** The link's clock in ms (advanced by the suite, never by sleeping). */
  nowMs = 0;

  constructor(
    readonly address: string,
    private readonly events: SafeEvents,
    caps: RateCaps,
    private readonly reassembly: { maxMessage: number; timeoutMs: number } = { maxMessage: 4096, timeoutMs: 2000 },
  ) {
    this.id = `ble:${address}`;
    this.gate = new InputGate(caps);
  }

  get isOpen(): boolean {
    return this.channel?.isOpen === true;
  }

  get ch(): DeviceChannel | undefined {
    return this.channel;
  }

  plug(): void {
    if (this.channel) return;
    const write = (msg: Message): Promise<number> => {
      const chunks = chunkMessage(msg, BLE_CHUNK);
      return new Promise((resolve, reject) => {
        queueMicrotask(() => {
          if (this.channel !== ch) {
            reject(new Error('hostile: BLE link closed before the write'));
            return;
          }
          let n = 0;
          for (const c of chunks) {
            n += c.length;
            for (const ev of this.device.push(c, 0)) {
              if (ev.kind === 'message') for (const cb of this.listeners) cb(ev.message);
            }
          }
          resolve(n);
        });
      });
    };
    const ch: Channel = new Channel(this.id, sourceText('ble', this.address), 'ble', write, (reason) => {
      this.finish(reason);
      return Promise.resolve();
    }, this.counters);
    this.channel = ch;
    this.counters.connects += 1;
    this.input = new ChunkInput(this.gate, this.counters, {
      message: (m) => {
        this.events.message(ch, m);
      },
      reject: (code, detail, raw) => {
        this.events.reject(ch, code, detail, raw);
      },
    }, this.reassembly);
    this.events.open(ch);
  }

  unplug(): void {
    this.finish('hostile suite: link dropped');
  }

  private finish(reason: string): void {
    const ch = this.channel;
    if (!ch) return;
    this.input?.end();
    this.channel = undefined;
    this.input = undefined;
    this.counters.disconnects += 1;
    ch.markClosed(reason);
    this.events.close(ch, reason);
  }

  send(msg: Message): void {
    this.raw(chunkMessage(msg, BLE_CHUNK));
  }

  raw(units: readonly Uint8Array[]): void {
    const ch = this.channel;
    const copies = units.map((u) => new Uint8Array(u));
    queueMicrotask(() => {
      if (this.channel !== ch) return;
      for (const u of copies) this.input?.push(u, this.nowMs);
    });
  }

  /** Advances the link's clock by `ms` and lets the reassembler time out what is incomplete. */
  advance(ms: number): void {
    const ch = this.channel;
    queueMicrotask(() => {
      if (this.channel !== ch) return;
      this.nowMs += ms;
      this.input?.tick(this.nowMs);
    });
  }

  onReceive(cb: (msg: Message) => void): void {
    this.listeners.push(cb);
  }
}

/** SafeEvents over the pipeline's handlers, as the BLE transport makes them. */
export function safeEvents(events: ChannelEvents): SafeEvents {
  return new SafeEvents(events);
}
