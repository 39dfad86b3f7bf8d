/**
 * Test-only fixtures shared by the firmware and serial-link tests (not exported from hw-sim/index.ts):
 * a throw-away factory CA hierarchy built with protocol's issuing API (root → line CA → device, as
 * the provisioning station builds it), the trust store a gateway would hold, a simple fixed-value
 * sensor, a wait helper that yields to the event loop instead of sleeping for fixed times, and a rig:
 * one firmware on a fresh flash directory behind a MemoryLink, with a host that asks requests.
 */
import { randomBytes, webcrypto } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createDeviceCert,
  createIntermediateCa,
  createRootCa,
  decodeFrame,
  parseResult,
  parseSign1,
  requestMessage,
  TrustStore,
  type Issuer,
  type RequestCall,
  type ResponseMessage,
  type SignatureAlg,
} from '../protocol/index.js';
import { Firmware, type DiscardedFrame, type FirmwareOptions, type ProducedFrame, type Sensor, type SensorReading } from './firmware.js';
import { DeviceFlash } from './flash.js';
import { MemoryLink } from './memory-link.js';

export const NOT_BEFORE = new Date('2025-01-01T00:00:00Z');
export const NOT_AFTER = new Date('2125-01-01T00:00:00Z');
/** A device time at which every certificate built here is valid. */
export const T0 = Date.parse('2026-06-01T00:00:00Z');

export interface TestFactory {
  readonly root: Uint8Array;
  readonly line: Issuer;
  readonly trust: TrustStore;
  /** Issues a device certificate for a raw public key; returns the chain [device, line CA]. */
  issue(publicKey: Uint8Array, alg: SignatureAlg, packSerial: string): Promise<Uint8Array[]>;
}

