/**
 * The protocol side of the simulated BMU firmware (issue 4 items 2–3; docs/hw-sim.md §3):
 * every `periodMs` of device time it measures the battery (a `Sensor`), signs a state-of-health
 * frame with the key that never leaves flash (COSE_Sign1 via @noble, DESIGN.md decision 5), stores
 * it in the resend ring *before* sending it, and sends it over a `DeviceLink`. Acks free the ring;
 * a new session (link up, or the host's `hello` request) resends every unacknowledged frame from
 * the oldest, and an ack that skips a frame sent earlier in the session resends it (sender.ts).
 * Requests are answered by commands.ts; flash.ts keeps everything that must survive power cuts.
 *
 * Time never comes from the wall clock here: `tick(nowMs)` advances device time (tests call it
 * directly; a fleet can accelerate it), and `clock` gives device time for request-driven frames.
 * State changes run on one promise queue so ticks, acks and requests never interleave; sending
 * runs outside it (a slow or stalled link must not stop the device from measuring and storing).
 */
import { COSE_ALG, encodeFrame, sha256, signSign1, toHex, type AckRange, type DeviceKeyAlg, type HelloInfo, type Message, type SohFrame } from '../protocol/index.js';
import { handleRequest, type CommandHost, type RandomBytes } from './commands.js';
import { SimError } from './errors.js';
import { DeviceFlash } from './flash.js';
import type { DeviceLink, Unsubscribe } from './link.js';
import type { RingEntry } from './ring.js';
import { FrameSender } from './sender.js';

/** What a sensor measures: a frame without the fields the firmware fills in. */
export type SensorReading = Omit<SohFrame, 'v' | 'serial' | 'counter' | 'time' | 'firmware'>;

/** The battery as the firmware sees it (hw-sim/model.ts implements it; tests use simple ones). */
export interface Sensor {
  measure(nowMs: number): SensorReading;
  /** JSON-serialisable state saved to flash with the counter reservation and on clean shutdown. */
  snapshot?(): unknown;
}

/** Ground truth for loss and duplicate checks: one call per frame produced, after it is durable. */
export interface ProducedFrame {
  readonly serial: string;
  readonly counter: number;
  readonly coseSha256hex: string;
  /** Device time (ms) the frame was produced for. */
  readonly producedAt: number;
}

/** A frame that will never be delivered: dropped by a full ring, or wiped by a forced keygen. */
export interface DiscardedFrame {
  readonly serial: string;
  readonly counter: number;
  readonly reason: 'ring-full' | 'rekey';
}

export interface FirmwareOptions {
  readonly flash: DeviceFlash;
  readonly link: DeviceLink;
  readonly sensor: Sensor;
  /** Device time, ms since the Unix epoch (for request-driven frames and schedule starts). */
  readonly clock: () => number;
  readonly random: RandomBytes;
  /** Frame period in device ms (default 1000). */
  readonly periodMs?: number;
  /** Added to the device time written into frames (the clock-skew fault). */
  readonly clockSkewMs?: number;
  /** Most frames one tick produces when device time jumped (default 1000); the rest are skipped. */
  readonly maxCatchUp?: number;
  readonly onFrameProduced?: (f: ProducedFrame) => void;
  readonly onFrameDiscarded?: (f: DiscardedFrame) => void;
}

export interface FirmwareStats {
  framesProduced: number;
  /** F transmissions, resends included. */
  framesSent: number;
  /** Transmissions of a frame already sent since boot, or held in flash at boot. */
  framesResent: number;
  framesAcked: number;
  /** Oldest unacknowledged frames overwritten by a full ring. */
  framesDropped: number;
  /** Unacknowledged frames wiped by a forced keygen. */
  framesWiped: number;
  messagesSent: number;
  bytesSent: number;
  /** Sends that failed because the link went down (the frames stay in the ring). */
  sendFailures: number;
  requests: number;
  /** Responses by status ("ok", "EXISTS", ...). */
  responses: Record<string, number>;
  /** Rejected input from the host by code (LINE_CRC, LINE_GARBAGE, MSG_MALFORMED, MSG_DIRECTION, ...). */
  badInput: Record<string, number>;
  noticesReceived: number;
  /** Sessions started (link up or hello request). */
  sessions: number;
  reboots: number;
  /** Frame periods skipped because device time jumped more than maxCatchUp periods. */
  skippedPeriods: number;
}

