/**
 * Provisioning station benchmarks (issue 5 item 2: "under 2 s per pack over a pty"): the whole
 * attempt — hello, on-device keygen, proof of possession, certificate, chain write, self-test,
 * registry — against hw-sim packs on socat ptys whose writes are paced at 115200 baud, with the real
 * station CA and registry. Ten packs one after another (median and max time per pack), then ten
 * packs at once in line mode (packs per minute). The simulated BMUs run in this process and share
 * its CPU with the station, so these are upper bounds for the station's own cost.
 *
 *   node --import tsx bench/provision.ts
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Fleet } from '../hw-sim/index.js';
import { provisionPack, Registry, runLine, serialsFromPattern, StationCa } from '../provisioning/index.js';
import type { Result } from './harness.js';

const PASSPHRASE = 'benchmark line passphrase';

/** Times `packs` sequential attempts and `packs` concurrent ones in line mode. Throws if any attempt fails. */
export async function benchProvision(packs = 10): Promise<Result[]> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-provision-'));
  const fleets: Fleet[] = [];
  let registry: Registry | undefined;
  try {
    await StationCa.init({ dir: join(dir, 'station'), linePassphrase: PASSPHRASE });
    const ca = await StationCa.open({ dir: join(dir, 'station'), passphrase: PASSPHRASE });
    registry = await Registry.open(join(dir, 'station', 'registry.db'));
    const reg = registry;
    const seqFleet = await Fleet.start({ dir: join(dir, 'seq'), serial: packs, ble: 0, seed: 31, tickMs: 100 });
    fleets.push(seqFleet);
    const lineFleet = await Fleet.start({ dir: join(dir, 'line'), serial: packs, ble: 0, seed: 32, tickMs: 100 });
    fleets.push(lineFleet);
    const base = { ca, registry: reg, station: 'bench', operator: 'bench' };

    const times: number[] = [];
    for (const [i, ep] of seqFleet.endpoints().entries()) {
      const t0 = performance.now();
      const out = await provisionPack({ ...base, port: ep.endpoint, serial: `BS-${String(i).padStart(4, '0')}` });
      times.push(performance.now() - t0);
      if (out.result !== 'PASS') throw new Error(`bench: ${out.label}`);
    }
    times.sort((a, b) => a - b);
    const median = times[Math.floor(times.length / 2)] ?? 0;
    const max = times[times.length - 1] ?? 0;

    const t0 = performance.now();
    const summary = await runLine({
      ports: join(dir, 'line', 'pty', '*.host'),
      serials: serialsFromPattern('BL-{0001}', reg, () => undefined),
      count: packs,
      pollMs: 50,
      attempt: (port, serial, onProgress) => provisionPack({ ...base, port, serial, onProgress }),
      out: { write: () => true },
    });
    const wall = performance.now() - t0;
    if (summary.passed !== packs) throw new Error(`bench: line mode: ${summary.passed}/${packs} passed`);
    const perMinute = (packs / wall) * 60_000;
    return [
      {
        name: `provision pack over a pty, ${packs} sequential (ES256)`,
        opsPerSec: 1000 / median,
        note: `median ${Math.round(median)} ms, max ${Math.round(max)} ms per pack (target < 2000 ms)`,
      },
      {
        name: `provision line, ${packs} packs concurrently`,
        opsPerSec: packs / (wall / 1000),
        note: `${Math.round(perMinute)} packs/min; ${Math.round(wall)} ms wall; mean ${summary.meanMs} ms, max ${summary.maxMs} ms per pack`,
      },
    ];
  } finally {
    await registry?.close();
    for (const f of fleets) await f.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  for (const r of await benchProvision()) process.stdout.write(`${r.name}: ${r.opsPerSec.toFixed(2)}/s  ${r.note ?? ''}\n`);
}
