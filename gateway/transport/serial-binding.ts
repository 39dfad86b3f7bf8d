/**
 * serialport's Linux binding with its reads and writes done on the event loop (docs/gateway.md
 * "Serial ports"). @serialport/bindings-cpp opens the port non-blocking (O_NONBLOCK, pinned
 * version) and waits for it with a uv_poll, but then reads and writes with `fs.read` / `fs.write` —
 * a round trip through libuv's thread pool per chunk, and a second one for each read that finds
 * nothing yet (EAGAIN). Here the same non-blocking descriptor is read and written with `readSync` /
 * `writeSync` when the poller says it is ready: one system call that never blocks, no thread hop.
 * Measured with 20 ptys acked at once without verification, gateway CPU per frame 15–22 µs (median
 * 19, 6 runs) → 13.5–18.6 µs (median 15, 12 runs); in the full 20-pty ingest, V8's and libuv's
 * threads 14–17 → 10–11 µs per frame, the main thread taking some of it back (reads are its own).
 *
 * The library's poller also restarts its uv_poll with only the event of the latest request, so a
 * write waiting for room stalled as soon as a read re-armed the poller (and the reverse): `ready`
 * re-arms every pending wait together.
 *
 * Everything else — open with its termios set-up and lock, close, update, set/get of the modem
 * lines, flush, drain — is the library's own port binding, wrapped. The contract of
 * BindingPortInterface holds: a read returns at least one byte; reads and writes in progress when
 * the port closes fail with `canceled` (the poller's cancel); any other error is a disconnect.
 */
import { readSync, writeSync } from 'node:fs';
import {
  LinuxBinding,
  type BindingInterface,
  type BindingPortInterface,
  type LinuxOpenOptions,
  type LinuxPortBinding,
  type PortStatus,
  type SetOptions,
  type UpdateOptions,
} from '@serialport/bindings-cpp';

/** Codes of a non-blocking descriptor that is not ready yet. */
function notReady(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException).code;
  return code === 'EAGAIN' || code === 'EWOULDBLOCK' || code === 'EINTR';
}

/** The poller's event flags (@serialport/bindings-cpp poller.js EVENTS). */
const READABLE = 0b01;
const WRITABLE = 0b10;

function closedError(): Error {
  return Object.assign(new Error('Port is not open'), { canceled: true });
}

/** An open port of EventLoopLinuxBinding. */
export class EventLoopPortBinding implements BindingPortInterface {
  private writing: Promise<void> | null = null;
  /** Events a read or write is waiting for now. */
  private readonly waits = new Set<'readable' | 'writable'>();

  constructor(private readonly port: LinuxPortBinding) {}

  get openOptions(): Required<LinuxOpenOptions> {
    return this.port.openOptions;
  }

  get isOpen(): boolean {
    return this.port.isOpen;
  }

  async read(buffer: Buffer, offset: number, length: number): Promise<{ buffer: Buffer; bytesRead: number }> {
    if (buffer.length < offset + length) throw new RangeError('serial: read buffer is too small');
    for (;;) {
      const fd = this.port.fd;
      if (fd === null) throw closedError();
      let n: number;
      try {
        n = readSync(fd, buffer, offset, length, null);
      } catch (e) {
        if (!notReady(e)) throw e;
        await this.ready('readable');
        continue;
      }
      if (n > 0) return { buffer, bytesRead: n };
      // End of file on a tty: the other side hung up for good (a pty whose master closed).
      throw Object.assign(new Error('serial: end of input (the device hung up)'), { disconnect: true });
    }
  }

  write(buffer: Buffer): Promise<void> {
    if (!this.isOpen) return Promise.reject(closedError());
    const op = this.writeAll(buffer).finally(() => {
      if (this.writing === op) this.writing = null;
    });
    this.writing = op;
    return op;
  }

  private async writeAll(buffer: Buffer): Promise<void> {
    let at = 0;
    while (at < buffer.length) {
      const fd = this.port.fd;
      if (fd === null) throw closedError();
      try {
        at += writeSync(fd, buffer, at, buffer.length - at);
      } catch (e) {
        if (!notReady(e)) throw e;
        await this.ready('writable');
      }
    }
  }

  /**
   * Resolves when the poller reports `event`; rejects with its error (a `canceled` one when the port
   * closes). The library's poller restarts its uv_poll with only the events of the latest request,
   * so a read waiting for input would stop being woken while a write waits for room (and the
   * reverse); every pending wait is therefore re-armed together.
   */
  private ready(event: 'readable' | 'writable'): Promise<void> {
    return new Promise((resolve, reject) => {
      this.waits.add(event);
      this.port.poller.once(event, (err: Error | null) => {
        this.waits.delete(event);
        if (err) reject(err);
        else resolve();
      });
      if (this.waits.size === 2) this.port.poller.poll(READABLE | WRITABLE);
    });
  }

  close(): Promise<void> {
    return this.port.close();
  }

  update(options: UpdateOptions): Promise<void> {
    return this.port.update(options);
  }

  set(options: SetOptions): Promise<void> {
    return this.port.set(options);
  }

  get(): Promise<PortStatus> {
    return this.port.get();
  }

  getBaudRate(): Promise<{ baudRate: number }> {
    return this.port.getBaudRate();
  }

  flush(): Promise<void> {
    return this.port.flush();
  }

  async drain(): Promise<void> {
    await this.writing?.catch(() => undefined);
    await this.port.drain();
  }
}

/** The binding: open and list are the library's Linux binding; reads and writes as above. */
export const EventLoopLinuxBinding: BindingInterface<EventLoopPortBinding, LinuxOpenOptions> = {
  list: () => LinuxBinding.list(),
  open: async (options) => new EventLoopPortBinding(await LinuxBinding.open(options)),
};
