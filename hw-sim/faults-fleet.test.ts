/**
 * The `--faults` spec and the seeded schedule: bad specs are refused with a message that names the
 * bad kind or value, and the schedule of a pack and kind is a pure function of the seed with the
 * requested mean rate. The schedule driving real packs is exercised by test/sim-faults-cli.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { SimError } from './errors.js';
import { faultArrivals, parseFaultSpec } from './faults-fleet.js';

function refusal(spec: string): string {
  try {
    parseFaultSpec(spec);
  } catch (e) {
    expect(e).toBeInstanceOf(SimError);
    expect((e as SimError).code).toBe('FAULT_SPEC');
    return (e as SimError).message;
  }
  throw new Error(`spec accepted: ${spec}`);
}

describe('parseFaultSpec', () => {
  it('reads kind=rate pairs, rates per pack per minute, spaces around entries allowed', () => {
    expect(parseFaultSpec('unplug=0.5,garbage=2, ble-drop = 0.5')).toEqual({ unplug: 0.5, garbage: 2, 'ble-drop': 0.5 });
    expect(parseFaultSpec('reboot=0')).toEqual({ reboot: 0 });
    expect(parseFaultSpec('corrupt=600')).toEqual({ corrupt: 600 });
  });

  it.each([
    ['', /empty spec/],
    ['unplug=1,,garbage=2', /entry 2 is empty/],
    ['unplug', /"unplug" has no rate; expected kind=rate/],
    ['unplugg=1', /unknown fault kind "unplugg"; known kinds: corrupt, .*ble-drop/],
    ['=1', /unknown fault kind ""/],
    ['garbage=abc', /rate of garbage must be a number from 0 to 600 .* got "abc"/],
    ['garbage=-1', /rate of garbage .* got "-1"/],
    ['garbage=1e3', /got "1e3"/],
    ['garbage=Infinity', /got "Infinity"/],
    ['garbage=601', /got "601"/],
    ['garbage=', /got ""/],
    ['garbage=1,garbage=2', /garbage is given twice/],
  ])('refuses %j: %s', (spec, message) => {
    const m = refusal(spec);
    expect(m).toMatch(/^hw-sim: --faults: /);
    expect(m).toMatch(message);
  });
});

describe('faultArrivals', () => {
  const take = (n: number, seed: number, label = 'SIM-0001-0000', kind = 'garbage' as const, rate = 2) => {
    const out: { waitMs: number; first: number }[] = [];
    for (const a of faultArrivals(seed, label, kind, rate)) {
      out.push({ waitMs: a.waitMs, first: a.random.nextU32() });
      if (out.length === n) break;
    }
    return out;
  };

  it('is the same for the same seed, pack and kind, and differs when any of them differs', () => {
    const a = take(50, 7);
    expect(take(50, 7)).toEqual(a);
    expect(take(50, 8)).not.toEqual(a);
    expect(take(50, 7, 'SIM-0001-0001')).not.toEqual(a);
    expect(take(50, 7, 'SIM-0001-0000', 'garbage', 4).map((x) => x.waitMs * 2)).toEqual(a.map((x) => x.waitMs)); // rate scales the waits only
  });

  it('has exponential waits with mean 60 000 / rate ms', () => {
    for (const rate of [0.5, 2, 60]) {
      const waits = take(4000, 3, 'SIM-0003-0002', 'garbage', rate).map((x) => x.waitMs);
      const mean = waits.reduce((s, w) => s + w, 0) / waits.length;
      expect(mean / (60_000 / rate)).toBeGreaterThan(0.93);
      expect(mean / (60_000 / rate)).toBeLessThan(1.07);
      expect(Math.min(...waits)).toBeGreaterThanOrEqual(0);
      // Exponential: about e^-1 ≈ 36.8 % of the waits exceed the mean.
      expect(waits.filter((w) => w > 60_000 / rate).length / waits.length).toBeCloseTo(Math.exp(-1), 1);
    }
  });
});
