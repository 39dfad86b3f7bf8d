/**
 * Fault injection on one simulated pack (issue 4 item 5; docs/hw-sim.md §5). A `DeviceFaults`
 * attaches to a fleet device and breaks things the way the field does — noise on the line, a forger
 * on the bus, a pack restored from an old flash image, a cable pulled — each appearing on the wire
 * exactly as docs/protocol.md says such a thing would, so a gateway can be tested against it.
 *
 * It stays outside the firmware: message faults go through the link's `tamper` hook (which sees
 * every outgoing message after encoding), raw bytes through `sendRaw`, counter rollback through
 * `Firmware.signOutOfBand`; the firmware's ring, counter and ground truth are never touched, so a
 * fault can cost a resend but never a genuine frame. Forged and rolled-back frames are extra
 * transmissions that the ground truth does not list: faults.jsonl does (`FaultRecord`).
 *
 * Every injection resolves to exactly one record: applied (with what was done, e.g. the counter and
 * SHA-256 of a forged copy) or skipped (with why: link down, not provisioned, already unplugged).
 * Faults that last (unplug, ble-drop, slow-link, clock-skew, BLE reboot) record when they start and
 * undo themselves after their duration on the injected timer.
 */
import { decodeFrame, parseSign1, sha256, toHex, type Message } from '../protocol/index.js';
import { BleDeviceLink } from './ble-link.js';
import { SimError } from './errors.js';
import { bleCodec, flipSignatureBit, resignWithRandomKey, serialCodec, type CorruptPart, type Damage, type FaultDetail, type WireCodec } from './faults-wire.js';
import type { SimDevice } from './fleet.js';
import type { Random } from './random.js';
import { realTimer, SerialDeviceLink, type LinkTimer } from './serial-link.js';

export const FAULT_KINDS = [
  'corrupt', 'garbage', 'truncate', 'oversize', 'bad-signature', 'wrong-key', 'replay', 'duplicate',
  'counter-rollback', 'clock-skew', 'unplug', 'ble-drop', 'slow-link', 'reboot',
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];
/** How a pack talks to its host. */
export type PackTransport = 'serial' | 'ble';

/** Where each kind exists: a pty cannot drop a radio link, a radio has no cable to pull. */
const BOTH: readonly PackTransport[] = ['serial', 'ble'];
export const FAULT_TRANSPORTS: Readonly<Record<FaultKind, readonly PackTransport[]>> = Object.freeze({
  corrupt: BOTH, garbage: BOTH, truncate: BOTH, oversize: BOTH, 'bad-signature': BOTH, 'wrong-key': BOTH, replay: BOTH,
  duplicate: BOTH, 'counter-rollback': BOTH, 'clock-skew': BOTH, unplug: ['serial'], 'ble-drop': ['ble'], 'slow-link': BOTH, reboot: BOTH,
});

/** A fault with optional parameters; what is left out is drawn from the fault's seeded stream. */
export type Fault =
  | { readonly kind: 'corrupt'; readonly part?: CorruptPart }
  | { readonly kind: 'truncate' | 'duplicate' | 'bad-signature' | 'wrong-key' }
  | { readonly kind: 'garbage' | 'oversize' | 'replay' }
  | { readonly kind: 'counter-rollback'; readonly n?: number }
  | { readonly kind: 'clock-skew'; readonly skewMs?: number; readonly durationMs?: number }
  | { readonly kind: 'unplug' | 'ble-drop' | 'reboot'; readonly downMs?: number }
  | { readonly kind: 'slow-link'; readonly factor?: number; readonly durationMs?: number };

export interface FaultRecord {
  /** Device time (ms since the epoch) when the fault hit the wire or was given up. */
  readonly at: number;
  readonly wallMs: number;
  readonly label: string;
  readonly kind: FaultKind;
  /** False when nothing happened on the wire; `detail.skipped` says why. */
  readonly applied: boolean;
  /** This pack's applied faults of this kind so far, this one included. */
  readonly count: number;
  readonly detail: FaultDetail;
}

