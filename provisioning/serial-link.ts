/**
 * A pack on a serial port (docs/protocol.md §5), as a PackLink (link.ts): a port opened with
 * serialport 13, one line per message, and a fresh LineDecoder per open (a line left half-read by a
 * previous connection must not be glued to this one's first line). Line noise is delivered as
 * decode errors, not fatal — the protocol resynchronises at the next LF (§5.3). An unplug shows up
 * only as a `close` event with a DisconnectedError (NOTES.md "serialport 13 over a pty"): the link
 * then closes with DEVICE_LOST.
 */
import { SerialPort } from 'serialport';
import { encodeLine, LineDecoder, type Message } from '../protocol/index.js';
import { ProvisioningError } from './errors.js';
import { LinkEvents, type PackLink, type PackLinkEvents } from './link.js';

export interface SerialLinkOptions {
  /** The port path (a tty, a pty link, a /dev/serial/by-id link). */
  readonly path: string;
  /** Line rate (default 115200; no effect on a pty). */
  readonly baudRate?: number;
}

function errnoOf(e: unknown): string {
  const err = e as NodeJS.ErrnoException | undefined;
  return err?.code ?? (e instanceof Error ? e.message : String(e));
}

export class SerialLink implements PackLink {
  private readonly events = new LinkEvents();
  private readonly decoder = new LineDecoder();
  private closing: Promise<void> | undefined;

  private constructor(
    readonly name: string,
    private readonly port: SerialPort,
  ) {
    port.on('data', (chunk: Buffer) => {
      this.events.received(chunk.length, this.decoder.push(chunk));
    });
    port.on('close', (err?: Error & { disconnected?: boolean }) => {
      const why = err?.disconnected === true ? 'the port disconnected (pack unplugged?)' : 'the port closed';
      this.events.close(new ProvisioningError('DEVICE_LOST', `provisioning: ${name}: ${why} during the attempt`, err ? { cause: err } : undefined));
    });
    // serialport emits 'error' for failures without a callback; an unhandled one would crash the station.
    port.on('error', (err: Error) => {
      this.events.close(new ProvisioningError('DEVICE_LOST', `provisioning: ${name}: port error: ${err.message}`, { cause: err }));
    });
  }

  /**
   * Opens the port. Throws ProvisioningError NO_DEVICE when it cannot be opened (no such path,
   * permission denied, not a tty, locked by another program), naming the path and the reason.
   */
  static async open(opts: SerialLinkOptions): Promise<SerialLink> {
    let port: SerialPort;
    try {
      port = new SerialPort({ path: opts.path, baudRate: opts.baudRate ?? 115_200, autoOpen: false });
    } catch (e) {
      throw new ProvisioningError('NO_DEVICE', `provisioning: cannot open ${opts.path}: ${errnoOf(e)}`, { cause: e });
    }
    await new Promise<void>((resolve, reject) => {
      port.open((err) => {
        if (!err) {
          resolve();
          return;
        }
        // serialport says "Error: No such file or directory, cannot open /dev/x": keep the reason.
        const why = err.message.replace(/^Error:\s*/, '').replace(/,\s*cannot open .*$/s, '');
        reject(new ProvisioningError('NO_DEVICE', `provisioning: cannot open ${opts.path}: ${why} (expected a serial port)`, { cause: err }));
      });
    });
    return new SerialLink(opts.path, port);
  }

  attach(events: PackLinkEvents): void {
    this.events.attach(events);
  }

  /** One line. Rejects DEVICE_LOST when the port is gone or the write fails (the link then closes). */
  send(msg: Message): Promise<void> {
    const lost = this.events.lost;
    if (lost) return Promise.reject(lost);
    return new Promise<void>((resolve, reject) => {
      this.port.write(Buffer.from(encodeLine(msg)), (err) => {
        if (!err) {
          resolve();
          return;
        }
        reject(this.events.fail(new ProvisioningError('DEVICE_LOST', `provisioning: ${this.name}: write failed: ${err.message}`, { cause: err })));
      });
    });
  }

  /** Closes the port. Idempotent; never throws. */
  close(): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      this.events.close(new ProvisioningError('DEVICE_LOST', `provisioning: ${this.name}: session closed`));
      if (!this.port.isOpen) {
        resolve();
        return;
      }
      this.port.close(() => {
        resolve();
      });
    });
    return this.closing;
  }
}
