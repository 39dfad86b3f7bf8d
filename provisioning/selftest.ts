/**
 * The end-to-end self-test of a freshly provisioned pack (issue 5 item 2; docs/provisioning.md
 * "Self-test"): the pack signs a fresh frame (`selftest` op, docs/protocol.md §4.5) and the station
 * checks it exactly as a gateway will — the certificate chain against the station's own trust store
 * with CRLs (§3.6), the COSE_Sign1 signature with the certified key and kid (§2.2.6), the payload
 * (§2.1.5) — then that it is this pack (serial, firmware) and that its readings are physically
 * plausible for a pack leaving the line. A pack that passes has shown that everything a gateway
 * needs is in place; one that fails is set aside with the first failing check named. Pure: no I/O,
 * the trust store and the clock are passed in, so every check is unit-testable with built frames.
 */
import {
  ALARM_BITS,
  decodeFrame,
  isProtocolError,
  keyFingerprint,
  verifySign1,
  type SohFrame,
  type TrustStore,
  type VerifiedDevice,
} from '../protocol/index.js';

/** The checks, in the order they run; the first that fails names the failure. */
export const SELFTEST_CHECKS = [
  'chain', 'key', 'signature', 'frame', 'serial', 'firmware', 'cells', 'voltage', 'soc', 'soh', 'temperature', 'alarms',
] as const;
export type SelfTestCheck = (typeof SELFTEST_CHECKS)[number];

export interface SelfTestExpected {
  /** The pack serial the station certified. */
  readonly serial: string;
  /** The firmware version the pack's hello reported. */
  readonly firmware: string;
  /** The public key the pack reported at keygen (raw or SPKI): the certificate must carry it. */
  readonly publicKey?: Uint8Array;
}

export type SelfTestResult =
  | { readonly ok: true; readonly device: VerifiedDevice; readonly frame: SohFrame }
  | { readonly ok: false; readonly check: SelfTestCheck; readonly reason: string };

/**
 * Alarm bits that fail a new pack: a cell outside its voltage window, a temperature alarm, a deep
 * discharge (cells may be damaged) or an internal fault. Over-current bits depend on the load at
 * that instant and cell imbalance is corrected by balancing, so they do not (docs/protocol.md §2.1.2).
 */
export const CRITICAL_ALARMS =
  ALARM_BITS.cellOverVoltage |
  ALARM_BITS.cellUnderVoltage |
  ALARM_BITS.overTemperature |
  ALARM_BITS.underTemperature |
  ALARM_BITS.deepDischarge |
  ALARM_BITS.internalFault;

/** Plausibility bounds for a pack on the line (stricter than the wire ranges of §2.1.1). */
export const PLAUSIBLE = Object.freeze({
  cellsMin: 1,
  cellsMax: 32,
  /** mV: below, the cell is deeply discharged or dead; above, over-charged for any Li-ion chemistry. */
  cellMvMin: 1500,
  cellMvMax: 4500,
  /** Pack voltage may differ from the sum of the cells by this fraction (separate ADC, rounding). */
  voltageTolerance: 0.05,
  /** 0.1 °C: −40 °C .. +85 °C, the operating range of automotive-grade sensors. */
  tempMin: -400,
  tempMax: 850,
});

const fail = (check: SelfTestCheck, reason: string): SelfTestResult => ({ ok: false, check, reason });

function why(e: unknown): string {
  if (isProtocolError(e)) return `${e.code}: ${e.message}`;
  return e instanceof Error ? e.message : String(e);
}

/** The first implausible reading of `f`, or undefined. */
function implausible(f: SohFrame): { check: SelfTestCheck; reason: string } | undefined {
  const p = PLAUSIBLE;
  if (f.cells.length < p.cellsMin || f.cells.length > p.cellsMax) {
    return { check: 'cells', reason: `expected ${p.cellsMin}..${p.cellsMax} cells, got ${f.cells.length}` };
  }
  const bad = f.cells.findIndex((mv) => mv < p.cellMvMin || mv > p.cellMvMax);
  if (bad >= 0) return { check: 'cells', reason: `cell ${bad + 1} reads ${f.cells[bad] ?? 0} mV, expected ${p.cellMvMin}..${p.cellMvMax} mV` };
  const sum = f.cells.reduce((a, b) => a + b, 0);
  if (Math.abs(f.voltage - sum) > sum * p.voltageTolerance) {
    return { check: 'voltage', reason: `pack voltage ${f.voltage} mV differs from the sum of the cells ${sum} mV by more than ${p.voltageTolerance * 100} %` };
  }
  if (f.soc < 0 || f.soc > 1000) return { check: 'soc', reason: `state of charge ${f.soc} ‰, expected 0..1000` };
  if (f.soh < 0 || f.soh > 1000) return { check: 'soh', reason: `state of health ${f.soh} ‰, expected 0..1000` };
  for (const [name, t] of [['tempMin', f.tempMin], ['tempMax', f.tempMax]] as const) {
    if (t < p.tempMin || t > p.tempMax) return { check: 'temperature', reason: `${name} ${t / 10} °C, expected ${p.tempMin / 10}..${p.tempMax / 10} °C` };
  }
  const critical = f.alarms & CRITICAL_ALARMS;
  if (critical !== 0) {
    const names = Object.entries(ALARM_BITS).filter(([, bit]) => (critical & bit) !== 0).map(([n]) => n);
    return { check: 'alarms', reason: `critical alarm bits set: ${names.join(', ')} (0x${critical.toString(16)})` };
  }
  return undefined;
}

/**
 * Checks one self-test frame end to end. `cose` is the frame the pack returned, `chain` the chain
 * the station wrote to it (device certificate first), `trust` the station's trust store (roots,
 * line CA, current CRLs), `now` the time to judge validity at. Never throws for bad input: a frame,
 * chain or reading that fails returns `{ok: false, check, reason}` with the first failing check.
 */
export function checkSelfTest(cose: Uint8Array, chain: readonly Uint8Array[], trust: TrustStore, expected: SelfTestExpected, now: Date): SelfTestResult {
  let device: VerifiedDevice;
  try {
    device = trust.verifyChain(chain, now);
  } catch (e) {
    return fail('chain', `the certificate chain does not verify: ${why(e)}`);
  }
  if (expected.publicKey !== undefined) {
    let reported: string;
    try {
      reported = keyFingerprint(expected.publicKey);
    } catch (e) {
      return fail('key', `the reported public key is unreadable: ${why(e)}`);
    }
    const certified = keyFingerprint(device.publicKey);
    if (reported !== certified) return fail('key', `the certificate carries key ${certified.slice(0, 16)}…, the pack reported ${reported.slice(0, 16)}…`);
  }
  let payload: Uint8Array;
  try {
    payload = verifySign1(cose, { publicKey: device.publicKey, kid: device.kid }).payload;
  } catch (e) {
    return fail('signature', `the frame does not verify with the certified key: ${why(e)}`);
  }
  let frame: SohFrame;
  try {
    frame = decodeFrame(payload);
  } catch (e) {
    return fail('frame', `the frame payload is invalid: ${why(e)}`);
  }
  if (frame.serial !== expected.serial || device.packSerial !== expected.serial) {
    return fail('serial', `the frame carries serial "${frame.serial}" (certificate "${device.packSerial}"), expected "${expected.serial}"`);
  }
  if (frame.firmware !== expected.firmware) {
    return fail('firmware', `the frame carries firmware "${frame.firmware}", the pack's hello said "${expected.firmware}"`);
  }
  const bad = implausible(frame);
  if (bad) return fail(bad.check, bad.reason);
  return { ok: true, device, frame };
}