export interface DeviceFaultsOptions {
  /** The stream manual injections fork from (one fork per fault, so draws never interleave). */
  readonly random: Random;
  /** Device time for records. */
  readonly clock: () => number;
  /** Wall time for records (default Date.now). */
  readonly wallClock?: () => number;
  /** Waits before a lasting fault is undone (default realTimer()). */
  readonly timer?: LinkTimer;
  readonly onRecord?: (record: FaultRecord) => void;
}

/** Faults waiting for the next frame, per pack; more are skipped (a pack that sends nothing). */
const MAX_PENDING = 8;
/** Frames remembered as sent, for replay. */
const ARCHIVE = 64;
/** Tries at undoing a lasting fault, and the wait between them. */
const RESTORE_ATTEMPTS = 3;
const RESTORE_RETRY_MS = 250;

type FrameFault = Extract<Fault, { kind: 'corrupt' | 'truncate' | 'duplicate' | 'bad-signature' | 'wrong-key' }>;
interface Pending {
  readonly fault: FrameFault;
  readonly r: Random;
  readonly resolve: (rec: FaultRecord) => void;
}

function fail(message: string): never {
  throw new SimError('FAULT_ARGUMENT', `hw-sim: ${message}`);
}

/** An integer in [lo, hi]. */
function int(r: Random, lo: number, hi: number): number {
  return lo + Math.floor(r.next() * (hi - lo + 1));
}

const hex256 = (b: Uint8Array): string => toHex(sha256(b));

export class DeviceFaults {
  readonly label: string;
  readonly transport: PackTransport;
  /** Applied faults by kind. */
  readonly applied: Partial<Record<FaultKind, number>> = {};
  readonly skipped: Partial<Record<FaultKind, number>> = {};
  /** Lasting faults whose undo failed (e.g. socat would not restart); the last message is kept. */
  restoreFailures = 0;
  lastRestoreError: string | undefined;
  private readonly link: SerialDeviceLink | BleDeviceLink;
  private readonly codec: WireCodec;
  private readonly timer: LinkTimer;
  private readonly pending: Pending[] = [];
  private readonly archive = new Map<number, Uint8Array>();
  /** Frames this class sent itself (replays, rollbacks): the tamper hook leaves them alone. */
  private readonly injected = new WeakSet<Uint8Array>();
  private readonly restores = new Set<Promise<void>>();
  private readonly abort = new AbortController();
  private readonly active = new Set<'unplug' | 'radio' | 'slow' | 'skew'>();
  private readonly baseSkew: number;
  private readonly hook = (msg: Message, units: readonly Uint8Array[]): Uint8Array[] | undefined => this.onWire(msg, units);
  private stopped = false;

  /** Attaches to the device's link. Throws FAULT_ARGUMENT for a link that is neither serial nor BLE. */
  constructor(
    readonly device: SimDevice,
    private readonly opts: DeviceFaultsOptions,
  ) {
    this.label = device.endpoint.label;
    const link = device.ble ?? device.link;
    if (link instanceof BleDeviceLink) {
      this.transport = 'ble';
      this.codec = bleCodec(link.handle.maxChunk);
    } else if (link instanceof SerialDeviceLink) {
      this.transport = 'serial';
      this.codec = serialCodec();
    } else {
      fail(`pack ${this.label}: faults need a serial or BLE link`);
    }
    this.link = link;
    this.timer = opts.timer ?? realTimer();
    this.baseSkew = device.firmware.clockSkew;
    link.tamper = this.hook;
  }

  /** Faults waiting for the next frame. */
  get pendingCount(): number {
    return this.pending.length;
  }

