/**
 * `packchain sim …`: the BMU simulator (hw-sim). `sim fleet` starts serial and BLE packs, prints their
 * endpoints as JSON on stdout (one document), and runs until SIGTERM/SIGINT, then stops every
 * device, socat and dbus-daemon before exiting. `--faults kind=rate,...` adds the seeded random fault
 * schedule of docs/hw-sim.md §5 (records in <dir>/faults.jsonl, counts on stderr at the end).
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { InvalidArgumentError, type Command } from 'commander';
import { Fleet, isSimError, parseFaultSpec, type FaultRates } from '../hw-sim/index.js';

function int(name: string, min: number, max: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < min || n > max) throw new InvalidArgumentError(`${name} must be an integer in ${min}..${max}`);
    return n;
  };
}

/** --faults: hw-sim's parser, its SimError turned into commander's usage error (exit 1, message on stderr). */
function faultSpec(v: string): FaultRates {
  try {
    return parseFaultSpec(v);
  } catch (e) {
    if (isSimError(e)) throw new InvalidArgumentError(e.message.replace(/^hw-sim: --faults: /, ''));
    throw e;
  }
}

interface FleetCliOptions {
  serial: number;
  ble: number;
  seed: number;
  dir?: string;
  speed: number;
  periodMs: number;
  baud: number;
  mtu: number;
  faults?: FaultRates;
}

export function registerSim(program: Command): void {
  const sim = program.command('sim').description('simulated battery management units (hw-sim)');
  sim
    .command('fleet')
    .description('start simulated packs on serial ptys and a fake BlueZ; print endpoints as JSON; stop on SIGTERM/SIGINT')
    .option('--serial <n>', 'packs on serial pty pairs', int('--serial', 0, 1000), 2)
    .option('--ble <n>', 'packs on BLE (fake BlueZ on a private D-Bus)', int('--ble', 0, 1000), 0)
    .option('--seed <n>', 'seed for the battery models and labels', int('--seed', 0, 0xffff), 1)
    .option('--dir <dir>', 'state directory (flash, ptys, bus); default: a new temporary directory')
    .option('--speed <x>', 'device seconds per wall second', int('--speed', 1, 100_000), 1)
    .option('--period-ms <ms>', 'device ms between frames', int('--period-ms', 10, 3_600_000), 1000)
    .option('--baud <rate>', 'serial line rate', int('--baud', 300, 4_000_000), 115_200)
    .option('--mtu <n>', 'BLE ATT_MTU', int('--mtu', 23, 247), 23)
    .option('--faults <spec>', 'random faults, kind=rate per pack per minute, comma-separated (e.g. unplug=0.5,garbage=2,ble-drop=0.5)', faultSpec)
    .action(async (o: FleetCliOptions) => {
      const dir = o.dir === undefined ? mkdtempSync(join(tmpdir(), 'packchain-fleet-')) : resolve(o.dir);
      const fleet = await Fleet.start({
        dir, serial: o.serial, ble: o.ble, seed: o.seed, speed: o.speed, periodMs: o.periodMs, baudRate: o.baud, mtu: o.mtu,
        ...(o.faults ? { faults: o.faults } : {}),
      });
      const summary = {
        dir,
        busAddress: fleet.busAddress ?? null,
        groundTruth: fleet.groundTruthPath,
        faults: o.faults ? { rates: o.faults, records: fleet.faultsPath } : null,
        devices: fleet.endpoints(),
      };
      writeFileSync(join(dir, 'endpoints.json'), `${JSON.stringify(summary, null, 2)}\n`);
      process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
      await new Promise<void>((done) => {
        const stop = (signal: string): void => {
          process.stderr.write(`sim fleet: ${signal}, stopping ${fleet.devices.length} devices\n`);
          void fleet.stop().then(() => {
            if (o.faults) process.stderr.write(`sim fleet: faults ${JSON.stringify(fleet.faultStats)}\n`);
            done();
          });
        };
        process.once('SIGTERM', () => {
          stop('SIGTERM');
        });
        process.once('SIGINT', () => {
          stop('SIGINT');
        });
      });
    });
}
