/**
 * Packs on USB-serial adapters (issue 6 item 2; docs/protocol.md §5): the SerialTransport watches a
 * list of explicit paths and globs (`/dev/ttyUSB*`, `/dev/serial/by-id/usb-*`) by polling — udev
 * may be absent and `SerialPort.list()` never lists ptys (NOTES.md) — opens every matching port with
 * serialport 13 (on Linux through serial-binding.ts), decodes lines with a fresh LineInput per
 * connection, and reopens after an unplug.
 *
 * Reconnects: a port that closes (unplug: serialport's `close` with a DisconnectedError, NOTES.md)
 * is retried after an exponential backoff with jitter; a path found missing is `absent` and is
 * retried as soon as a poll sees it again, so a replugged adapter reopens within one poll however
 * long the backoff had grown. The backoff resets after a connection that stayed up 10 s, so a port
 * that opens and drops at once backs off instead of spinning. Two names of one device node (a glob
 * match and its by-id link) are opened once; the other is `duplicate`.
 *
 * Nothing a device sends can stop the process: input passes the caps of endpoint.ts (bytes/s,
 * messages/s, line length) before the pipeline sees it, and writes time out, because serialport
 * never calls back a write queued on a port that is closing.
 */
import { realpath, stat } from 'node:fs/promises';
import { resolve as resolvePath } from 'node:path';
import { SerialPortStream } from '@serialport/stream';
import { SerialPort } from 'serialport';
import { encodeLine, MAX_LINE_BYTES, type Message } from '../../protocol/index.js';
import { GatewayError } from '../errors.js';
import { Channel, down, EndpointCounters, InputGate, SafeEvents, sourceText, totals, type RateCaps } from './endpoint.js';
import { expandGlob, hasMagic } from './glob.js';
import { EventLoopLinuxBinding } from './serial-binding.js';
import { LineInput } from './input.js';
import { Backoff, integerIn, positive, type BackoffOptions } from './limits.js';
import type { ChannelEvents, EndpointState, EndpointStatus, Transport, TransportStatus } from './types.js';

export interface SerialTransportOptions {
  /** Explicit paths and globs (`*`, `?`, `[..]` within a path segment; glob.ts). At least one. */
  readonly ports: readonly string[];
  /** Line rate set on real UARTs (default 115200; no effect on a pty). */
  readonly baudRate?: number;
  /** How often globs are expanded and missing paths checked (default 1000 ms). */
  readonly pollMs?: number;
  /** Reconnect backoff (default 100 ms doubling to 5 s, half of each wait jittered). */
  readonly backoff?: BackoffOptions;
  /** Line length cap including LF, 64..4096 (default 4096, protocol MAX_LINE_BYTES). */
  readonly maxLineBytes?: number;
  /** Per-port input caps (default 200 messages/s, 64 KiB/s). */
  readonly rate?: RateCaps;
  /** A write that has not completed by then fails TRANSPORT_WRITE and closes the port (default 5000 ms). */
  readonly writeTimeoutMs?: number;
  /** Jitter source (default Math.random). */
  readonly random?: () => number;
}

/**
 * An open port: on Linux serialport's stream over EventLoopLinuxBinding (serial-binding.ts: reads
 * and writes on the event loop, not libuv's thread pool), elsewhere serialport's own binding.
 */
type Port = SerialPortStream;

/** A connection that lasted this long resets the backoff. */
const STABLE_MS = 10_000;
/** How long close() waits for serialport before giving up on the port. */
const CLOSE_TIMEOUT_MS = 2000;
/** An open that takes longer failed (a tty driver that blocks in open). */
const OPEN_TIMEOUT_MS = 10_000;

class SerialEndpoint {
  readonly id: string;
  readonly source: string;
  readonly counters = new EndpointCounters();
  state: EndpointState = 'absent';
  /** Matched by the last poll (explicit paths: they exist). */
  present = false;
  timer: NodeJS.Timeout | undefined;
  nextAttemptAt: number | undefined;
  port: Port | undefined;
  channel: Channel | undefined;
  input: LineInput | undefined;
  realPath: string | undefined;
  closeReason: string | undefined;