  /**
   * Injects one fault; resolves with its record once it has hit the wire (frame faults: when the
   * next frame goes out) or has been skipped. Rejects with FAULT_ARGUMENT for an unknown kind, a kind
   * this transport does not have, or a bad parameter. `random` defaults to a fork of the options' stream.
   */
  async inject(fault: Fault | FaultKind, random?: Random): Promise<FaultRecord> {
    const f: Fault = typeof fault === 'string' ? { kind: fault } : fault;
    this.check(f);
    const r = random ?? this.opts.random.fork(f.kind);
    if (this.stopped) return this.skip(f.kind, 'fault injection stopped');
    const fw = this.device.firmware;
    switch (f.kind) {
      case 'corrupt':
      case 'truncate':
      case 'duplicate':
      case 'bad-signature':
      case 'wrong-key':
        if (!fw.provisioned) return this.skip(f.kind, 'not provisioned: no frames to tamper with');
        if (this.pending.length >= MAX_PENDING) return this.skip(f.kind, `${MAX_PENDING} faults already wait for a frame`);
        return new Promise((resolve) => this.pending.push({ fault: f, r, resolve }));
      case 'garbage':
      case 'oversize': {
        const d = f.kind === 'garbage' ? this.codec.garbage(r) : this.codec.oversize(r);
        return (await this.sendRaw(d.units)) ? this.record(f.kind, d.detail) : this.skip(f.kind, 'link down');
      }
      case 'replay': {
        const ring = fw.flash.ring;
        const acked = [...this.archive.keys()].filter((c) => !ring.has(c));
        const counter = acked[int(r, 0, acked.length - 1)];
        const cose = counter === undefined ? undefined : this.archive.get(counter);
        if (counter === undefined || !cose) return this.skip(f.kind, 'no acknowledged frame seen yet');
        return (await this.sendFrames([cose])) ? this.record(f.kind, { counter, sha256: hex256(cose) }) : this.skip(f.kind, 'link down');
      }
      case 'counter-rollback':
        return this.rollback(f.n ?? int(r, 1, 4));
      case 'clock-skew': {
        if (this.active.has('skew')) return this.skip(f.kind, 'clock already skewed');
        const skewMs = f.skewMs ?? (r.next() < 0.5 ? -1 : 1) * int(r, 60_000, 86_400_000);
        const durationMs = f.durationMs ?? 60_000;
        fw.setClockSkew(this.baseSkew + skewMs);
        this.lasting('skew', durationMs, () => { fw.setClockSkew(this.baseSkew); });
        return this.record(f.kind, { skewMs, durationMs });
      }
      case 'slow-link': {
        if (this.active.has('slow')) return this.skip(f.kind, 'link already slowed');
        const factor = f.factor ?? int(r, 2, 20);
        const durationMs = f.durationMs ?? int(r, 5_000, 30_000);
        this.link.setSlowdown(factor);
        this.lasting('slow', durationMs, () => { this.link.setSlowdown(1); });
        return this.record(f.kind, { factor, durationMs });
      }
      case 'unplug': {
        const pty = this.device.pty;
        if (!pty) return this.skip(f.kind, 'no pty: the pack has no cable to pull');
        if (this.active.has('unplug')) return this.skip(f.kind, 'already unplugged');
        const downMs = f.downMs ?? int(r, 500, 5_000);
        this.active.add('unplug');
        await pty.stop();
        this.lasting('unplug', downMs, () => pty.restart());
        return this.record(f.kind, { downMs });
      }
      case 'ble-drop': {
        const handle = this.device.ble?.handle;
        if (!handle) return this.skip(f.kind, 'no BLE radio');
        if (this.active.has('radio')) return this.skip(f.kind, 'link already dropped');
        const downMs = f.downMs ?? int(r, 500, 5_000);
        this.active.add('radio');
        handle.dropLink();
        this.lasting('radio', downMs, () => { handle.comeBack(); });
        return this.record(f.kind, { downMs });
      }
      case 'reboot':
        return this.reboot(f.downMs ?? int(r, 200, 2_000));
    }
  }

  /** Resolves when every lasting fault started so far has been undone. */
  async settled(): Promise<void> {
    while (this.restores.size > 0) await Promise.allSettled([...this.restores]);
  }

