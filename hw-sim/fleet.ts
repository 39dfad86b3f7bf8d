/**
 * A fleet of simulated BMUs (issue 4 item 6; docs/hw-sim.md "Fleet"): M packs on serial pty pairs
 * and K packs on one fake BlueZ, each with its own flash directory, battery model (seeded from the
 * fleet seed and its index, so a fleet is reproducible), firmware and link. One wall-clock tick
 * drives every device; `speed` device-seconds pass per wall second (time acceleration).
 *
 * Ground truth: every frame any device produces is appended, once durable in the device's flash,
 * to `<dir>/ground-truth.jsonl` ({serial, counter, sha256, producedAt}) — what loss and duplicate
 * checks downstream compare the ledger against. Discarded frames (ring full, rekey) go to
 * `<dir>/discarded.jsonl`, so "lost" can be told from "dropped by the device on purpose".
 *
 * Faults (faults-fleet.ts, docs/hw-sim.md §5): every pack gets a fault injector at start;
 * `inject(label, fault)` breaks one on command, `faults` rates run a seeded random schedule, and
 * every injection is a line in `<dir>/faults.jsonl` (forged and rolled-back frames are listed there,
 * never in the ground truth).
 *
 * `stop()` ends every firmware (saving state), closes links, stops every socat and the
 * dbus-daemon: nothing is left behind.
 */
import { appendFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { encodeDeviceInfo } from '../protocol/index.js';
import { BleDeviceLink } from './ble-link.js';
import { startPrivateBus, type PrivateBus } from './bluez/bus.js';
import { FakeBluez } from './bluez/service.js';
import { SimError } from './errors.js';
import type { Fault, FaultKind, FaultRecord } from './faults.js';
import { FleetFaults, type FaultRates, type FaultStats } from './faults-fleet.js';
import { Firmware, type Sensor, type SensorReading } from './firmware.js';
import { DeviceFlash } from './flash.js';
import type { DeviceLink } from './link.js';
import { BatteryModel } from './model.js';
import type { ProfileSpec } from './profile.js';
import { createPtyPair, type PtyPair } from './pty.js';
import { SerialDeviceLink } from './serial-link.js';

export interface FleetOptions {
  /** State root: devices/<label>/ (flash), pty/ (links), bus/ (private D-Bus). */
  readonly dir: string;
  /** Packs on serial ptys. */
  readonly serial: number;
  /** Packs on BLE. */
  readonly ble: number;
  readonly seed: number;
  /** Device seconds per wall second (default 1). */
  readonly speed?: number;
  /** Device ms between frames (default 1000). */
  readonly periodMs?: number;
  /** Serial line rate (default 115200). */
  readonly baudRate?: number;
  /** BLE ATT_MTU (default 23). */
  readonly mtu?: number;
  /** Wall ms between ticks (default 100). */
  readonly tickMs?: number;
  /** Pack label prefix (default "SIM"). */
  readonly labelPrefix?: string;
  /** Device clock at start, ms since the epoch (default: now). */
  readonly startTime?: number;
  /** Resend ring capacity per device (default 4096). */
  readonly ringCapacity?: number;
  /** Random fault schedule: faults per pack per minute by kind (parseFaultSpec); none by default. */
  readonly faults?: FaultRates;
}

export interface FleetEndpoint {
  readonly kind: 'serial' | 'ble';
  /** The label printed on the pack (the station provisions it under this serial). */
  readonly label: string;
  /** serial: the path a host opens; ble: the device address. */
  readonly endpoint: string;
  readonly model: string;
  readonly chemistry: 'LFP' | 'NMC';
  readonly cells: number;
}

/** One simulated pack, exposed for fault injection and inspection. */
export interface SimDevice {
  readonly endpoint: FleetEndpoint;
  readonly firmware: Firmware;
  readonly model: BatteryModel;
  readonly link: DeviceLink;
  /** serial devices only: the cable (stop = unplug, restart = replug). */
  readonly pty: PtyPair | undefined;
  /** BLE devices only. */
  readonly ble: BleDeviceLink | undefined;
}

/** The battery model as the firmware's sensor: advance the model to device time, then measure. */
class ModelSensor implements Sensor {
  private last: number;
  constructor(
    readonly model: BatteryModel,
    start: number,
  ) {
    this.last = start;
  }
  measure(nowMs: number): SensorReading {
    const dt = (nowMs - this.last) / 1000;
    if (dt > 0) {
      // Steps of at most a minute keep a fast-forwarded fleet cheap; the model is stable at any step.
      this.model.advance(dt, Math.min(60, Math.max(1, dt / 60)));
      this.last = nowMs;
    }
    return this.model.measure();
  }
  snapshot(): unknown {
    return this.model.snapshot();
  }
}

/** A daily duty cycle: charge, rest, drive-like discharge, rest — so every pack ages and alarms vary. */
function dutyCycle(seed: number): ProfileSpec {
  return {
    kind: 'repeat',
    times: 100_000,
    item: {
      kind: 'sequence',
      items: [
        { kind: 'cccv', cRate: 0.5 },
        { kind: 'rest', seconds: 1800 },
        { kind: 'drive', seconds: 3 * 3600, seed },
        { kind: 'rest', seconds: 3600 },
      ],
    },
  };
}

export class Fleet {
  readonly devices: SimDevice[] = [];
  private timer: NodeJS.Timeout | undefined;
  private deviceNow: number;
  private stopped = false;
  private ticking = false;
  private readonly faults: FleetFaults;

  private constructor(
    readonly opts: FleetOptions,
    private readonly bus: PrivateBus | undefined,
    readonly bluez: FakeBluez | undefined,
  ) {
    this.deviceNow = opts.startTime ?? Date.now();
    this.faults = new FleetFaults({ dir: opts.dir, seed: opts.seed, ...(opts.faults ? { rates: opts.faults } : {}), clock: () => this.deviceNow });
  }

  /** The private D-Bus address BLE hosts must use (DBUS_SYSTEM_BUS_ADDRESS), if any BLE packs. */
  get busAddress(): string | undefined {
    return this.bus?.address;
  }

  get groundTruthPath(): string {
    return join(this.opts.dir, 'ground-truth.jsonl');
  }

  /** One line per fault injection (FaultRecord). */
  get faultsPath(): string {
    return this.faults.path;
  }

  /** Applied faults per pack and kind, skipped ones, pending ones. */
  get faultStats(): FaultStats {
    return this.faults.stats;
  }

  /**
   * Injects a fault into pack `label`; resolves with its faults.jsonl record once it is on the wire
   * (or skipped). Rejects with SimError FAULT_ARGUMENT for an unknown pack, kind or parameter.
   */
  inject(label: string, fault: Fault | FaultKind): Promise<FaultRecord> {
    return this.faults.inject(label, fault);
  }

  /** Resolves when pack `label`'s lasting faults (unplug, ble-drop, slow-link, ...) are undone. */
  async faultsSettled(label: string): Promise<void> {
    await this.faults.device(label)?.settled();
  }

  /** Device time now (ms since the epoch). */
  get now(): number {
    return this.deviceNow;
  }

  /**
   * Starts every device and the tick loop. Throws SimError (PTY_START, BUS_START, FLASH_*) and
   * stops whatever it had started when a device fails to come up.
   */
  static async start(opts: FleetOptions): Promise<Fleet> {
    for (const [k, v] of [['serial', opts.serial], ['ble', opts.ble]] as const) {
      if (!Number.isSafeInteger(v) || v < 0 || v > 1000) throw new SimError('FLASH_CONFIG', `hw-sim: fleet: --${k} must be 0..1000, got ${v}`);
    }
    mkdirSync(join(opts.dir, 'devices'), { recursive: true });
    mkdirSync(join(opts.dir, 'pty'), { recursive: true });
    let bus: PrivateBus | undefined;
    let bluez: FakeBluez | undefined;
    if (opts.ble > 0) {
      mkdirSync(join(opts.dir, 'bus'), { recursive: true });
      bus = await startPrivateBus({ dir: join(opts.dir, 'bus') });
      try {
        bluez = await FakeBluez.start({ busAddress: bus.address });
      } catch (e) {
        await bus.stop();
        throw e;
      }
    }
    const fleet = new Fleet(opts, bus, bluez);
    try {
      for (let i = 0; i < opts.serial + opts.ble; i++) await fleet.addDevice(i, i < opts.serial ? 'serial' : 'ble');
    } catch (e) {
      await fleet.stop();
      throw e;
    }
    fleet.timer = setInterval(() => {
      fleet.tick();
    }, opts.tickMs ?? 100);
    fleet.faults.start();
    return fleet;
  }

  endpoints(): FleetEndpoint[] {
    return this.devices.map((d) => d.endpoint);
  }

  device(label: string): SimDevice | undefined {
    return this.devices.find((d) => d.endpoint.label === label);
  }

  private async addDevice(i: number, kind: 'serial' | 'ble'): Promise<void> {
    const o = this.opts;
    const label = `${o.labelPrefix ?? 'SIM'}-${String(o.seed).padStart(4, '0')}-${String(i).padStart(4, '0')}`;
    const chemistry = i % 3 === 2 ? 'NMC' : 'LFP';
    const cells = [16, 8, 14, 4, 24][i % 5] ?? 16;
    const model = `PC-${chemistry}-${cells}S`;
    const flash = await DeviceFlash.open({
      dir: join(o.dir, 'devices', label),
      factory: { model, firmware: '1.0.0', label },
      ...(o.ringCapacity === undefined ? {} : { ringCapacity: o.ringCapacity }),
    });
    const saved = flash.savedSensor;
    const battery = saved === undefined ? new BatteryModel({ seed: `${o.seed}/${i}`, cells, chemistry, capacityAh: 50 + (i % 4) * 25 }, dutyCycle(o.seed * 1000 + i)) : BatteryModel.restore(saved);
    let pty: PtyPair | undefined;
    let ble: BleDeviceLink | undefined;
    let link: DeviceLink;
    let endpoint: string;
    if (kind === 'serial') {
      pty = await createPtyPair({ dir: join(o.dir, 'pty'), name: label });
      link = SerialDeviceLink.open({ path: pty.devicePath, baudRate: o.baudRate ?? 115_200 });
      endpoint = pty.hostPath;
    } else {
      const bluez = this.bluez;
      if (!bluez) throw new SimError('BLUEZ_STOPPED', 'hw-sim: fleet: no BlueZ for a BLE device');
      const address = `C0:DE:${hex2(o.seed >> 8)}:${hex2(o.seed)}:${hex2(i >> 8)}:${hex2(i)}`;
      ble = BleDeviceLink.attach({ bluez, address, name: label, mtu: o.mtu ?? 23, deviceInfo: encodeDeviceInfo({ serial: flash.identity.serial, model, firmware: '1.0.0', alg: null }) });
      link = ble;
      endpoint = address;
    }
    const truth = this.groundTruthPath;
    const discarded = join(o.dir, 'discarded.jsonl');
    const firmware = Firmware.boot({
      flash,
      link,
      sensor: new ModelSensor(battery, this.deviceNow),
      clock: () => this.deviceNow,
      random: (n) => new Uint8Array(randomBytes(n)),
      periodMs: o.periodMs ?? 1000,
      onFrameProduced: (f) => {
        appendFileSync(truth, `${JSON.stringify({ serial: f.serial, counter: f.counter, sha256: f.coseSha256hex, producedAt: f.producedAt })}\n`);
      },
      onFrameDiscarded: (f) => {
        appendFileSync(discarded, `${JSON.stringify(f)}\n`);
      },
    });
    const device: SimDevice = { endpoint: { kind, label, endpoint, model, chemistry, cells }, firmware, model: battery, link, pty, ble };
    this.devices.push(device);
    this.faults.attach(device);
  }

  /** Advances device time by one tick (× speed) on every device. */
  private tick(): void {
    if (this.stopped || this.ticking) return;
    this.ticking = true;
    this.deviceNow += (this.opts.tickMs ?? 100) * (this.opts.speed ?? 1);
    const now = this.deviceNow;
    void Promise.allSettled(this.devices.map((d) => d.firmware.tick(now))).finally(() => {
      this.ticking = false;
    });
  }

  /** Stops ticking, saves every device, closes links, stops socat and dbus-daemon. Idempotent. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await this.faults.stop(); // first: no replug or comeBack may run after the teardown below
    await Promise.allSettled(this.devices.map((d) => d.firmware.stop()));
    await Promise.allSettled(this.devices.map((d) => d.link.close()));
    await Promise.allSettled(this.devices.flatMap((d) => (d.pty ? [d.pty.stop()] : [])));
    await this.bluez?.stop();
    await this.bus?.stop();
  }
}

function hex2(n: number): string {
  return (n & 0xff).toString(16).padStart(2, '0').toUpperCase();
}
