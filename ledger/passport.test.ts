// The battery-passport export (docs/passport.md): each parameter's value and the frames it cites,
// computed from frames with hw-sim-like values (a 16-cell 100 Ah LFP pack ageing over a year);
// fields a frame lacks are skipped, a parameter without a source is null with the reason.
import { describe, expect, it } from 'vitest';
import type { SohFrame } from '../protocol/index.js';
import { isLedgerError } from './errors.js';
import { buildPassport, PARAMETER_NAMES, type PassportFrame, type PassportInput } from './passport.js';

const SERIAL = 'PK-2026-0042';
const DAY = 86_400_000;
const T0 = Date.UTC(2026, 0, 15); // 2026-01-15T00:00:00Z

/** Required fields of a frame as hw-sim's 16s LFP pack reports them, plus `extra`. */
function frame(counter: number, time: number, extra: Partial<SohFrame> = {}): SohFrame {
  return {
    v: 1, serial: SERIAL, counter, time, soc: 640, soh: 980, voltage: 52_800, current: -8_000, tempMin: 231, tempMax: 262,
    cycles: 10 + counter, cells: Array.from({ length: 16 }, (_, i) => 3300 + (i % 3)), remainingCapacity: 99_000, resistance: 18_500,
    alarms: 0, firmware: '1.4.2', ...extra,
  };
}

const leaf = (counter: number): string => counter.toString(16).padStart(64, '0');

function entry(f: SohFrame, witnessed = true): PassportFrame {
  return { frame: f, origin: 'packchain.gateway/line-3', index: 1000 + f.counter, leafHash: leaf(f.counter), receivedAt: f.time + 150, witnessed };
}

const cite = (counter: number): object => ({ serial: SERIAL, counter, origin: 'packchain.gateway/line-3', index: 1000 + counter, leafHash: leaf(counter) });

/** Three frames over a year: new (RTE not measured yet), after a month, after a year. */
const passport = {
  frames: [
    frame(0, T0, {
      ratedCapacity: 100_000, remainingCapacity: 100_000, resistance: 18_500, powerCapability: 12_000, roundTripEfficiency: 0, selfDischarge: 20,
      energyThroughput: 0, capacityThroughput: 0, deepDischargeEvents: 0, overTempSeconds: 0, underTempSeconds: 0, overTempChargeSeconds: 0,
      underTempChargeSeconds: 0, certifiedEnergy: 1000, remainingEnergy: 5_120,
    }),
    frame(1, T0 + 31 * DAY, { ratedCapacity: 100_000, remainingCapacity: 99_100, resistance: 18_700, powerCapability: 11_880, roundTripEfficiency: 962, selfDischarge: 21 }),
    frame(2, T0 + 365 * DAY, {
      ratedCapacity: 100_000, remainingCapacity: 95_500, resistance: 20_350, powerCapability: 10_800, roundTripEfficiency: 951, selfDischarge: 23,
      energyThroughput: 1_612_345, capacityThroughput: 30_450_000, deepDischargeEvents: 2, overTempSeconds: 5_400, underTempSeconds: 90,
      overTempChargeSeconds: 1_200, underTempChargeSeconds: 0, certifiedEnergy: 957, remainingEnergy: 4_899, cycles: 312, soc: 815, soh: 955,
    }),
  ],
};

const input = (frames: readonly PassportFrame[], extra: Partial<PassportInput> = {}): PassportInput => ({
  serial: SERIAL,
  frames,
  generatedAt: Date.UTC(2027, 0, 20, 12),
  certificate: { subject: 'CN=PK-2026-0042,serialNumber=PK-2026-0042,O=Example Cells', serial: '5a0c31', fingerprint: 'ab'.repeat(32) },
  ...extra,
});

const codeOf = (fn: () => unknown): string | undefined => {
  try {
    fn();
  } catch (e) {
    return isLedgerError(e) ? e.code : `not a LedgerError: ${String(e)}`;
  }
  return undefined;
};

