/**
 * Every fault on the wire, as a gateway meets it: a fleet of one serial pack (real socat pty, real
 * serialport host) and one BLE pack (real dbus-daemon, fake BlueZ, real node-ble host). Each test
 * injects a fault and checks what the host's protocol decoder or COSE verification reports
 * (docs/protocol.md §2.2.6, §5.4, §6.6), and that afterwards every frame of the fleet's ground truth
 * has reached the host with its genuine bytes — faults cost resends, never frames. The host
 * acknowledges only frames it verified, as the gateway does.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Fault, FaultRecord } from './faults.js';
import { BleHostConn, everyFrameDelivered, groundTruth, SerialHostPort, until, type FaultHost } from './faults-testkit.js';
import { Fleet } from './fleet.js';
import { SerialDeviceLink } from './serial-link.js';

const PERIOD_MS = 250;
const dir = mkdtempSync(join(tmpdir(), 'hwsim-faults-'));
let fleet: Fleet;
let serial: SerialHostPort | undefined;
let ble: BleHostConn | undefined;

interface Side {
  readonly label: string;
  readonly fh: FaultHost;
}
let S: Side;
let B: Side;

beforeAll(async () => {
  fleet = await Fleet.start({ dir, serial: 1, ble: 1, seed: 7, periodMs: PERIOD_MS, tickMs: 50 });
  const [s, b] = fleet.endpoints();
  if (!s || !b || fleet.busAddress === undefined) throw new Error('expected one serial and one BLE pack');
  serial = new SerialHostPort(s.endpoint);
  await serial.open();
  ble = new BleHostConn(fleet.busAddress, b.endpoint);
  await ble.connect();
  S = { label: s.label, fh: serial.fh };
  B = { label: b.label, fh: ble.fh };
  await Promise.all([S.fh.provision(S.label, -8), B.fh.provision(B.label, -7)]);
  await until(() => S.fh.accepted.size >= 2 && B.fh.accepted.size >= 2, 'first frames');
}, 60_000);

afterAll(async () => {
  await serial?.close();
  ble?.close();
  await fleet.stop();
  rmSync(dir, { recursive: true, force: true });
});

const delivered = (side: Side): Promise<number> => everyFrameDelivered(side.fh, fleet.groundTruthPath, side.label);
const device = (side: Side) => fleet.device(side.label)!;
const str = (rec: FaultRecord, key: string): string => String(rec.detail[key]);
const num = (rec: FaultRecord, key: string): number => Number(rec.detail[key]);

/** Injects a wire fault, waits for the decoder's verdict, checks it is exactly `expected`, then that nothing was lost. */
async function wireFault(side: Side, fault: Fault, expected: (rec: FaultRecord) => string[]): Promise<FaultRecord> {
  const mark = side.fh.wireErrors.length;
  const rec = await fleet.inject(side.label, fault);
  expect(rec.applied).toBe(true);
  const want = expected(rec);
  await until(() => side.fh.wireErrors.length >= mark + want.length, `${want.join(',')} on ${side.label}`);
  await delivered(side);
  expect(side.fh.wireErrors.slice(mark)).toEqual(want);
  return rec;
}

