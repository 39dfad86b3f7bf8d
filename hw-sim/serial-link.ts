/**
 * The BMU's UART (issue 4 item 3; docs/protocol.md §5): a DeviceLink over the device end of
 * a socat pty pair (pty.ts), opened with serialport 13 — not fs streams, whose blocking pty reads
 * would occupy the libuv threadpool and starve it with hundreds of devices; serialport polls the fd.
 * Every open gets a fresh LineDecoder (NOTES.md); every message goes out as one encodeLine line.
 *
 * Pacing: a pty moves bytes as fast as the kernel can, so the link models the wire itself — a
 * virtual transmitter that is busy for bytes × bitsPerByte / baud seconds per line (a token bucket
 * with no burst: 115200 baud, 8N1 = 10 bits a byte → 11 520 B/s). A line is written to the pty when
 * its last bit would have left a real UART, so a host sees lines at the real rate and `send`
 * resolves at transmit-complete.
 *
 * Link state: a device cannot see whether a host has the other end open (a pty drops what nobody
 * reads), so "up" means the device end is open. The host announces itself with a `hello` request,
 * which the firmware treats as a new session. Unplug (socat killed) closes the port with a
 * DisconnectedError → down, pending sends reject LINK_DOWN, and the link retries opening with
 * exponential backoff until the pty is back, then reports up again (the firmware says hello).
 *
 * Fault hooks (faults.ts, docs/hw-sim.md §5), idle in normal operation: `tamper` rewrites a
 * message's line after encoding, `sendRaw` puts bytes that are no message on the wire between
 * messages, and `setSlowdown` stretches the wire time.
 */
import { SerialPort } from 'serialport';
import { setTimeout as delay } from 'node:timers/promises';
import { encodeLine, LineDecoder, type Message } from '../protocol/index.js';
import { SimError } from './errors.js';
import { EventedLink, type DeviceLink } from './link.js';

/** Wall time for pacing and retries; injectable so tests and accelerated fleets can replace it. */
export interface LinkTimer {
  now(): number;
  /** Resolves after `ms`; rejects (AbortError) when `signal` aborts. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

/** performance.now() and node:timers. */
export function realTimer(): LinkTimer {
  return {
    now: () => performance.now(),
    sleep: (ms, signal) => (ms <= 0 && !signal?.aborted ? Promise.resolve() : delay(Math.max(0, ms), undefined, { signal })),
  };
}

/**
 * Fault hook on a link's transmit path (faults.ts): called synchronously by `send` with the message
 * and its encoded wire units (serial: the one line; BLE: its chunks); returns the units to put on the
 * wire instead — each one line write or one notification, at the link's pace — or undefined to send
 * the message unchanged.
 */
export type WireTamper = (msg: Message, units: readonly Uint8Array[]) => Uint8Array[] | undefined;

export interface SerialLinkOptions {
  /** The device end of the pty pair (PtyPair.devicePath) or a real tty. */
  readonly path: string;
  /** Line rate in bit/s (default 115200). */
  readonly baudRate?: number;
  /** Bits on the wire per byte: start + 8 data + stop = 10 for 8N1 (default). */
  readonly bitsPerByte?: number;
  readonly timer?: LinkTimer;
  /** Reopen backoff after an unplug: first and largest wait (default 20 ms, 1000 ms). */
  readonly retryMinMs?: number;
  readonly retryMaxMs?: number;
}

export interface SerialLinkStats {
  bytesWritten: number;
  linesWritten: number;
  bytesRead: number;
  opens: number;
  /** Opens that failed (ENOENT while unplugged, EACCES, ...). */
  openFailures: number;
  disconnects: number;
}

export class SerialDeviceLink extends EventedLink implements DeviceLink {
  readonly stats: SerialLinkStats = { bytesWritten: 0, linesWritten: 0, bytesRead: 0, opens: 0, openFailures: 0, disconnects: 0 };
  /** Fault hook (faults.ts); undefined in normal operation. */
  tamper: WireTamper | undefined;
  private readonly timer: LinkTimer;
  private readonly bytesPerSecond: number;
  private slowdown = 1;
  private readonly abort = new AbortController();
  private port: SerialPort | undefined;
  private decoder = new LineDecoder();
  /** Bumped on every up and down: a write queued in an older generation is refused. */
  private generation = 0;
  private busyUntil = 0;
  private writes: Promise<unknown> = Promise.resolve();
  private closed = false;

  private constructor(private readonly opts: SerialLinkOptions) {
    super();
    this.timer = opts.timer ?? realTimer();
    const baud = opts.baudRate ?? 115_200;
    const bits = opts.bitsPerByte ?? 10;
    if (!(baud > 0) || !(bits > 0)) throw new SimError('LINK_CONFIG', `hw-sim: serial link ${opts.path}: baud rate and bits per byte must be positive`);
    this.bytesPerSecond = baud / bits;
  }

  /** Creates the link and starts opening `path` in the background (retrying until it exists). */
  static open(opts: SerialLinkOptions): SerialDeviceLink {
    const link = new SerialDeviceLink(opts);
    void link.connectLoop();
    return link;
  }

  get isUp(): boolean {
    return this.port !== undefined;
  }

  /** Bytes per second on the wire (baud / bitsPerByte, divided by a slow-link fault's factor). */
  get rate(): number {
    return this.bytesPerSecond / this.slowdown;
  }

  send(msg: Message): Promise<number> {
    return this.enqueue(() => {
      const line = encodeLine(msg);
      return this.tamper?.(msg, [line]) ?? [line];
    });
  }