  constructor(
    readonly path: string,
    readonly explicit: boolean,
    readonly gate: InputGate,
    readonly backoff: Backoff,
  ) {
    this.id = `serial:${path}`;
    this.source = sourceText('serial', path);
  }
}

export class SerialTransport implements Transport {
  private readonly literals: string[];
  private readonly globs: string[];
  private readonly pollMs: number;
  private readonly writeTimeoutMs: number;
  private readonly baudRate: number;
  private readonly maxLineBytes: number;
  private readonly endpoints = new Map<string, SerialEndpoint>();
  private readonly inflight = new Set<Promise<void>>();
  private events: SafeEvents | undefined;
  private state: 'idle' | 'running' | 'stopped' = 'idle';
  private pollTimer: NodeJS.Timeout | undefined;
  private polling: Promise<void> | undefined;
  private polls = 0;
  private lastPollError: string | undefined;
  private unwatchFlow: (() => void) | undefined;

  /** Checks the options; throws GatewayError TRANSPORT_CONFIG naming the bad one. */
  constructor(private readonly options: SerialTransportOptions) {
    const given: readonly unknown[] = Array.isArray(options.ports) ? options.ports : [];
    if (given.length === 0) config('ports must list at least one path or glob');
    const ports = given.map((p) => (typeof p === 'string' && p !== '' && !p.includes('\0') ? p : config(`ports entry ${JSON.stringify(p)} is not a path or glob`)));
    this.literals = [...new Set(ports.filter((p) => !hasMagic(p)).map((p) => resolvePath(p)))];
    this.globs = [...new Set(ports.filter((p) => hasMagic(p)))];
    this.baudRate = options.baudRate ?? 115_200;
    integerIn(this.baudRate, 50, 16_000_000, 'baudRate');
    this.pollMs = options.pollMs ?? 1000;
    positive(this.pollMs, 'pollMs');
    this.writeTimeoutMs = options.writeTimeoutMs ?? 5000;
    positive(this.writeTimeoutMs, 'writeTimeoutMs');
    this.maxLineBytes = options.maxLineBytes ?? MAX_LINE_BYTES;
    integerIn(this.maxLineBytes, 64, MAX_LINE_BYTES, 'maxLineBytes');
    new InputGate(options.rate);
    new Backoff(options.backoff);
  }

  /** Polls once (opening what is there) and keeps polling. Throws TRANSPORT_STATE if not new. */
  async start(events: ChannelEvents): Promise<void> {
    if (this.state !== 'idle') throw new GatewayError('TRANSPORT_STATE', `gateway: transport: serial transport is ${this.state}; expected a new transport`);
    this.events = new SafeEvents(events);
    // Back-pressure: every open port stops reading while the pipeline holds input back.
    this.unwatchFlow = events.flow?.watch((held) => {
      for (const ep of this.endpoints.values()) {
        if (ep.port?.isOpen !== true) continue;
        if (held) ep.port.pause();
        else ep.port.resume();
      }
    });
    this.state = 'running';
    await this.pollLoop();
  }

  async stop(): Promise<void> {
    if (this.state === 'stopped') return;
    this.state = 'stopped';
    this.unwatchFlow?.();
    clearTimeout(this.pollTimer);
    await this.polling;
    for (const ep of this.endpoints.values()) clearTimeout(ep.timer);
    await Promise.all([...this.endpoints.values()].map((ep) => (ep.channel ? this.closeChannel(ep, ep.channel, 'transport stopped') : Promise.resolve())));
    await Promise.all([...this.inflight]);
  }

  status(): TransportStatus {
    const endpoints: EndpointStatus[] = [...this.endpoints.values()].map((ep) => ep.counters.status(ep.id, ep.state, ep.channel?.openedAt, ep.nextAttemptAt));
    return {
      kind: 'serial',
      state: this.state,
      endpoints,
      ...totals(endpoints),
      handlerErrors: this.events?.errors ?? 0,
      lastHandlerError: this.events?.lastError,
      detail: { polls: this.polls, patterns: this.literals.length + this.globs.length, lastPollError: this.lastPollError },
    };
  }

  /** A method, so checks after an await are not narrowed away by the compiler. */
  private running(): boolean {
    return this.state === 'running';
  }