describe('faults on the wire', () => {
  it('refuses faults the pack cannot have, naming what is wrong, and records nothing for them', async () => {
    const before = fleet.faultStats.total;
    const cases: [string, Fault, RegExp][] = [
      ['SIM-9999-0000', { kind: 'garbage' }, /no pack labelled "SIM-9999-0000"/],
      [B.label, { kind: 'unplug' }, /fault unplug does not exist on a ble pack/],
      [S.label, { kind: 'ble-drop' }, /fault ble-drop does not exist on a serial pack/],
      [B.label, { kind: 'corrupt', part: 'crc' }, /part must be data or sequence, got "crc"/],
      [S.label, { kind: 'slow-link', factor: 0.5 }, /factor must be a finite factor ≥ 1, got 0.5/],
      [S.label, { kind: 'counter-rollback', n: 0 }, /n must be an integer 1..1000/],
      [S.label, { kind: 'explode' } as unknown as Fault, /unknown fault kind "explode"/],
    ];
    for (const [label, fault, message] of cases) {
      await expect(fleet.inject(label, fault)).rejects.toMatchObject({ code: 'FAULT_ARGUMENT', message: expect.stringMatching(message) as unknown });
    }
    expect(fleet.faultStats.total).toBe(before);
  });

  it('corrupt: a flipped base64url or CRC character is LINE_CRC; a flipped chunk byte BLE_CRC, a broken sequence BLE_SEQUENCE; the frame is resent', async () => {
    await Promise.all([
      (async () => {
        const body = await wireFault(S, { kind: 'corrupt', part: 'body' }, () => ['LINE_CRC']);
        expect(body.detail.part).toBe('body');
        await wireFault(S, { kind: 'corrupt', part: 'crc' }, () => ['LINE_CRC']);
      })(),
      (async () => {
        await wireFault(B, { kind: 'corrupt', part: 'data' }, () => ['BLE_CRC']);
        await wireFault(B, { kind: 'corrupt', part: 'sequence' }, () => ['BLE_SEQUENCE']);
      })(),
    ]);
    expect(device(S).firmware.stats.framesResent).toBeGreaterThanOrEqual(2);
    expect(device(B).firmware.stats.framesResent).toBeGreaterThanOrEqual(2);
  });

  it('garbage: random lines are LINE_GARBAGE each; stray BLE chunks one BLE_CHUNK', async () => {
    await Promise.all([
      wireFault(S, { kind: 'garbage' }, (rec) => new Array<string>(num(rec, 'lines')).fill('LINE_GARBAGE')),
      wireFault(B, { kind: 'garbage' }, () => ['BLE_CHUNK']),
    ]);
  });

  it('truncate: a line cut before its LF swallows the next line (LINE_CRC); a BLE message ended early is BLE_LENGTH', async () => {
    await Promise.all([
      wireFault(S, { kind: 'truncate' }, () => ['LINE_CRC']),
      wireFault(B, { kind: 'truncate' }, () => ['BLE_LENGTH']),
    ]);
  });

  it('oversize: a line over 4096 bytes is LINE_TOO_LONG; a START declaring more than 4096 bytes is BLE_LENGTH', async () => {
    const [s] = await Promise.all([
      wireFault(S, { kind: 'oversize' }, () => ['LINE_TOO_LONG']),
      wireFault(B, { kind: 'oversize' }, () => ['BLE_LENGTH']),
    ]);
    expect(num(s, 'bytes')).toBeGreaterThan(4096);
  });

  for (const kind of ['bad-signature', 'wrong-key'] as const) {
    it(`${kind}: the forged copy passes the transport CRC and fails COSE_SIGNATURE; it is no ground truth, the genuine frame arrives`, async () => {
      await Promise.all(
        [S, B].map(async (side) => {
          const mark = side.fh.verifyErrors.length;
          const rec = await fleet.inject(side.label, kind);
          await until(() => side.fh.verifyErrors.length > mark, `verification failure on ${side.label}`);
          await delivered(side);
          expect(side.fh.verifyErrors.slice(mark)).toEqual(['COSE_SIGNATURE']);
          const truth = groundTruth(fleet.groundTruthPath, side.label);
          expect(truth.map((t) => t.sha256)).not.toContain(str(rec, 'sha256'));
          expect(truth).toContainEqual(expect.objectContaining({ counter: num(rec, 'counter'), sha256: str(rec, 'genuineSha256') }));
          expect(side.fh.accepted.get(num(rec, 'counter'))).toBe(str(rec, 'genuineSha256'));
        }),
      );
    });
  }

  it('replay and duplicate: an old acknowledged frame and the current one sent twice arrive as exact duplicates', async () => {
    await Promise.all(
      [S, B].map(async (side) => {
        for (const kind of ['replay', 'duplicate'] as const) {
          const mark = side.fh.duplicates.length;
          const rec = await fleet.inject(side.label, kind);
          expect(rec.applied).toBe(true);
          const counter = num(rec, 'counter');
          await until(() => side.fh.duplicates.slice(mark).includes(counter), `${kind} of ${counter} on ${side.label}`);
          expect(side.fh.accepted.get(counter)).toBe(str(rec, 'sha256'));
          if (kind === 'replay') expect(device(side).firmware.flash.ring.has(counter)).toBe(false); // it had been acknowledged
        }
        expect(side.fh.conflicts).toEqual([]);
        await delivered(side);
      }),
    );
  });

  it('counter-rollback: validly signed frames reuse acknowledged counters with new content; the host flags them, the ground truth has none', async () => {
    await Promise.all(
      [S, B].map(async (side) => {
        const rec = await fleet.inject(side.label, { kind: 'counter-rollback', n: 3 });
        const counters = rec.detail.counters as number[];
        const shas = rec.detail.sha256 as string[];
        expect(counters).toHaveLength(3);
        await until(() => side.fh.conflicts.length >= 3, `conflicts on ${side.label}`);
        expect(side.fh.conflicts).toEqual(counters.map((counter, i) => ({ counter, sha256: shas[i] })));
        const truth = groundTruth(fleet.groundTruthPath, side.label);
        for (const [i, c] of counters.entries()) {
          expect(truth.find((t) => t.counter === c)?.sha256).toBe(side.fh.accepted.get(c));
          expect(side.fh.accepted.get(c)).not.toBe(shas[i]);
        }
        side.fh.conflicts.length = 0;
        await delivered(side);
      }),
    );
  });

  it('clock-skew: frames carry device time plus the skew while it lasts, verify, and go back to true time after', async () => {
    const skews = new Map([[S.label, 3_600_000], [B.label, -300_000]]);
    await Promise.all(
      [S, B].map(async (side) => {
        const skewMs = skews.get(side.label)!;
        await fleet.inject(side.label, { kind: 'clock-skew', skewMs, durationMs: 1_000 });
        await fleet.faultsSettled(side.label);
        await new Promise((r) => setTimeout(r, 3 * PERIOD_MS));
        await delivered(side);
        const offsets = new Set(groundTruth(fleet.groundTruthPath, side.label).map((t) => side.fh.times.get(t.counter)! - t.producedAt));
        expect([...offsets].sort()).toEqual([0, skewMs].sort());
        expect(device(side).firmware.clockSkew).toBe(0);
      }),
    );
  });

  it('slow-link: the wire runs factor times slower for the duration, then at full rate again', async () => {
    const link = device(S).link;
    if (!(link instanceof SerialDeviceLink)) throw new Error('expected a serial link');
    const nominal = link.rate;
    // Wire time of one frame at full speed: a line of 4 + base64url + 10 bytes at 11 520 B/s; 20-byte
    // BLE chunks (17 data bytes in the START, 19 after) at one per 7.5 ms.
    const cases = [
      { side: S, factor: 10, wireMs: (bytes: number) => ((4 + Math.ceil((bytes * 4) / 3) + 10) * 1000) / 11_520 },
      { side: B, factor: 3, wireMs: (bytes: number) => (1 + Math.ceil((bytes + 5 - 17) / 19)) * 7.5 },
    ];
    await Promise.all(
      cases.map(async ({ side, factor, wireMs }) => {
        const start = Date.now();
        await fleet.inject(side.label, { kind: 'slow-link', factor, durationMs: 2_000 });
        if (side === S) expect(link.rate).toBeCloseTo(nominal / factor);
        await fleet.faultsSettled(side.label);
        // Skip the first arrival: that frame may have been half on the wire when the link slowed.
        const during = side.fh.arrivals.filter((a) => a.at > start && a.at <= start + 2_000).slice(1);
        expect(during.length).toBeGreaterThanOrEqual(2);
        for (let i = 1; i < during.length; i++) {
          const a = during[i]!;
          expect(a.at - during[i - 1]!.at).toBeGreaterThanOrEqual(0.9 * factor * wireMs(a.bytes));
        }
        if (side === S) expect(link.rate).toBe(nominal);
        await delivered(side);
      }),
    );
  });
});

