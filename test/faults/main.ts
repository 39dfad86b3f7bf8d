/**
 * `npm run faults` (issue 8 item 2): the full fault run — 20 packs (13 serial, 7 BLE: the BLE
 * transport's default maxDevices), 50 kill -9 of the gateway, 100 serial unplugs, 100 BLE link
 * drops, 100 power cuts with a torn tail, an upstream outage covering an hour of device traffic —
 * then the checks and the figures (docs/faults.md shows a run). Options override the plan:
 * --serial, --ble, --kills, --unplugs, --ble-drops, --torn, --outage-minutes (device), --speed,
 * --period-ms, --seed, --spread-s, --keep, --json. Exit code 0 when every check holds, 1 otherwise.
 */
import { availableParallelism, cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { checkFigures, formatFigures } from './report.js';
import { FULL_PLAN, runFaults, type FaultPlan } from './run.js';

const { values } = parseArgs({
  options: {
    serial: { type: 'string' },
    ble: { type: 'string' },
    kills: { type: 'string' },
    unplugs: { type: 'string' },
    'ble-drops': { type: 'string' },
    torn: { type: 'string' },
    'outage-minutes': { type: 'string' },
    speed: { type: 'string' },
    'period-ms': { type: 'string' },
    seed: { type: 'string' },
    'spread-s': { type: 'string' },
    keep: { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
  },
});

function num(v: string | undefined, fallback: number, name: string): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) {
    console.error(`faults: --${name} must be a non-negative number, got ${JSON.stringify(v)}`);
    process.exit(2);
  }
  return n;
}

const p = FULL_PLAN;
const spread = values['spread-s'] === undefined ? undefined : num(values['spread-s'], 0, 'spread-s') * 1000;
const plan: FaultPlan = {
  serial: num(values.serial, p.serial, 'serial'),
  ble: num(values.ble, p.ble, 'ble'),
  kills: num(values.kills, p.kills, 'kills'),
  unplugs: num(values.unplugs, p.unplugs, 'unplugs'),
  bleDrops: num(values['ble-drops'], p.bleDrops, 'ble-drops'),
  tornTails: num(values.torn, p.tornTails, 'torn'),
  outageDeviceMs: num(values['outage-minutes'], p.outageDeviceMs / 60_000, 'outage-minutes') * 60_000,
  speed: Math.max(1, num(values.speed, p.speed, 'speed')),
  periodMs: Math.max(100, num(values['period-ms'], p.periodMs, 'period-ms')),
  seed: num(values.seed, p.seed, 'seed'),
  ...(spread === undefined ? {} : { spreadMs: spread }),
  keep: values.keep,
};
console.log(`faults: node ${process.version}, ${cpus()[0]?.model ?? 'unknown CPU'} × ${availableParallelism()}`);
const figures = await runFaults(plan, (l) => { console.log(l); });
const problems = checkFigures(figures);
console.log(values.json ? JSON.stringify(figures, null, 2) : `\n${formatFigures(figures)}`);
if (problems.length > 0) {
  console.log(`\nFAILED:\n${problems.map((x) => `  - ${x}`).join('\n')}`);
  process.exitCode = 1;
} else console.log('\nall checks hold');