  /**
   * Fault injection: writes byte strings that are not messages (garbage, an over-long line) in
   * order with the messages, each paced as a line. Rejects as `send`.
   */
  sendRaw(units: readonly Uint8Array[]): Promise<number> {
    return this.enqueue(() => units);
  }

  /** Fault injection (slow link): the wire runs `factor` (≥ 1) times slower; 1 restores the baud rate. */
  setSlowdown(factor: number): void {
    if (!(factor >= 1 && factor < Infinity)) throw new SimError('LINK_CONFIG', `hw-sim: serial link ${this.opts.path}: slowdown must be a finite factor ≥ 1, got ${factor}`);
    this.slowdown = factor;
  }

  /**
   * Queues units behind earlier writes. `units` is called only once the link has accepted the
   * message, so a one-shot tamper is never used up by a message refused with LINK_DOWN.
   */
  private enqueue(units: () => readonly Uint8Array[]): Promise<number> {
    if (this.closed) return Promise.reject(new SimError('LINK_CLOSED', `hw-sim: serial link ${this.opts.path} is closed`));
    if (!this.port) return Promise.reject(new SimError('LINK_DOWN', `hw-sim: serial link ${this.opts.path} is down`));
    const list = units();
    const gen = this.generation;
    const p = this.writes.then(async () => {
      let bytes = 0;
      for (const u of list) bytes += await this.transmit(u, gen);
      return bytes;
    });
    this.writes = p.catch(() => undefined);
    return p;
  }


  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.abort.abort();
    const port = this.port;
    this.lose('closed');
    if (port?.isOpen) {
      await new Promise<void>((resolve) => {
        port.close(() => {
          resolve();
        });
      });
    }
    this.events.clear();
  }

  /** Waits out the virtual transmitter, then hands the line to the pty. */
  private async transmit(line: Uint8Array, gen: number): Promise<number> {
    const now = this.timer.now();
    const start = Math.max(now, this.busyUntil);
    this.busyUntil = start + (line.length * 1000 * this.slowdown) / this.bytesPerSecond;
    try {
      await this.timer.sleep(this.busyUntil - now, this.abort.signal);
    } catch {
      // aborted by close(): fall through to the generation check
    }
    const port = this.port;
    if (this.closed) throw new SimError('LINK_CLOSED', `hw-sim: serial link ${this.opts.path} is closed`);
    if (!port || gen !== this.generation) throw new SimError('LINK_DOWN', `hw-sim: serial link ${this.opts.path} went down before the line was sent`);
    await new Promise<void>((resolve, reject) => {
      // serialport queues a write on a port that is closing until an 'open' that never comes (the
      // next connection is a new SerialPort), and never calls back: without these two guards an
      // unplug during a write would stall this link's writes for good.
      const down = (): void => {
        reject(new SimError('LINK_DOWN', `hw-sim: serial link ${this.opts.path} went down during a write`));
      };
      if (!port.isOpen) {
        down();
        return;
      }
      port.once('close', down);
      port.write(Buffer.from(line.buffer, line.byteOffset, line.byteLength), (err) => {
        port.off('close', down);
        if (err) reject(new SimError('LINK_DOWN', `hw-sim: serial link ${this.opts.path}: write failed (${err.message})`, { cause: err }));
        else resolve();
      });
    });
    this.stats.bytesWritten += line.length;
    this.stats.linesWritten++;
    return line.length;
  }

  /** Opens the port, retrying with exponential backoff until it succeeds or the link is closed. */
  private async connectLoop(): Promise<void> {
    const min = this.opts.retryMinMs ?? 20;
    const max = this.opts.retryMaxMs ?? 1000;
    for (let wait = min; !this.closed; wait = Math.min(max, wait * 2)) {
      const port = await this.tryOpen();
      if (port) {
        this.attach(port);
        return;
      }
      try {
        await this.timer.sleep(wait, this.abort.signal);
      } catch {
        return; // closed
      }
    }
  }

  private tryOpen(): Promise<SerialPort | undefined> {
    return new Promise((resolve) => {
      let port: SerialPort;
      try {
        port = new SerialPort({ path: this.opts.path, baudRate: this.opts.baudRate ?? 115_200, autoOpen: false });
      } catch {
        this.stats.openFailures++;
        resolve(undefined);
        return;
      }
      port.open((err) => {
        if (err || this.closed) {
          if (!err) port.close();
          else this.stats.openFailures++;
          resolve(undefined);
        } else {
          resolve(port);
        }
      });
    });
  }

  private attach(port: SerialPort): void {
    this.port = port;
    this.decoder = new LineDecoder(); // bytes of an earlier connection must not join this one's lines
    this.generation++;
    this.busyUntil = 0;
    this.stats.opens++;
    port.on('data', (chunk: Buffer) => {
      this.stats.bytesRead += chunk.length;
      this.deliver(this.decoder.push(chunk));
    });
    // serialport reports an unplug as 'close' with a DisconnectedError and no 'error' (NOTES.md);
    // errors while open are reported on the write that failed, so 'error' needs only a listener.
    port.on('error', () => undefined);
    port.once('close', (err: Error | null) => {
      if (this.port !== port) return; // our own close()
      this.deliver(this.decoder.flush());
      this.stats.disconnects++;
      this.lose(err?.message ?? 'port closed');
      void this.connectLoop();
    });
    this.events.emitUp();
  }

  private lose(reason: string): void {
    if (!this.port) return;
    this.port = undefined;
    this.generation++;
    this.events.emitDown(reason);
  }

}