describe('faults that break the connection', () => {
  /** Stops acknowledging until at least three frames are unacknowledged; returns their counters. */
  async function holdAcks(side: Side): Promise<number[]> {
    side.fh.acking = false;
    const ring = () => device(side).firmware.flash.ring;
    await until(() => ring().size >= 3, `unacknowledged frames on ${side.label}`);
    return [...ring().entries()].map((e) => e.counter);
  }

  /** Every held frame must arrive again after `since` (still unacknowledged); then ack again, and everything must be delivered. */
  async function resume(side: Side, held: number[], since: number): Promise<void> {
    const again = (c: number): boolean => side.fh.arrivals.some((a) => a.counter === c && a.at >= since);
    await until(() => held.every(again), `resent frames on ${side.label}`).catch(() => {
      throw new Error(`${side.label}: unacknowledged frames not resent after reconnecting: ${held.filter((c) => !again(c)).join(', ')}`);
    });
    side.fh.acking = true;
    side.fh.ackAccepted();
    await delivered(side);
    await until(() => device(side).firmware.flash.ring.size <= 2, `ring drained on ${side.label}`);
  }

  it('unplug: the host port closes, the pty comes back, the host reopens and gets every unacknowledged frame', async () => {
    const port = serial!;
    const held = await holdAcks(S);
    const closes = port.closes;
    const rec = await fleet.inject(S.label, { kind: 'unplug', downMs: 400 });
    expect(rec.detail).toEqual({ downMs: 400 });
    await until(() => port.closes > closes, 'the host port to close');
    await until(() => !device(S).link.isUp, 'the device link to go down');
    await fleet.faultsSettled(S.label); // replugged
    expect(fleet.faultStats.restoreFailures, fleet.faultStats.lastError).toBe(0);
    const since = Date.now();
    await port.open();
    // What a gateway does after opening a port (once the pack's end is open too: a pty drops bytes nobody reads).
    await until(() => device(S).link.isUp, 'the device link to come back');
    await S.fh.host.call({ op: 'hello' });
    await resume(S, held, since);
  });

  it('ble-drop: the host sees a disconnect, reconnects once the pack is back, and gets every unacknowledged frame', async () => {
    const conn = ble!;
    const held = await holdAcks(B);
    const drops = conn.disconnects;
    await fleet.inject(B.label, { kind: 'ble-drop', downMs: 300 });
    await until(() => conn.disconnects > drops, 'the host to see the disconnect');
    const since = Date.now();
    await conn.connect();
    await resume(B, held, since);
  });

  it('reboot: state survives; serial says hello again and resends, BLE drops the host, which reconnects and gets every unacknowledged frame', async () => {
    const conn = ble!;
    const [heldS, heldB] = await Promise.all([holdAcks(S), holdAcks(B)]);
    const reboots = [device(S).firmware.stats.reboots, device(B).firmware.stats.reboots];
    const hellos = S.fh.host.messages.filter((m) => m.type === 'hello').length;
    const drops = conn.disconnects;
    const since = Date.now();
    await Promise.all([fleet.inject(S.label, 'reboot'), fleet.inject(B.label, { kind: 'reboot', downMs: 300 })]);
    expect([device(S).firmware.stats.reboots, device(B).firmware.stats.reboots]).toEqual([reboots[0]! + 1, reboots[1]! + 1]);
    await until(() => S.fh.host.messages.filter((m) => m.type === 'hello').length > hellos, 'the unsolicited hello');
    await until(() => conn.disconnects > drops, 'the BLE host to see the disconnect');
    await conn.connect();
    await Promise.all([resume(S, heldS, since), resume(B, heldB, since)]);
  });

  it('faults.jsonl has one record per injection and matches faultStats; no injected frame is in the ground truth', () => {
    const records = readFileSync(fleet.faultsPath, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as FaultRecord);
    const stats = fleet.faultStats;
    expect(records.filter((r) => r.applied)).toHaveLength(stats.total);
    for (const label of [S.label, B.label]) {
      const mine = records.filter((r) => r.label === label && r.applied);
      const byKind: Record<string, number> = {};
      for (const r of mine) byKind[r.kind] = (byKind[r.kind] ?? 0) + 1;
      expect(stats.byDevice[label]).toEqual(byKind);
      expect(mine.map((r) => r.count)).toEqual(mine.map((r) => mine.filter((x) => x.kind === r.kind && x.wallMs <= r.wallMs).length));
    }
    const truth = new Set([...groundTruth(fleet.groundTruthPath, S.label), ...groundTruth(fleet.groundTruthPath, B.label)].map((t) => t.sha256));
    const injected = records.flatMap((r) => (['bad-signature', 'wrong-key', 'counter-rollback'].includes(r.kind) ? [r.detail.sha256].flat() : []));
    expect(injected.length).toBeGreaterThanOrEqual(4 + 6);
    for (const sha of injected) expect(truth.has(String(sha))).toBe(false);
    expect(stats.byKind.unplug).toBe(1);
    expect(stats.byKind['ble-drop']).toBe(1);
  });
});
