/**
 * The transport-neutral boundary between the simulated BMU firmware and whatever carries its bytes:
 * a serial pty (serial-link.ts), BLE GATT (added later) or memory (memory-link.ts, for unit tests).
 * The firmware sees only whole protocol messages (docs/protocol.md §4) and four events, so
 * the same firmware code runs behind every transport, exactly as one firmware image drives a UART
 * and a BLE radio. Framing, integrity checks (CRC, chunking), pacing and reconnection belong to the
 * link. `LinkEvents` is the listener bookkeeping every implementation shares.
 */
import type { DecodeEvent, Message } from '../protocol/index.js';

/** Unsubscribes a listener registered with one of DeviceLink's `on*` methods. */
export type Unsubscribe = () => void;

/**
 * One device's end of a transport. Contract:
 * - `send` resolves with the bytes put on the wire once the whole message has been written at the
 *   link's pace (a real UART's transmit-complete); it rejects with SimError LINK_DOWN when the link
 *   is down or goes down before the message is written, and LINK_CLOSED after `close()`. Messages are
 *   written in the order `send` was called.
 * - `onMessage` gets every well-formed message from the host; `onBadInput` gets one call per line or
 *   chunk the decoder rejected (a protocol error code such as LINE_CRC) — never an exception.
 * - `onUp` fires when a host may be listening (for serial: the pty exists and is open on the device
 *   side), `onDown` when that ends. `isUp` is the current state. Listeners run synchronously and
 *   must not throw.
 */
export interface DeviceLink {
  readonly isUp: boolean;
  send(msg: Message): Promise<number>;
  onMessage(cb: (msg: Message) => void): Unsubscribe;
  onBadInput(cb: (code: string, detail: string) => void): Unsubscribe;
  onUp(cb: () => void): Unsubscribe;
  onDown(cb: (reason: string) => void): Unsubscribe;
  /** Stops the link for good: pending sends reject with LINK_CLOSED, no further events. */
  close(): Promise<void>;
}

type Listener<A extends unknown[]> = (...args: A) => void;

/** Listener sets for the four DeviceLink events; a link implementation owns one and calls `emit*`. */
export class LinkEvents {
  private readonly message = new Set<Listener<[Message]>>();
  private readonly badInput = new Set<Listener<[string, string]>>();
  private readonly up = new Set<Listener<[]>>();
  private readonly down = new Set<Listener<[string]>>();

  onMessage(cb: Listener<[Message]>): Unsubscribe {
    return add(this.message, cb);
  }
  onBadInput(cb: Listener<[string, string]>): Unsubscribe {
    return add(this.badInput, cb);
  }
  onUp(cb: Listener<[]>): Unsubscribe {
    return add(this.up, cb);
  }
  onDown(cb: Listener<[string]>): Unsubscribe {
    return add(this.down, cb);
  }

  emitMessage(msg: Message): void {
    for (const cb of [...this.message]) cb(msg);
  }
  emitBadInput(code: string, detail: string): void {
    for (const cb of [...this.badInput]) cb(code, detail);
  }
  emitUp(): void {
    for (const cb of [...this.up]) cb();
  }
  emitDown(reason: string): void {
    for (const cb of [...this.down]) cb(reason);
  }

  clear(): void {
    this.message.clear();
    this.badInput.clear();
    this.up.clear();
    this.down.clear();
  }
}

function add<T>(set: Set<T>, cb: T): Unsubscribe {
  set.add(cb);
  return () => {
    set.delete(cb);
  };
}

/**
 * What every link shares: the listener sets behind DeviceLink's four `on*` methods, and handing a
 * decoder's events (protocol LineDecoder, Reassembler) to them — messages as messages, rejects as
 * bad input with their code and a printable preview.
 */
export abstract class EventedLink {
  protected readonly events = new LinkEvents();

  onMessage(cb: (msg: Message) => void): Unsubscribe {
    return this.events.onMessage(cb);
  }
  onBadInput(cb: (code: string, detail: string) => void): Unsubscribe {
    return this.events.onBadInput(cb);
  }
  onUp(cb: () => void): Unsubscribe {
    return this.events.onUp(cb);
  }
  onDown(cb: (reason: string) => void): Unsubscribe {
    return this.events.onDown(cb);
  }

  protected deliver(events: readonly DecodeEvent[]): void {
    for (const ev of events) {
      if (ev.kind === 'message') this.events.emitMessage(ev.message);
      else this.events.emitBadInput(ev.error.code, ev.raw ?? ev.error.message);
    }
  }
}