async function keys(alg: SignatureAlg): Promise<webcrypto.CryptoKeyPair> {
  const algorithm = alg === 'Ed25519' ? { name: 'Ed25519' } : { name: 'ECDSA', namedCurve: 'P-256' };
  return (await webcrypto.subtle.generateKey(algorithm, false, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
}

/** A root CA and a line CA (both `alg`) and a trust store over them with no CRL required. */
export async function makeFactory(alg: SignatureAlg = 'Ed25519'): Promise<TestFactory> {
  const rootKeys = await keys(alg);
  const root = await createRootCa({ name: 'hw-sim Test Root', org: 'Packchain Test', keys: rootKeys, alg, notBefore: NOT_BEFORE, notAfter: NOT_AFTER });
  const lineKeys = await keys(alg);
  const lineCert = await createIntermediateCa({
    name: 'hw-sim Test Line',
    org: 'Packchain Test',
    keys: lineKeys,
    alg,
    notBefore: NOT_BEFORE,
    notAfter: NOT_AFTER,
    issuer: { cert: root, privateKey: rootKeys.privateKey },
  });
  const line: Issuer = { cert: lineCert, privateKey: lineKeys.privateKey };
  const trust = await TrustStore.create({ roots: [root], intermediates: [lineCert], crls: [] }, { requireCrl: false });
  return {
    root,
    line,
    trust,
    async issue(publicKey, deviceAlg, packSerial) {
      const cert = await createDeviceCert({
        packSerial,
        model: 'BMU-T1',
        devicePublicKey: publicKey,
        deviceAlg,
        issuer: line,
        notBefore: NOT_BEFORE,
        notAfter: NOT_AFTER,
      });
      return [cert, lineCert];
    },
  };
}

/** A 16-cell LFP pack at rest; `measure` reports calls so tests can see the sensor was used. */
export function fixedSensor(): Sensor & { calls: number } {
  const s = {
    calls: 0,
    measure(): SensorReading {
      s.calls++;
      return {
        soc: 800,
        soh: 990,
        voltage: 52_800,
        current: -1_200,
        tempMin: 215,
        tempMax: 240,
        cycles: 12,
        cells: new Array<number>(16).fill(3_300),
        remainingCapacity: 99_000,
        resistance: 12_000,
        alarms: 0,
      };
    },
    snapshot(): unknown {
      return { calls: s.calls };
    },
  };
  return s;
}

/**
 * Yields to the event loop (macrotasks, so real file I/O completes) until `pred` holds; throws
 * after `timeoutMs` of wall time with `what` in the message.
 */
export async function until(pred: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise<void>((r) => setTimeout(r, 1));
  }
}

/** One device under test: firmware, flash directory, memory link and what the callbacks saw. */
export interface Rig {
  readonly dir: string;
  readonly fw: Firmware;
  readonly link: MemoryLink;
  /** Device time read by the firmware's clock. */
  readonly now: { t: number };
  readonly produced: ProducedFrame[];
  readonly discarded: DiscardedFrame[];
  /** Sends a request as the host and waits for its response. */
  ask(call: RequestCall): Promise<ResponseMessage>;
  /** Counters of the F messages the host received, in arrival order. */
  counters(): number[];
}

const rigDirs: string[] = [];
const rigFirmwares: Firmware[] = [];
let requestId = 1;

/** Stops every rig's firmware and removes the directories rig() created (call in afterEach). */
export async function cleanupRigs(): Promise<void> {
  for (const fw of rigFirmwares.splice(0)) await fw.stop().catch(() => undefined);
  for (const d of rigDirs.splice(0)) await rm(d, { recursive: true, force: true });
}

/** Boots a firmware on `dir` (a new temp directory by default), link not yet connected. */
export async function rig(opts: { ringCapacity?: number; dir?: string } & Partial<FirmwareOptions> = {}): Promise<Rig> {
  const dir = opts.dir ?? (await mkdtemp(join(tmpdir(), 'hwsim-fw-')));
  if (!opts.dir) rigDirs.push(dir);
  const flash = await DeviceFlash.open({ dir, factory: { model: 'PC-48V-100Ah', firmware: '1.4.2', label: 'PACK-0001' }, ringCapacity: opts.ringCapacity ?? 4096, durable: false });
  const link = new MemoryLink();
  const now = { t: T0 };
  const produced: ProducedFrame[] = [];
  const discarded: DiscardedFrame[] = [];
  const fw = Firmware.boot({
    flash,
    link,
    sensor: fixedSensor(),
    clock: () => now.t,
    random: (n) => new Uint8Array(randomBytes(n)),
    onFrameProduced: (f) => produced.push(f),
    onFrameDiscarded: (f) => discarded.push(f),
    ...opts,
  });
  rigFirmwares.push(fw);
  const ask = async (call: RequestCall): Promise<ResponseMessage> => {
    const id = requestId++;
    link.host.send(requestMessage(id, call));
    let found: ResponseMessage | undefined;
    await until(() => (found = link.host.received.find((m): m is ResponseMessage => m.type === 'response' && m.id === id)) !== undefined, `response to ${call.op}`);
    if (!found) throw new Error('unreachable');
    return found;
  };
  const counters = (): number[] => link.host.received.flatMap((m) => (m.type === 'frame' ? [decodeFrame(parseSign1(m.cose).payload).counter] : []));
  return { dir, fw, link, now, produced, discarded, ask, counters };
}

/** keygen → setchain as a station does it (pubkey and prove are tested on their own); returns the chain. */
export async function provision(r: Rig, factory: TestFactory, alg: SignatureAlg, serial = 'PACK-0001'): Promise<Uint8Array[]> {
  const keygen = parseResult('keygen', await r.ask({ op: 'keygen', alg: alg === 'Ed25519' ? -8 : -7 }));
  if (keygen.op !== 'keygen') throw new Error('keygen result expected');
  const chain = await factory.issue(keygen.publicKey, alg, serial);
  const set = await r.ask({ op: 'setchain', chain });
  if (set.status !== 'ok') throw new Error(`setchain answered ${set.status}`);
  return chain;
}
