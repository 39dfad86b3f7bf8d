/**
 * An in-memory Transport for unit tests of the gateway pipeline (DESIGN.md "Out of bounds": unit
 * tests may use in-memory transports of our own). Each simulated device talks through the real
 * serial line codec in both directions — protocol encodeLine on one side, the same LineInput (caps,
 * LineDecoder) the serial transport uses on the other — so a test can inject raw garbage, a bad CRC
 * or a flood and see exactly the reject events a pty would produce. Delivery is asynchronous (one
 * microtask per unit, in order), like a real port, so handlers are never re-entered from `send`.
 */
import { encodeLine, LineDecoder, type Message } from '../../protocol/index.js';
import { GatewayError } from '../errors.js';
import { Channel, down, EndpointCounters, InputGate, SafeEvents, sourceText, totals, type RateCaps } from './endpoint.js';
import { LineInput } from './input.js';
import type { ChannelEvents, DeviceChannel, EndpointStatus, Transport, TransportStatus } from './types.js';

export interface MemoryTransportOptions {
  readonly rate?: RateCaps;
  readonly maxLineBytes?: number;
}

/** The device's end of a memory endpoint: what a test drives. */
export interface MemoryDevice {
  /** `memory:<name>`. */
  readonly id: string;
  /** The open channel, if plugged in. */
  readonly channel: DeviceChannel | undefined;
  /** Every message the gateway sent to this device, decoded from its line. */
  readonly received: Message[];
  /** Opens a new connection (an `open` event). Throws TRANSPORT_STATE unless the transport runs. */
  plug(): DeviceChannel;
  /** Ends the connection (a `close` event with `reason`); nothing if unplugged. */
  unplug(reason?: string): void;
  /** Sends a message to the gateway as one line. Throws TRANSPORT_DOWN when unplugged. */
  send(msg: Message): void;
  /** Sends raw bytes (garbage, a broken line, a flood). Throws TRANSPORT_DOWN when unplugged. */
  write(bytes: Uint8Array): void;
  /** Calls `cb` for each message the gateway sends from now on; returns its remover. */
  onReceive(cb: (msg: Message) => void): () => void;
}

class MemoryEndpoint implements MemoryDevice {
  readonly received: Message[] = [];
  readonly counters = new EndpointCounters();
  readonly listeners = new Set<(msg: Message) => void>();
  current: Channel | undefined;
  input: LineInput | undefined;
  /** The device's own line decoder, fresh per connection. */
  decoder = new LineDecoder();

  constructor(
    readonly id: string,
    private readonly owner: MemoryTransport,
    private readonly name: string,
    /** Caps per endpoint, kept across reconnects: replugging does not refill them. */
    readonly gate: InputGate,
  ) {}

  get channel(): DeviceChannel | undefined {
    return this.current;
  }

  plug(): DeviceChannel {
    return this.owner.plugEndpoint(this, this.name);
  }

  unplug(reason = 'unplugged'): void {
    this.owner.closeEndpoint(this, reason);
  }

  send(msg: Message): void {
    this.write(encodeLine(msg));
  }

  write(bytes: Uint8Array): void {
    const ch = this.current;
    if (!ch) throw down(this.id, 'is unplugged');
    const copy = new Uint8Array(bytes);
    queueMicrotask(() => {
      if (this.current === ch) this.input?.push(copy);
    });
  }

  onReceive(cb: (msg: Message) => void): () => void {
    this.listeners.add(cb);
    return () => this.listeners.delete(cb);
  }

  /** The gateway's line arrives at the device: decode it as the firmware would. */
  deliver(line: Uint8Array): void {
    for (const ev of this.decoder.push(line)) {
      if (ev.kind !== 'message') continue;
      this.received.push(ev.message);
      for (const cb of [...this.listeners]) cb(ev.message);
    }
  }
}

export class MemoryTransport implements Transport {
  private events: SafeEvents | undefined;
  private state: 'idle' | 'running' | 'stopped' = 'idle';
  private readonly endpoints = new Map<string, MemoryEndpoint>();

  constructor(private readonly options: MemoryTransportOptions = {}) {
    new InputGate(options.rate); // validates the caps now (TRANSPORT_CONFIG), not at the first plug
  }

  start(events: ChannelEvents): Promise<void> {
    if (this.state !== 'idle') return Promise.reject(new GatewayError('TRANSPORT_STATE', `gateway: transport: memory transport is ${this.state}; expected a new transport`));
    this.events = new SafeEvents(events);
    this.state = 'running';
    return Promise.resolve();
  }

  async stop(): Promise<void> {
    if (this.state === 'stopped') return;
    this.state = 'stopped';
    for (const ep of this.endpoints.values()) this.closeEndpoint(ep, 'transport stopped');
    await Promise.resolve();
  }

  /** The device named `name` (created unplugged on first use). */
  device(name: string): MemoryDevice {
    const id = `memory:${name}`;
    let ep = this.endpoints.get(id);
    if (!ep) {
      ep = new MemoryEndpoint(id, this, name, new InputGate(this.options.rate));
      this.endpoints.set(id, ep);
    }
    return ep;
  }

  /** `device(name)` plugged in. */
  plug(name: string): MemoryDevice {
    const d = this.device(name);
    d.plug();
    return d;
  }

  status(): TransportStatus {
    const endpoints: EndpointStatus[] = [...this.endpoints.values()].map((ep) =>
      ep.counters.status(ep.id, ep.current ? 'open' : 'waiting', ep.current?.openedAt, undefined),
    );
    return {
      kind: 'memory',
      state: this.state,
      endpoints,
      ...totals(endpoints),
      handlerErrors: this.events?.errors ?? 0,
      lastHandlerError: this.events?.lastError,
      detail: {},
    };
  }

  /** @internal MemoryEndpoint.plug. */
  plugEndpoint(ep: MemoryEndpoint, name: string): Channel {
    const events = this.events;
    if (this.state !== 'running' || !events) throw new GatewayError('TRANSPORT_STATE', `gateway: transport: memory transport is ${this.state}; expected a running transport`);
    if (ep.current) return ep.current;
    const write = (msg: Message): Promise<number> => {
      const line = encodeLine(msg);
      return new Promise((resolve, reject) => {
        queueMicrotask(() => {
          if (ep.current !== ch) {
            reject(down(ep.id, 'closed before the message was written'));
            return;
          }
          ep.deliver(line);
          resolve(line.length);
        });
      });
    };
    const ch: Channel = new Channel(ep.id, sourceText('memory', name), 'memory', write, (reason) => {
      this.closeEndpoint(ep, reason);
      return Promise.resolve();
    }, ep.counters);
    ep.current = ch;
    ep.counters.connects += 1;
    ep.decoder = new LineDecoder();
    ep.input = new LineInput(ep.gate, ep.counters, {
      message: (m) => {
        events.message(ch, m);
      },
      reject: (code, detail, raw) => {
        events.reject(ch, code, detail, raw);
      },
    }, this.options.maxLineBytes);
    events.open(ch);
    return ch;
  }

  /** @internal MemoryEndpoint.unplug and Channel.close. */
  closeEndpoint(ep: MemoryEndpoint, reason: string): void {
    const ch = ep.current;
    if (!ch) return;
    ep.input?.end();
    ep.current = undefined;
    ep.input = undefined;
    ep.counters.disconnects += 1;
    ch.markClosed(reason);
    this.events?.close(ch, reason);
  }
}
