/**
 * Test-only hosts for the fault tests (not exported from hw-sim/index.ts): a gateway in miniature on
 * a real pty (serialport) or over the fake BlueZ (real node-ble on the fleet's private D-Bus) that
 * records what a correct gateway sees — decoder error codes (LineDecoder / Reassembler events), COSE
 * verification failures, duplicates, counter conflicts — and acknowledges a frame only once it has
 * verified it, as the gateway acknowledges only durable, verified frames (DESIGN decision 4).
 */
import { readFileSync } from 'node:fs';
import NodeBle from 'node-ble';
import { SerialPort } from 'serialport';
import {
  ackMessages,
  chunkMessage,
  decodeFrame,
  encodeLine,
  isProtocolError,
  LineDecoder,
  Reassembler,
  sha256,
  toHex,
  verifySign1,
  type DecodeEvent,
  type Message,
  type VerifiedDevice,
} from '../protocol/index.js';
import { packchainCharacteristics } from './bluez/testkit.js';
import { TestHost } from './host-testkit.js';

export interface TruthLine {
  serial: string;
  counter: number;
  sha256: string;
  producedAt: number;
}

/** The fleet's ground truth for one pack serial. */
export function groundTruth(path: string, serial: string): TruthLine[] {
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as TruthLine)
    .filter((t) => t.serial === serial);
}

