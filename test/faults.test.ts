/**
 * The fault harness, shortened (issue 8 item 2; `npm run faults` runs 20 packs and hundreds of
 * faults): 4 packs (2 serial, 2 BLE) behind a real `gateway run` syncing to a real `ledger run`,
 * 5 kill -9 of the gateway, 5 serial unplugs, 5 BLE link drops, 5 power cuts with a torn log tail
 * and an upstream outage covering 10 device minutes, spread over 30 s; the harness restarts the
 * gateway after each kill as systemd would. Fails on any produced frame missing from the ledger or
 * held twice, a frame nobody produced, a fault not applied, a torn tail not cut, an unexpected
 * gateway exit, a dirty `gateway verify`, a cosigned checkpoint that does not verify with the ledger
 * as witness, or fork evidence at the ledger.
 */
import { describe, expect, it } from 'vitest';
import { checkFigures, formatFigures } from './faults/report.js';
import { runFaults } from './faults/run.js';

describe('fault harness (shortened)', () => {
  it('loses and duplicates no frame through kill -9, unplugs, BLE drops, torn tails and an upstream outage; verify clean, checkpoint witnessed, no fork evidence', { timeout: 240_000 }, async () => {
    const f = await runFaults({ serial: 2, ble: 2, kills: 5, unplugs: 5, bleDrops: 5, tornTails: 5, outageDeviceMs: 600_000, speed: 60, periodMs: 30_000, seed: 8, spreadMs: 30_000 });
    const report = formatFigures(f);
    expect(checkFigures(f), report).toEqual([]);
    expect(f.frames.produced, report).toBeGreaterThan(100);
    expect(f.frames.missing, report).toBe(0);
    expect(f.frames.duplicates, report).toBe(0);
    expect(f.frames.inLedger, report).toBe(f.frames.produced);
    expect(f.applied, report).toEqual({ kill: 5, 'torn-tail': 5, unplug: 5, 'ble-drop': 5, outage: 1 });
    expect(f.restarts.filter((r) => r.cause === 'torn-tail').every((r) => r.cutBytes > 0), report).toBe(true);
    expect(f.unexpectedExits, report).toEqual([]);
    expect(f.checks.verify.output, report).toMatch(/^gateway verify: OK/);
    expect(f.checks.cosigned.witnesses, report).toEqual(['packchain.ledger/faults']);
    expect(f.checks.evidence.output, report).toBe('no fork evidence');
  });
});