describe('buildPassport', () => {
  describe('with a year of frames carrying every passport field', () => {
    const p = buildPassport(input(passport.frames.map((f) => entry(f))));

    it('writes the header: schema, generation time, identifiers, frames considered, witnessing', () => {
      expect(p.schema).toBe('packchain-passport/v1');
      expect(p.generatedAt).toBe('2027-01-20T12:00:00.000Z');
      expect(p.identifiers).toEqual({
        packSerial: SERIAL,
        certificateSubject: 'CN=PK-2026-0042,serialNumber=PK-2026-0042,O=Example Cells',
        certificateSerial: '5a0c31',
        certificateFingerprint: 'ab'.repeat(32),
      });
      expect(p.frames).toEqual({ considered: 3, firstCounter: 0, lastCounter: 2, firstDeviceTime: '2026-01-15T00:00:00.000Z', lastDeviceTime: '2027-01-15T00:00:00.000Z' });
      expect(p.citations).toEqual({ frames: 3, unwitnessed: 0, allWitnessed: true });
      expect(Object.keys(p.parameters)).toEqual([...PARAMETER_NAMES]);
    });

    it('capacity: remaining and rated from the latest frame, fade = 1 − remaining / rated of that frame', () => {
      expect(p.parameters.RemainingCapacity).toMatchObject({ value: 95.5, unit: 'Ah', asOf: '2027-01-15T00:00:00.000Z', source: [cite(2)] });
      expect(p.parameters.RatedCapacity).toMatchObject({ value: 100, unit: 'Ah', source: [cite(2)] });
      expect(p.parameters.CapacityFade).toMatchObject({
        idta: 'TechnicalData/TechnicalPropertyAreas/CapacityEnergyVoltage/CapacityFade', value: 4.5, unit: '%', source: [cite(2)],
      });
      expect(p.parameters.StateOfHealth).toMatchObject({ idta: null, value: 95.5, unit: '%', source: [cite(2)] });
    });

    it('power: remaining from the latest frame, fade from the first and the latest', () => {
      expect(p.parameters.RemainingPowerCapability).toMatchObject({ value: 10_800, unit: 'W', source: [cite(2)] });
      expect(p.parameters.PowerFade).toMatchObject({ idta: 'TechnicalData/TechnicalPropertyAreas/PowerCapability/PowerFade', value: 10, unit: '%', source: [cite(0), cite(2)] });
    });

    it('round-trip efficiency: 0 ‰ is "not measured yet", so the fade\'s baseline is the first non-zero frame', () => {
      expect(p.parameters.RemainingRoundTripEnergyEfficiency).toMatchObject({ value: 95.1, unit: '%', source: [cite(2)] });
      expect(p.parameters.EnergyRoundTripEfficiencyFade).toMatchObject({ value: 1.14, unit: '%', source: [cite(1), cite(2)] }); // 1 − 951/962
    });

    it('self-discharge: the current rate, its change since the first frame, and a monthly series', () => {
      expect(p.parameters.CurrentSelfDischargingRate).toMatchObject({ value: 2.3, unit: '%/30 d', source: [cite(2)] });
      expect(p.parameters.EvolutionOfSelfDischarge).toMatchObject({ value: 15, unit: '%', source: [cite(0), cite(2)] }); // 23/20 − 1
      expect(p.parameters.EvolutionOfSelfDischarge.series).toEqual([
        { asOf: '2026-01-15T00:00:00.000Z', value: 2, source: cite(0) },
        { asOf: '2026-02-15T00:00:00.000Z', value: 2.1, source: cite(1) },
        { asOf: '2027-01-15T00:00:00.000Z', value: 2.3, source: cite(2) },
      ]);
    });

    it('resistance: ohmic resistance from the latest frame, its increase from the first and the latest', () => {
      expect(p.parameters.OhmicResistance).toMatchObject({ idta: null, value: 0.02035, unit: 'Ω', source: [cite(2)] });
      expect(p.parameters.InternalResistanceIncreaseOfBatteryPackLevel).toMatchObject({ value: 10, unit: '%', source: [cite(0), cite(2)] });
    });

    it('energy: state of certified energy and remaining energy from the latest frame', () => {
      expect(p.parameters.StateOfCertifiedEnergy).toMatchObject({ value: 95.7, unit: '%', source: [cite(2)] });
      expect(p.parameters.RemainingEnergy).toMatchObject({ value: 4.899, unit: 'kWh', source: [cite(2)] });
    });

    it('lifetime counters and temperature times from the latest frame, in IDTA units (kWh, Ah, min)', () => {
      const v = (n: keyof typeof p.parameters): unknown => [p.parameters[n].value, p.parameters[n].unit, p.parameters[n].source];
      expect(v('EnergyThroughput')).toEqual([1612.345, 'kWh', [cite(2)]]);
      expect(v('CapacityThroughput')).toEqual([30_450, 'Ah', [cite(2)]]);
      expect(v('NumberOfFullCycles')).toEqual([312, 'cycles', [cite(2)]]);
      expect(v('NumberOfDeepDischargeEvents')).toEqual([2, 'events', [cite(2)]]);
      expect(v('TimeExtremeHighTemp')).toEqual([90, 'min', [cite(2)]]);
      expect(v('TimeExtremeLowTemp')).toEqual([1.5, 'min', [cite(2)]]);
      expect(v('TimeExtremeHighTempCharging')).toEqual([20, 'min', [cite(2)]]);
      expect(v('TimeExtremeLowTempCharging')).toEqual([0, 'min', [cite(2)]]);
      expect(v('StateOfCharge')).toEqual([81.5, '%', [cite(2)]]);
    });

    it('is plain JSON: it survives a JSON round trip unchanged', () => {
      expect(JSON.parse(JSON.stringify(p))).toEqual(p);
    });
  });

  describe('when frames lack optional fields', () => {
    it('reports each parameter without a source as null with the reason, and still those from required fields', () => {
      const p = buildPassport(input([entry(frame(0, T0)), entry(frame(1, T0 + DAY, { resistance: 18_600 }))], { certificate: null }));
      for (const n of ['RatedCapacity', 'CapacityFade', 'RemainingPowerCapability', 'PowerFade', 'EnergyRoundTripEfficiencyFade', 'EvolutionOfSelfDischarge',
        'StateOfCertifiedEnergy', 'RemainingEnergy', 'EnergyThroughput', 'NumberOfDeepDischargeEvents', 'TimeExtremeLowTempCharging'] as const) {
        expect(p.parameters[n], n).toMatchObject({ value: null, asOf: null, source: [] });
        expect(p.parameters[n].reason, n).toMatch(/^no frame carries \w+ \(frame field \d+\)/);
      }
      expect(p.parameters.RatedCapacity.reason).toBe('no frame carries ratedCapacity (frame field 16)');
      expect(p.parameters.RemainingRoundTripEnergyEfficiency.reason).toBe('no frame carries roundTripEfficiency (frame field 20) with a non-zero value');
      expect(p.parameters.RemainingCapacity).toMatchObject({ value: 99, source: [cite(1)] });
      expect(p.parameters.InternalResistanceIncreaseOfBatteryPackLevel).toMatchObject({ value: 0.54, source: [cite(0), cite(1)] });
      expect(p.identifiers).toEqual({ packSerial: SERIAL, certificateSubject: null, certificateSerial: null, certificateFingerprint: null });
    });

    it('skips a frame lacking a field and cites the latest frame that has it', () => {
      const p = buildPassport(input([
        entry(frame(0, T0, { powerCapability: 12_000, ratedCapacity: 100_000 })),
        entry(frame(1, T0 + DAY, { powerCapability: 11_500, ratedCapacity: 100_000, remainingCapacity: 98_000 })),
        entry(frame(2, T0 + 2 * DAY, { remainingCapacity: 97_000 })),
      ]));
      expect(p.parameters.RemainingPowerCapability).toMatchObject({ value: 11_500, source: [cite(1)] });
      expect(p.parameters.PowerFade).toMatchObject({ value: 4.17, source: [cite(0), cite(1)] });
      // Fade uses remaining and rated capacity of one frame, the latest carrying both.
      expect(p.parameters.CapacityFade).toMatchObject({ value: 2, source: [cite(1)] });
      expect(p.parameters.RemainingCapacity).toMatchObject({ value: 97, source: [cite(2)] });
    });

    it('a change needs two frames: one frame carrying the field gives null with the reason', () => {
      const p = buildPassport(input([entry(frame(5, T0, { powerCapability: 12_000, selfDischarge: 20 }))]));
      expect(p.parameters.PowerFade).toMatchObject({ value: null, reason: 'only one frame (counter 5) carries a baseline for powerCapability; a change needs a later frame' });
      expect(p.parameters.EvolutionOfSelfDischarge.value).toBeNull();
      expect(p.parameters.RemainingPowerCapability.value).toBe(12_000);
    });

    it('a baseline of 0 gives null with the reason (a change relative to 0 is undefined)', () => {
      const p = buildPassport(input([entry(frame(0, T0, { selfDischarge: 0 })), entry(frame(1, T0 + DAY, { selfDischarge: 0 }))]));
      expect(p.parameters.EvolutionOfSelfDischarge).toMatchObject({ value: null, reason: 'every frame carrying selfDischarge says 0; a change relative to 0 is undefined' });
      expect(p.parameters.CurrentSelfDischargingRate).toMatchObject({ value: 0, source: [cite(1)] });
    });

    it('a rated capacity of 0 gives a null capacity fade with the reason', () => {
      const p = buildPassport(input([entry(frame(0, T0, { ratedCapacity: 0 }))]));
      expect(p.parameters.CapacityFade.value).toBeNull();
      expect(p.parameters.CapacityFade.reason).toMatch(/ratedCapacity says 0 mAh/);
    });
  });

  it('keeps the self-discharge series short: the baseline and the latest frame of each of the last 12 months', () => {
    const frames = Array.from({ length: 40 }, (_, i) => entry(frame(i, Date.UTC(2026, 0, 1) + i * 12 * DAY, { selfDischarge: 20 + i })));
    const s = buildPassport(input(frames)).parameters.EvolutionOfSelfDischarge;
    expect(s.value).toBe(195); // 59/20 − 1
    expect(s.series?.length).toBe(13);
    expect(s.series?.[0]).toMatchObject({ value: 2, source: cite(0) });
    expect(s.series?.at(-1)).toMatchObject({ value: 5.9, asOf: '2027-04-14T00:00:00.000Z', source: cite(39) });
    const months = (s.series ?? []).slice(1).map((x) => x.asOf.slice(0, 7));
    expect(new Set(months).size).toBe(12);
  });

  it('counts cited frames no ledger-cosigned checkpoint covers, ignoring uncited ones', () => {
    const frames = passport.frames.map((f) => entry(f, f.counter !== 1));
    expect(buildPassport(input(frames)).citations).toEqual({ frames: 3, unwitnessed: 1, allWitnessed: false });
    // Frame 1 here carries only required fields, all superseded by frame 2: it is not cited.
    const mid = [entry(passport.frames[0]!), entry(frame(1, T0 + DAY), false), entry(passport.frames[2]!)];
    expect(buildPassport(input(mid)).citations).toEqual({ frames: 2, unwitnessed: 0, allWitnessed: true });
  });

  it('reads the frames once from any iterable (the ledger may stream them)', () => {
    let reads = 0;
    function* stream(): Generator<PassportFrame> {
      for (const f of passport.frames) {
        reads++;
        yield entry(f);
      }
    }
    expect(buildPassport(input([], { frames: stream() })).frames.considered).toBe(3);
    expect(reads).toBe(3);
  });

  describe('when the input is not a pack\'s verified history', () => {
    it('with no frames → throws PASSPORT_NO_FRAMES', () => {
      expect(codeOf(() => buildPassport(input([])))).toBe('PASSPORT_NO_FRAMES');
    });

    it('with a frame of another pack → throws PASSPORT_INPUT', () => {
      expect(codeOf(() => buildPassport(input([entry({ ...frame(0, T0), serial: 'PK-OTHER' })])))).toBe('PASSPORT_INPUT');
    });

    it('with counters not increasing → throws PASSPORT_INPUT', () => {
      expect(codeOf(() => buildPassport(input([entry(frame(2, T0)), entry(frame(2, T0 + DAY))])))).toBe('PASSPORT_INPUT');
      expect(codeOf(() => buildPassport(input([entry(frame(3, T0)), entry(frame(1, T0 + DAY))])))).toBe('PASSPORT_INPUT');
    });
  });
});