export async function until<T>(find: () => T | undefined | false, what: string, timeoutMs = 15_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = find();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** What the host made of everything it received. */
export class FaultHost {
  readonly host: TestHost;
  /** Decoder error codes, in arrival order. */
  readonly wireErrors: string[] = [];
  /** COSE verification failures (COSE_SIGNATURE, COSE_KID_MISMATCH, ...). */
  readonly verifyErrors: string[] = [];
  /** Accepted frames: counter → SHA-256 of the COSE bytes. */
  readonly accepted = new Map<number, string>();
  /** The `time` field of each accepted frame. */
  readonly times = new Map<number, number>();
  /** Every verified frame arrival (accepted or duplicate): wall ms and COSE size. */
  readonly arrivals: { counter: number; at: number; bytes: number }[] = [];
  /** Same counter, different bytes (counter rollback): flagged, never acknowledged. */
  readonly conflicts: { counter: number; sha256: string }[] = [];
  /** Counters of frames received again with the same bytes (acknowledged again, stored once). */
  readonly duplicates: number[] = [];
  /** When false, verified frames are recorded but not acknowledged. */
  acking = true;
  private key: VerifiedDevice | undefined;

  constructor(put: (msg: Message) => Promise<void>) {
    this.host = new TestHost(put);
  }

  async provision(label: string, alg: -7 | -8): Promise<void> {
    this.key = (await this.host.provision(label, alg)).device;
  }

  events(events: readonly DecodeEvent[]): void {
    for (const ev of events) {
      if (ev.kind === 'error') this.wireErrors.push(ev.error.code);
      else if (ev.message.type === 'frame') this.frame(ev.message.cose);
      else this.host.receive(ev.message);
    }
  }

  /** Acknowledges every accepted frame (after acking was paused). */
  ackAccepted(): void {
    for (const ack of ackMessages([...this.accepted.keys()])) void this.host.send(ack).catch(() => undefined);
  }

  private frame(cose: Uint8Array): void {
    const key = this.key;
    if (!key) return;
    let counter: number;
    let time: number;
    try {
      const payload = verifySign1(cose, { publicKey: key.publicKey, kid: key.kid }).payload;
      ({ counter, time } = decodeFrame(payload));
    } catch (e) {
      if (!isProtocolError(e)) throw e;
      this.verifyErrors.push(e.code);
      return;
    }
    const sha = toHex(sha256(cose));
    const seen = this.accepted.get(counter);
    if (seen !== undefined && seen !== sha) {
      this.conflicts.push({ counter, sha256: sha });
      return;
    }
    if (seen === undefined) {
      this.accepted.set(counter, sha);
      this.times.set(counter, time);
    } else {
      this.duplicates.push(counter);
    }
    this.arrivals.push({ counter, at: Date.now(), bytes: cose.length });
    if (this.acking) for (const ack of ackMessages([counter])) void this.host.send(ack).catch(() => undefined);
  }
}

/** Frames of the ground truth (as of now) that the host has not accepted with the same bytes. */
export function missing(fh: FaultHost, truthPath: string, serial: string): TruthLine[] {
  return groundTruth(truthPath, serial).filter((t) => fh.accepted.get(t.counter) !== t.sha256);
}

/** Waits until every frame the ground truth lists now has reached the host; throws with the missing counters. */
export async function everyFrameDelivered(fh: FaultHost, truthPath: string, serial: string, timeoutMs = 15_000): Promise<number> {
  const want = groundTruth(truthPath, serial);
  const end = Date.now() + timeoutMs;
  for (;;) {
    const left = want.filter((t) => fh.accepted.get(t.counter) !== t.sha256);
    if (left.length === 0) return want.length;
    if (Date.now() > end) throw new Error(`frames never delivered: ${left.map((t) => t.counter).join(', ')}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A host on the host end of a pty through the real serialport library; reopens after an unplug. */
export class SerialHostPort {
  readonly fh: FaultHost;
  closes = 0;
  private port: SerialPort | undefined;

  constructor(readonly path: string) {
    this.fh = new FaultHost((msg) => this.write(msg));
  }

  get isOpen(): boolean {
    return this.port !== undefined;
  }

  /** Opens the port, retrying while the path does not exist (unplugged). */
  async open(timeoutMs = 15_000): Promise<void> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      try {
        this.attach(await tryOpen(this.path));
        return;
      } catch (e) {
        if (Date.now() > end) throw e;
        await new Promise((r) => setTimeout(r, 20));
      }
    }
  }

  async close(): Promise<void> {
    const port = this.port;
    this.port = undefined;
    if (port?.isOpen) await new Promise<void>((r) => { port.close(() => { r(); }); });
  }

  private attach(port: SerialPort): void {
    const decoder = new LineDecoder(); // fresh per connection (NOTES.md)
    this.port = port;
    port.on('data', (chunk: Buffer) => {
      this.fh.events(decoder.push(chunk));
    });
    port.on('error', () => undefined);
    port.once('close', () => {
      this.fh.events(decoder.flush());
      if (this.port === port) {
        this.port = undefined;
        this.closes++;
      }
    });
  }

  private write(msg: Message): Promise<void> {
    const port = this.port;
    // Unplugged or closing: the write goes nowhere, as on a dead adapter (and serialport would
    // never call back for a port that is closing).
    if (!port?.isOpen) return Promise.resolve();
    return new Promise((resolve) => {
      port.once('close', resolve);
      port.write(Buffer.from(encodeLine(msg)), () => {
        port.off('close', resolve);
        resolve();
      });
    });
  }
}

function tryOpen(path: string): Promise<SerialPort> {
  return new Promise((resolve, reject) => {
    const port = new SerialPort({ path, baudRate: 115_200, autoOpen: false });
    port.open((e) => {
      if (e) reject(e);
      else resolve(port);
    });
  });
}

type BleSession = ReturnType<typeof NodeBle.createBluetooth>;

/** A host connected to one pack through real node-ble on the fleet's private bus; reconnects after a drop. */
export class BleHostConn {
  readonly fh: FaultHost;
  disconnects = 0;
  private session: BleSession | undefined;
  private write: NodeBle.GattCharacteristic | undefined;
  private connected = false;

  constructor(
    private readonly busAddress: string,
    readonly address: string,
  ) {
    this.fh = new FaultHost((msg) => this.send(msg));
  }

  get isConnected(): boolean {
    return this.connected;
  }

  /** A new node-ble session, connect (retrying while the pack is out of range), notifications on. */
  async connect(timeoutMs = 15_000): Promise<void> {
    this.session?.destroy();
    const previous = process.env.DBUS_SYSTEM_BUS_ADDRESS;
    process.env.DBUS_SYSTEM_BUS_ADDRESS = this.busAddress;
    try {
      this.session = NodeBle.createBluetooth();
    } finally {
      if (previous === undefined) delete process.env.DBUS_SYSTEM_BUS_ADDRESS;
      else process.env.DBUS_SYSTEM_BUS_ADDRESS = previous;
    }
    const adapter = await this.session.bluetooth.defaultAdapter();
    if (!(await adapter.isDiscovering())) await adapter.startDiscovery();
    const device = await adapter.waitDevice(this.address, timeoutMs, 20);
    const end = Date.now() + timeoutMs;
    for (;;) {
      try {
        await device.connect();
        break;
      } catch (e) {
        if (Date.now() > end) throw e;
        await new Promise((r) => setTimeout(r, 100)); // each attempt adds a node-ble listener: do not spin
      }
    }
    const { notify, write } = await packchainCharacteristics(device);
    const reassembler = new Reassembler({ timeoutMs: 2000 });
    notify.on('valuechanged', (buf: Buffer) => {
      this.fh.events(reassembler.push(new Uint8Array(buf), Date.now()));
    });
    device.once('disconnect', () => {
      this.fh.events(reassembler.reset());
      this.connected = false;
      this.disconnects++;
    });
    this.write = write;
    this.connected = true;
    await notify.startNotifications();
  }

  close(): void {
    this.session?.destroy();
    this.session = undefined;
    this.connected = false;
  }

  private async send(msg: Message): Promise<void> {
    const write = this.write;
    if (!write || !this.connected) return;
    for (const chunk of chunkMessage(msg, 20)) await write.writeValueWithoutResponse(Buffer.from(chunk));
  }
}
