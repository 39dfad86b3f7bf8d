/**
 * An in-memory DeviceLink for unit tests of the firmware (and of hw-sim parts built on it): both
 * directions go through the real serial line codec (protocol encodeLine / LineDecoder), so what the
 * firmware sends is exactly what a pty would carry, and a test can inject raw bytes (garbage, bad
 * CRCs, truncated lines) as a noisy host would. No pacing and no ptys: delivery happens on the next
 * microtask, so tests run without sleeping. The real transport is serial-link.ts.
 */
import { encodeLine, LineDecoder, type Message } from '../protocol/index.js';
import { SimError } from './errors.js';
import { EventedLink, LinkEvents, type DeviceLink, type Unsubscribe } from './link.js';

/** The host's end of a MemoryLink: what a gateway or station would see. */
export interface MemoryHost {
  /** Every message the device sent while the link was up, in order. */
  readonly received: Message[];
  /** Decode errors on the host side (there should be none from a correct device). */
  readonly errors: string[];
  /** Sends a message to the device (through encodeLine and the device's LineDecoder). */
  send(msg: Message): void;
  /** Sends raw bytes to the device, e.g. garbage or a line with a broken CRC. */
  sendRaw(bytes: Uint8Array): void;
  onMessage(cb: (msg: Message) => void): Unsubscribe;
}

export class MemoryLink extends EventedLink implements DeviceLink {
  private readonly hostEvents = new LinkEvents();
  private up = false;
  private closed = false;
  private deviceDecoder = new LineDecoder();
  private hostDecoder = new LineDecoder();
  readonly host: MemoryHost;

  constructor() {
    super();
    const received: Message[] = [];
    const errors: string[] = [];
    this.hostEvents.onMessage((m) => received.push(m));
    this.host = {
      received,
      errors,
      send: (msg) => {
        this.toDevice(encodeLine(msg));
      },
      sendRaw: (bytes) => {
        this.toDevice(bytes);
      },
      onMessage: (cb) => this.hostEvents.onMessage(cb),
    };
  }

  get isUp(): boolean {
    return this.up;
  }

  /** Plugs the host in: the device sees `up` with fresh decoders on both ends. */
  connect(): void {
    if (this.closed || this.up) return;
    this.deviceDecoder = new LineDecoder();
    this.hostDecoder = new LineDecoder();
    this.up = true;
    this.events.emitUp();
  }

  /** Unplugs: the device sees `down`; bytes in flight are lost. */
  disconnect(reason = 'unplugged'): void {
    if (!this.up) return;
    this.up = false;
    this.events.emitDown(reason);
  }

  async send(msg: Message): Promise<number> {
    if (this.closed) throw new SimError('LINK_CLOSED', 'hw-sim: memory link is closed');
    if (!this.up) throw new SimError('LINK_DOWN', 'hw-sim: memory link is down');
    const line = encodeLine(msg);
    await Promise.resolve();
    if (!this.isUp) throw new SimError('LINK_DOWN', 'hw-sim: memory link went down during the send'); // a getter: not narrowed across the await
    for (const ev of this.hostDecoder.push(line)) {
      if (ev.kind === 'message') this.hostEvents.emitMessage(ev.message);
      else this.host.errors.push(ev.error.code);
    }
    return line.length;
  }


  close(): Promise<void> {
    this.disconnect('closed');
    this.closed = true;
    this.events.clear();
    return Promise.resolve();
  }

  private toDevice(bytes: Uint8Array): void {
    if (!this.up) return; // nobody is listening on an unplugged link
    queueMicrotask(() => {
      if (!this.up) return;
      this.deliver(this.deviceDecoder.push(bytes));
    });
  }
}