  private async pollLoop(): Promise<void> {
    if (!this.running()) return;
    this.polling = this.poll().catch((e: unknown) => {
      this.lastPollError = e instanceof Error ? e.message : String(e);
    });
    await this.polling;
    this.polling = undefined;
    if (this.running()) this.pollTimer = setTimeout(() => void this.pollLoop(), this.pollMs);
  }

  /** Expands the globs, checks explicit paths, and starts an attempt for every path that appeared. */
  private async poll(): Promise<void> {
    this.polls += 1;
    const matched = new Map<string, boolean>();
    for (const p of this.literals) matched.set(p, true);
    for (const g of this.globs) for (const p of await expandGlob(g)) if (!matched.has(p)) matched.set(p, false);
    for (const [path, explicit] of matched) {
      let ep = this.endpoints.get(path);
      if (!ep) {
        ep = new SerialEndpoint(path, explicit, new InputGate(this.options.rate), new Backoff(this.options.backoff, this.options.random));
        this.endpoints.set(path, ep);
      }
      const was = ep.present;
      ep.present = explicit ? await exists(path) : true;
      if (!this.running()) return;
      const appeared = ep.present && !was;
      if ((ep.state === 'absent' && ep.present) || (ep.state === 'waiting' && appeared) || ep.state === 'duplicate') this.launch(ep);
    }
    for (const ep of this.endpoints.values()) {
      if (matched.has(ep.path)) continue;
      ep.present = false;
      if (ep.state === 'waiting' || ep.state === 'duplicate') this.setAbsent(ep);
    }
  }

  private setAbsent(ep: SerialEndpoint): void {
    clearTimeout(ep.timer);
    ep.timer = undefined;
    ep.nextAttemptAt = undefined;
    ep.state = 'absent';
  }

  /** Starts an open attempt now (cancelling a pending backoff), tracked so stop() can wait for it. */
  private launch(ep: SerialEndpoint): void {
    if (!this.running() || ep.state === 'open' || ep.state === 'connecting') return;
    clearTimeout(ep.timer);
    ep.timer = undefined;
    ep.nextAttemptAt = undefined;
    ep.state = 'connecting';
    const p = this.attempt(ep).finally(() => this.inflight.delete(p));
    this.inflight.add(p);
  }

  private schedule(ep: SerialEndpoint): void {
    const wait = ep.backoff.next();
    ep.state = 'waiting';
    ep.nextAttemptAt = Date.now() + wait;
    ep.timer = setTimeout(() => {
      ep.timer = undefined;
      this.launch(ep);
    }, wait);
  }

  private async attempt(ep: SerialEndpoint): Promise<void> {
    let real: string;
    try {
      real = await realpath(ep.path);
    } catch (e) {
      ep.counters.failures += 1;
      ep.counters.lastError = `not present: ${errorText(e)}`;
      ep.present = false;
      this.setAbsent(ep);
      return;
    }
    if (!this.running()) return;
    const holder = [...this.endpoints.values()].find((o) => o !== ep && o.realPath === real && (o.state === 'open' || o.state === 'connecting'));
    if (holder) {
      ep.state = 'duplicate';
      ep.counters.lastError = `same device as ${holder.id}`;
      return;
    }
    ep.realPath = real;
    const opened = await openPort(ep.path, this.baudRate);
    if (!this.running()) {
      if (opened instanceof SerialPortStream) await closePort(opened);
      return;
    }
    if (opened instanceof SerialPortStream) {
      this.attach(ep, opened);
      return;
    }
    ep.realPath = undefined;
    ep.counters.failures += 1;
    ep.counters.lastError = opened.message;
    this.schedule(ep);
  }

  private attach(ep: SerialEndpoint, port: Port): void {
    const events = this.events;
    if (!events) return;
    const ch: Channel = new Channel(ep.id, ep.source, 'serial', (msg) => this.write(ep, ch, msg), (reason) => this.closeChannel(ep, ch, reason), ep.counters);
    ep.port = port;
    ep.channel = ch;
    ep.state = 'open';
    ep.closeReason = undefined;
    ep.counters.connects += 1;
    ep.input = new LineInput(ep.gate, ep.counters, {
      message: (m) => {
        events.message(ch, m);
      },
      reject: (code, detail, raw) => {
        events.reject(ch, code, detail, raw);
      },
    }, this.maxLineBytes);
    port.on('data', (chunk: Buffer) => {
      if (ep.channel === ch) ep.input?.push(chunk);
    });
    if (events.flow?.held === true) port.pause();
    // Errors while open surface on the write that failed or as 'close'; without a listener an
    // 'error' event would be thrown out of the stream and end the process.
    port.on('error', (err: Error) => {
      ep.counters.lastError = err.message;
    });
    port.on('end', () => void this.closeChannel(ep, ch, 'end of input'));
    port.once('close', (err: Error | null) => {
      this.closed(ep, ch, ep.closeReason ?? (err ? `disconnected (${err.message})` : 'port closed'));
    });
    events.open(ch);
  }