export class Firmware implements CommandHost {
  readonly stats: FirmwareStats = {
    framesProduced: 0, framesSent: 0, framesResent: 0, framesAcked: 0, framesDropped: 0, framesWiped: 0,
    messagesSent: 0, bytesSent: 0, sendFailures: 0, requests: 0, responses: {}, badInput: {},
    noticesReceived: 0, sessions: 0, reboots: 0, skippedPeriods: 0,
  };
  readonly random: RandomBytes;
  private flashNow: DeviceFlash;
  private readonly link: DeviceLink;
  private readonly opts: FirmwareOptions;
  private skew: number;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly unsubscribe: Unsubscribe[];
  private nextDue: number | undefined;
  private pendingTick: { now: number; done: Promise<void> } | undefined;
  private readonly sender: FrameSender;
  private stopped = false;
  private rebooting = false;
  private dropsUnreported = 0;
  /** Whether this session has had its BUFFER_FULL notice. */
  private dropsNoticed = false;
  /** The last sensor reading signed (the content of out-of-band frames, faults.ts). */
  private lastReading: SensorReading | undefined;

  private constructor(opts: FirmwareOptions) {
    this.opts = opts;
    this.flashNow = opts.flash;
    this.link = opts.link;
    this.random = opts.random;
    this.skew = opts.clockSkewMs ?? 0;
    this.sender = new FrameSender({
      ring: () => this.flashNow.ring,
      canSend: () => this.link.isUp && !this.stopped && !this.rebooting,
      send: (msg) => this.sendSafe(msg),
      onFrameSent: (resend) => {
        this.stats.framesSent++;
        if (resend) this.stats.framesResent++;
      },
    });
    this.adoptFlash();
    this.nextDue = opts.clock() + this.periodMs;
    const l = opts.link;
    this.unsubscribe = [
      l.onMessage((m) => { this.onMessage(m); }),
      l.onBadInput((code) => { this.countBad(code); }),
      l.onUp(() => { if (!this.rebooting) this.startSession(true); }),
      l.onDown(() => { this.endSession(); }),
    ];
  }

  /** Boots the firmware on an opened flash: listens to the link and, if it is up, says hello. */
  static boot(opts: FirmwareOptions): Firmware {
    const fw = new Firmware(opts);
    if (opts.link.isUp) fw.startSession(true);
    return fw;
  }

  get flash(): DeviceFlash {
    return this.flashNow;
  }

  get periodMs(): number {
    return this.opts.periodMs ?? 1000;
  }

  /** Changes the skew added to frame times (the clock-skew fault). */
  setClockSkew(ms: number): void {
    this.skew = ms;
  }

  get clockSkew(): number {
    return this.skew;
  }

  /**
   * Fault injection only (faults.ts, counter rollback): signs a frame carrying `counter` for device
   * time `at` with the device key and the last reading, outside the counter, the ring and the ground
   * truth — the bytes a BMU restored from an old flash image would emit; nothing the firmware keeps
   * changes. Undefined while the device is not provisioned.
   */
  signOutOfBand(counter: number, at: number): Promise<Uint8Array | undefined> {
    return this.enqueue(() => Promise.resolve(this.provisioned ? this.sign(counter, at, this.lastReading ?? this.opts.sensor.measure(at)) : undefined));
  }

  /**
   * A reset as the `reboot` op does it, without the request (the reboot fault): flash closed and
   * read back, then a new session. False when stopped or already rebooting.
   */
  async restart(): Promise<boolean> {
    if (this.stopped || this.rebooting) return false;
    this.rebooting = true;
    await this.reboot();
    return true;
  }

  /** True once the device has a key and a certificate chain: only then does it produce frames. */
  get provisioned(): boolean {
    const id = this.flashNow.identity;
    return id.alg !== null && id.chain.length > 0;
  }