  /**
   * Stops injecting: waiting frame faults are skipped, lasting faults are not undone (the owner is
   * tearing the device down), running undos are awaited, and the link's tamper hook is removed.
   */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.abort.abort();
    for (const p of this.pending.splice(0)) p.resolve(this.skip(p.fault.kind, 'stopped before a frame went out'));
    await this.settled();
    if (this.link.tamper === this.hook) this.link.tamper = undefined;
  }

  private check(f: Fault): void {
    if (!(FAULT_KINDS as readonly string[]).includes(f.kind)) fail(`unknown fault kind ${JSON.stringify(f.kind)} (known: ${FAULT_KINDS.join(', ')})`);
    if (!FAULT_TRANSPORTS[f.kind].includes(this.transport)) fail(`fault ${f.kind} does not exist on a ${this.transport} pack (${this.label})`);
    const params = f as Partial<Record<string, unknown>>;
    const num = (key: string, ok: (v: number) => boolean, expected: string): void => {
      const v = params[key];
      if (v !== undefined && !(typeof v === 'number' && ok(v))) fail(`fault ${f.kind}: ${key} must be ${expected}, got ${JSON.stringify(v)}`);
    };
    const finite = (v: number): boolean => Number.isFinite(v) && v >= 0;
    num('downMs', finite, 'a duration in ms ≥ 0');
    num('durationMs', finite, 'a duration in ms ≥ 0');
    num('factor', (v) => Number.isFinite(v) && v >= 1, 'a finite factor ≥ 1');
    num('n', (v) => Number.isSafeInteger(v) && v >= 1 && v <= 1000, 'an integer 1..1000');
    num('skewMs', Number.isSafeInteger, 'an integer number of ms');
    const part = params.part;
    const parts = this.transport === 'serial' ? ['body', 'crc'] : ['data', 'sequence'];
    if (part !== undefined && !(typeof part === 'string' && parts.includes(part))) fail(`fault corrupt on a ${this.transport} pack: part must be ${parts.join(' or ')}, got ${JSON.stringify(part)}`);
  }

  /** The tamper hook: remembers every genuine frame; applies the oldest waiting frame fault. */
  private onWire(msg: Message, units: readonly Uint8Array[]): Uint8Array[] | undefined {
    if (msg.type !== 'frame' || this.injected.has(msg.cose)) return undefined;
    const counter = decodeFrame(parseSign1(msg.cose).payload).counter;
    this.archive.delete(counter);
    this.archive.set(counter, msg.cose);
    if (this.archive.size > ARCHIVE) this.archive.delete(this.archive.keys().next().value ?? counter);
    const p = this.pending.shift();
    if (!p) return undefined;
    const d = this.damage(p, msg.cose, units);
    p.resolve(this.record(p.fault.kind, { counter, ...d.detail }));
    return d.units;
  }

  private damage(p: Pending, cose: Uint8Array, units: readonly Uint8Array[]): Damage {
    const genuine = hex256(cose);
    switch (p.fault.kind) {
      case 'corrupt':
        return this.codec.corrupt(units, p.r, p.fault.part);
      case 'truncate':
        return this.codec.truncate(units, p.r);
      case 'duplicate':
        return { units: [...units, ...units], detail: { sha256: genuine } };
      case 'bad-signature':
      case 'wrong-key': {
        // The forged copy goes first, then the genuine frame: a gateway that accepted the forgery
        // would then see the genuine frame as a conflicting duplicate.
        const flipped = p.fault.kind === 'bad-signature' ? flipSignatureBit(cose, p.r) : undefined;
        const forged = flipped?.cose ?? resignWithRandomKey(cose, p.r);
        const detail: FaultDetail = { sha256: hex256(forged), genuineSha256: genuine, ...(flipped ? { bit: flipped.bit } : {}) };
        return { units: [...this.codec.encode({ type: 'frame', cose: forged }), ...units], detail };
      }
    }
  }

  /**
   * Frames with the n counters just below the oldest unacknowledged one (all acknowledged already,
   * so even a gateway that wrongly accepts them cannot make the pack free a genuine frame), signed
   * with the device key, with new content: device time later than any genuine frame.
   */
  private async rollback(n: number): Promise<FaultRecord> {
    const fw = this.device.firmware;
    const base = fw.flash.ring.firstAfter(-1)?.counter ?? fw.flash.nextCounter;
    const counters: number[] = [];
    for (let c = Math.max(0, base - n); c < base; c++) counters.push(c);
    if (counters.length === 0) return this.skip('counter-rollback', 'no counter below the oldest unacknowledged frame');
    const now = this.opts.clock();
    const frames: Uint8Array[] = [];
    for (const [i, c] of counters.entries()) {
      const cose = await fw.signOutOfBand(c, now + 1 + i);
      if (!cose) return this.skip('counter-rollback', 'not provisioned: no key to sign with');
      frames.push(cose);
    }
    if (!(await this.sendFrames(frames))) return this.skip('counter-rollback', 'link down');
    return this.record('counter-rollback', { counters, sha256: frames.map(hex256) });
  }

  /** Serial: the firmware resets, the USB-UART stays. BLE: the radio goes with it, so the host must reconnect. */
  private async reboot(downMs: number): Promise<FaultRecord> {
    const fw = this.device.firmware;
    const handle = this.device.ble?.handle;
    const radio = handle !== undefined && !this.active.has('radio');
    if (radio) {
      this.active.add('radio');
      handle.dropLink();
    }
    const ok = await fw.restart();
    if (radio) this.lasting('radio', ok ? downMs : 0, () => { handle.comeBack(); });
    if (!ok) return this.skip('reboot', 'firmware stopped or already rebooting');
    return this.record('reboot', radio ? { downMs } : {});
  }

  private async sendRaw(units: readonly Uint8Array[]): Promise<boolean> {
    if (!this.link.isUp) return false;
    try {
      await this.link.sendRaw(units);
      return true;
    } catch (e) {
      if (e instanceof SimError && (e.code === 'LINK_DOWN' || e.code === 'LINK_CLOSED')) return false;
      throw e;
    }
  }

  private async sendFrames(frames: readonly Uint8Array[]): Promise<boolean> {
    if (!this.link.isUp) return false;
    try {
      for (const cose of frames) {
        this.injected.add(cose);
        await this.link.send({ type: 'frame', cose });
      }
      return true;
    } catch (e) {
      if (e instanceof SimError && (e.code === 'LINK_DOWN' || e.code === 'LINK_CLOSED')) return false;
      throw e;
    }
  }

  /**
   * Undoes a lasting fault after `ms` on the timer, unless stopped first. An undo that throws (socat
   * would not restart) is tried again up to RESTORE_ATTEMPTS times, then counted as a failure.
   */
  private lasting(what: 'unplug' | 'radio' | 'slow' | 'skew', ms: number, undo: () => void | Promise<void>): void {
    this.active.add(what);
    const p = (async () => {
      for (let attempt = 1, wait = ms; ; attempt++, wait = RESTORE_RETRY_MS) {
        try {
          await this.timer.sleep(wait, this.abort.signal);
        } catch {
          return; // stopped: the owner tears the device down
        }
        try {
          await undo();
          break;
        } catch (e) {
          this.lastRestoreError = `${what}: ${e instanceof Error ? e.message : String(e)}`;
          if (attempt >= RESTORE_ATTEMPTS) {
            this.restoreFailures++;
            break;
          }
        }
      }
      this.active.delete(what);
    })();
    this.restores.add(p);
    void p.finally(() => this.restores.delete(p));
  }

  private record(kind: FaultKind, detail: FaultDetail): FaultRecord {
    const count = (this.applied[kind] ?? 0) + 1;
    this.applied[kind] = count;
    return this.emit({ kind, applied: true, count, detail });
  }

  private skip(kind: FaultKind, why: string): FaultRecord {
    this.skipped[kind] = (this.skipped[kind] ?? 0) + 1;
    return this.emit({ kind, applied: false, count: this.applied[kind] ?? 0, detail: { skipped: why } });
  }

  private emit(r: Pick<FaultRecord, 'kind' | 'applied' | 'count' | 'detail'>): FaultRecord {
    const rec: FaultRecord = { at: this.opts.clock(), wallMs: (this.opts.wallClock ?? Date.now)(), label: this.label, ...r };
    this.opts.onRecord?.(rec);
    return rec;
  }
}