  /** The connection is over: report a partial line, fail pending writes, tell the pipeline, retry. */
  private closed(ep: SerialEndpoint, ch: Channel, reason: string): void {
    if (ep.channel !== ch) return;
    ep.input?.end();
    ep.channel = undefined;
    ep.port = undefined;
    ep.input = undefined;
    ep.realPath = undefined;
    ep.counters.disconnects += 1;
    ch.markClosed(reason);
    this.events?.close(ch, reason);
    if (!this.running()) {
      ep.state = 'absent';
      return;
    }
    if (Date.now() - ch.openedAt >= STABLE_MS) ep.backoff.reset();
    this.schedule(ep);
  }

  private async closeChannel(ep: SerialEndpoint, ch: Channel, reason: string): Promise<void> {
    if (ep.channel !== ch) return;
    ep.closeReason = reason;
    const port = ep.port;
    if (port?.isOpen) await closePort(port);
    this.closed(ep, ch, reason);
  }

  private write(ep: SerialEndpoint, ch: Channel, msg: Message): Promise<number> {
    const port = ep.port;
    if (ep.channel !== ch || !port?.isOpen) return Promise.reject(down(ep.id, 'is closed'));
    const line = encodeLine(msg);
    return new Promise<number>((resolve, reject) => {
      let done = false;
      const timer = setTimeout(() => {
        finish(new GatewayError('TRANSPORT_WRITE', `gateway: transport: write to ${ep.id} did not complete in ${this.writeTimeoutMs} ms; closing the port`));
        void this.closeChannel(ep, ch, 'write timed out');
      }, this.writeTimeoutMs);
      const finish = (err?: Error): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        off();
        if (err) reject(err);
        else resolve(line.length);
      };
      const off = ch.whenClosed(() => {
        finish(down(ep.id, 'closed before the message was written'));
      });
      port.write(Buffer.from(line.buffer, line.byteOffset, line.byteLength), (err: Error | null | undefined) => {
        if (!err) {
          finish();
          return;
        }
        finish(new GatewayError('TRANSPORT_WRITE', `gateway: transport: write to ${ep.id} failed: ${err.message}; closing the port`, { cause: err }));
        void this.closeChannel(ep, ch, `write failed (${err.message})`);
      });
    });
  }
}

function config(why: string): never {
  throw new GatewayError('TRANSPORT_CONFIG', `gateway: transport: serial: ${why}`);
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * Opens `path`; resolves with the port or the error (never rejects). An open that has not completed
 * after OPEN_TIMEOUT_MS is an error, and the port is closed should it open later.
 */
function openPort(path: string, baudRate: number): Promise<Port | Error> {
  return new Promise((resolve) => {
    let port: Port;
    try {
      port =
        process.platform === 'linux'
          ? new SerialPortStream({ binding: EventLoopLinuxBinding, path, baudRate, autoOpen: false })
          : new SerialPort({ path, baudRate, autoOpen: false });
    } catch (e) {
      resolve(e instanceof Error ? e : new Error(String(e)));
      return;
    }
    let late = false;
    const timer = setTimeout(() => {
      late = true;
      resolve(new Error(`open did not complete within ${OPEN_TIMEOUT_MS} ms`));
    }, OPEN_TIMEOUT_MS);
    port.open((err) => {
      clearTimeout(timer);
      if (!late) resolve(err ?? port);
      else if (!err) void closePort(port);
    });
  });
}

/** Closes a port, giving up after CLOSE_TIMEOUT_MS (never rejects). */
function closePort(port: Port): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, CLOSE_TIMEOUT_MS);
    port.close(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}