  hello(): HelloInfo {
    const id = this.flashNow.identity;
    return {
      version: 1,
      serial: id.serial,
      model: id.model,
      firmware: id.firmware,
      alg: id.alg === null ? null : (COSE_ALG[id.alg] as DeviceKeyAlg),
      publicKey: id.publicKey,
      chain: [...id.chain],
      nextCounter: this.flashNow.nextCounter,
      unacked: this.flashNow.ring.size,
    };
  }

  /**
   * Advances device time to `nowMs`, producing one frame per elapsed period (at most maxCatchUp).
   * Ticks that arrive while one is still waiting in the queue merge into it (the latest time wins),
   * so a device whose storage is slow falls behind by one tick, not by a growing backlog.
   */
  tick(nowMs: number): Promise<void> {
    if (this.pendingTick) {
      this.pendingTick.now = Math.max(this.pendingTick.now, nowMs);
      return this.pendingTick.done;
    }
    const pending = { now: nowMs, done: Promise.resolve() };
    this.pendingTick = pending;
    pending.done = this.enqueue(async () => {
      this.pendingTick = undefined;
      await this.advance(pending.now);
    });
    return pending.done;
  }

  private async advance(nowMs: number): Promise<void> {
    if (this.stopped || this.rebooting) return;
    if (!this.provisioned) return;
    this.nextDue ??= nowMs + this.periodMs;
    const max = this.opts.maxCatchUp ?? 1000;
    for (let n = 0; this.nextDue <= nowMs && n < max; n++) {
      await this.produce(this.nextDue);
      this.nextDue += this.periodMs;
    }
    if (this.nextDue <= nowMs) {
      const skipped = Math.floor((nowMs - this.nextDue) / this.periodMs) + 1;
      this.stats.skippedPeriods += skipped;
      this.nextDue += skipped * this.periodMs;
    }
  }

  /** CommandHost: a frame for `selftest`, produced now (already inside the queue). */
  produceNow(): Promise<Uint8Array> {
    return this.produce(this.opts.clock());
  }

  /** Waits for queued work, detaches from the link and closes flash cleanly (exact counter saved). */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const u of this.unsubscribe) u();
    this.endSession();
    await this.queue;
    await this.flashNow.close();
  }

  private enqueue<T>(op: () => Promise<T>): Promise<T> {
    const p = this.queue.then(op);
    this.queue = p.catch(() => undefined);
    return p;
  }

  /** Makes the current flash's state the firmware's: resend bookkeeping and the sensor snapshot. */
  private adoptFlash(): void {
    this.sender.adopt(this.flashNow.ring);
    const sensor = this.opts.sensor;
    this.flashNow.setSensorSource(sensor.snapshot ? () => sensor.snapshot?.() : undefined);
  }

  /** A signed frame of `reading` with `counter` for device time `at`. Throws when not provisioned (a firmware bug). */
  private sign(counter: number, at: number, reading: SensorReading): Uint8Array {
    const id = this.flashNow.identity;
    const secretKey = this.flashNow.secretKey();
    if (id.alg === null || id.kid === null || !secretKey || id.serial === '') throw new Error('produce: device not provisioned');
    // Fixed fields last, so a sensor can never override the serial, counter or time.
    const payload = encodeFrame({ ...reading, v: 1, serial: id.serial, counter, time: Math.max(0, Math.round(at + this.skew)), firmware: id.firmware });
    return signSign1({ alg: id.alg, kid: id.kid, payload, secretKey });
  }

  private async produce(at: number): Promise<Uint8Array> {
    const flash = this.flashNow;
    const id = flash.identity;
    if (!this.provisioned || id.serial === '') throw new Error('produce: device not provisioned');
    const counter = await flash.takeCounter();
    const reading = this.opts.sensor.measure(at);
    this.lastReading = reading;
    const cose = this.sign(counter, at, reading);
    const dropped = await flash.appendFrame({ counter, cose, producedAt: at });
    this.stats.framesProduced++;
    this.opts.onFrameProduced?.({ serial: id.serial, counter, coseSha256hex: toHex(sha256(cose)), producedAt: at });
    if (dropped.length > 0) {
      this.stats.framesDropped += dropped.length;
      this.dropsUnreported += dropped.length;
      this.discarded(dropped, 'ring-full', id.serial);
      // One notice per session: a host that never acks would otherwise get one with every frame.
      if (this.link.isUp && !this.dropsNoticed) this.reportDrops();
    }
    this.sender.wake();
    return cose;
  }

  private discarded(entries: readonly RingEntry[], reason: DiscardedFrame['reason'], serial: string): void {
    this.sender.forget(entries.map((e) => e.counter));
    for (const e of entries) this.opts.onFrameDiscarded?.({ serial, counter: e.counter, reason });
  }

  private reportDrops(): void {
    const n = this.dropsUnreported;
    this.dropsUnreported = 0;
    this.dropsNoticed = true;
    void this.sendSafe({ type: 'error', code: 'BUFFER_FULL', message: `resend buffer full: ${n} oldest unacknowledged frame(s) dropped` });
  }

  private onMessage(msg: Message): void {
    switch (msg.type) {
      case 'ack':
        void this.enqueue(() => this.onAck(msg.ranges));
        return;
      case 'request':
        this.stats.requests++;
        void this.enqueue(() => this.onRequest(msg));
        return;
      case 'error':
        this.stats.noticesReceived++;
        return;
      default:
        this.countBad('MSG_DIRECTION'); // F, H and R travel device → host only (docs/protocol.md §4.1)
    }
  }

  private countBad(code: string): void {
    this.stats.badInput[code] = (this.stats.badInput[code] ?? 0) + 1;
  }

  private async onAck(ranges: readonly AckRange[]): Promise<void> {
    const freed = await this.flashNow.free(ranges);
    if (freed.length === 0) return;
    this.stats.framesAcked += freed.length;
    this.sender.acked(freed);
  }

  private async onRequest(msg: Extract<Message, { type: 'request' }>): Promise<void> {
    const serialBefore = this.flashNow.identity.serial;
    const out = await handleRequest(this, msg);
    const status = out.response.status;
    this.stats.responses[status] = (this.stats.responses[status] ?? 0) + 1;
    const sending = this.sendSafe(out.response);
    switch (out.after) {
      case 'session':
        this.startSession(false);
        break;
      case 'rekeyed':
        this.nextDue = undefined;
        this.stats.framesWiped += out.wiped?.length ?? 0;
        this.discarded(out.wiped ?? [], 'rekey', serialBefore);
        break;
      case 'provisioned':
        this.nextDue = this.opts.clock() + this.periodMs; // the first frame one period after setchain
        break;
      case 'reboot':
        // Reboot after the response is on the wire, outside the queue this request runs in.
        this.rebooting = true;
        void sending.then(() => this.reboot());
        break;
      case 'none':
        break;
    }
  }

  /** A controlled reset: flash is closed and read back as at power-on, then the device says hello. */
  private async reboot(): Promise<void> {
    await this.enqueue(async () => {
      if (this.stopped) return; // stop() closed flash while the response was still on its way
      const options = this.flashNow.options;
      await this.flashNow.close();
      this.flashNow = await DeviceFlash.open(options);
      this.adoptFlash();
      this.nextDue = this.opts.clock() + this.periodMs;
      this.stats.reboots++;
    });
    this.rebooting = false;
    if (this.link.isUp && !this.stopped) this.startSession(true);
  }

  /** A host may be listening from now on: hello (unless the host just got one), then everything unacked. */
  private startSession(sendHello: boolean): void {
    if (this.stopped) return;
    this.stats.sessions++;
    this.dropsNoticed = false;
    // The hello goes to the link before the sender's first frame: the link writes in call order.
    if (sendHello) void this.sendSafe({ type: 'hello', ...this.hello() });
    if (this.dropsUnreported > 0) this.reportDrops();
    this.sender.startSession();
  }

  private endSession(): void {
    this.sender.endSession();
  }

  /** Sends a message; link failures are counted, not thrown (the frames stay in the ring). */
  private async sendSafe(msg: Message): Promise<boolean> {
    try {
      const bytes = await this.link.send(msg);
      this.stats.messagesSent++;
      this.stats.bytesSent += bytes;
      return true;
    } catch (e) {
      if (e instanceof SimError && (e.code === 'LINK_DOWN' || e.code === 'LINK_CLOSED')) {
        this.stats.sendFailures++;
        return false;
      }
      throw e;
    }
  }
}
