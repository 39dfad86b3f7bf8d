/**
 * The fault harness (issue 8 item 2): an hw-sim fleet of serial and BLE packs, provisioned over
 * their links, in front of `packchain gateway run`, which syncs through a cuttable relay
 * (proxy.ts) to `packchain ledger run` — every process real, set up by the existing kits
 * (gateway-run-kit setUp/Daemon, ledger-sync-kit LedgerProcess/syncConfig/allHistory). Over a
 * seeded schedule spread across the run it applies: kill -9 of the gateway at random moments,
 * serial unplugs, BLE link drops, power cuts (kill -9 plus a torn record on the log's tail,
 * torn.ts) and one upstream outage covering `outageDeviceMs` of device time (the fleet's `speed`
 * accelerates it). The supervisor (supervisor.ts) restarts the gateway after each kill, as
 * systemd's Restart=always would; nothing else is restarted. Then the packs' clocks stop (no new
 * frames, links stay up), every pack's resend ring drains, the sync lag reaches 0, and the
 * figures are taken: the ledger's history against hw-sim's ground truth (each produced frame
 * exactly once, witnessed), the gateway's log against the ground-truth hashes, SIGTERM exit,
 * `packchain gateway verify`, the cosigned checkpoint verified with the ledger as witness, and
 * `packchain ledger evidence --check` (no fork evidence).
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gatewayOrigin, openCheckpoint, parseVerifierKey } from '../../protocol/index.js';
import type { FaultKind } from '../../hw-sim/index.js';
import { groundTruth, readLog, storedTwice } from '../gateway-ingest-testkit.js';
import { cli, setUp, type RunSetup } from '../gateway-run-kit.js';
import { allHistory, freePort, LedgerProcess, ledgerCli, syncConfig } from '../ledger-sync-kit.js';
import { Rng } from '../hostile/prng.js';
import { OutageProxy } from './proxy.js';
import { Supervisor, type Restart } from './supervisor.js';
import { appendTornTail, type TornTail } from './torn.js';

export interface FaultPlan {
  readonly serial: number;
  readonly ble: number;
  readonly kills: number;
  readonly unplugs: number;
  readonly bleDrops: number;
  readonly tornTails: number;
  /** Device time the upstream outage covers (ms). */
  readonly outageDeviceMs: number;
  /** Device seconds per wall second. */
  readonly speed: number;
  /** Device ms between a pack's frames. */
  readonly periodMs: number;
  readonly seed: number;
  /** Wall ms the faults are spread over (default 6 s per gateway kill, at least 20 s). */
  readonly spreadMs?: number;
  /** Keep the working directory (printed) instead of removing it. */
  readonly keep?: boolean;
}

export const FULL_PLAN: FaultPlan = { serial: 13, ble: 7, kills: 50, unplugs: 100, bleDrops: 100, tornTails: 100, outageDeviceMs: 3_600_000, speed: 60, periodMs: 30_000, seed: 8 };

export interface FaultFigures {
  readonly plan: FaultPlan;
  /** Faults applied by kind (kill, torn-tail, unplug, ble-drop, outage). */
  readonly applied: Record<string, number>;
  /** hw-sim injections that did nothing, by kind. */
  readonly skipped: Record<string, number>;
  readonly frames: {
    readonly produced: number;
    readonly inLedger: number;
    readonly duplicates: number;
    readonly missing: number;
    /** Ledger rows no pack produced. */
    readonly unknown: number;
    readonly notWitnessed: number;
    readonly inGatewayLog: number;
    /** Gateway log entries whose bytes differ from the ground truth's hash. */
    readonly logMismatches: number;
    readonly logDuplicates: number;
  };
  /** Frame transmissions the packs repeated (hw-sim framesResent, all packs). */
  readonly resends: number;
  /** Unacknowledged frames a full ring overwrote or hw-sim discarded (must be 0). */
  readonly discarded: number;
  readonly wallMs: number;
  readonly outage: { readonly wallMs: number; readonly deviceMs: number; readonly refused: number; readonly catchUpMs: number; readonly backlog: number };
  readonly maxLag: { readonly entries: number; readonly seconds: number };
  readonly restarts: readonly Restart[];
  readonly torn: readonly TornTail[];
  readonly unexpectedExits: readonly string[];
  readonly memory: { readonly gatewayMaxRssMiB: number; readonly ledgerMaxRssMiB: number; readonly harnessRssMiB: number; readonly samples: number };
  readonly checks: {
    readonly sigtermExit: number | null;
    readonly verify: { readonly code: number | null; readonly output: string };
    readonly cosigned: { readonly ok: boolean; readonly size: number; readonly logSize: number; readonly witnesses: readonly string[]; readonly error?: string };
    readonly evidence: { readonly code: number | null; readonly output: string };
  };
}

type Status = { store: { size: number }; sync?: { syncedSize: number; lagEntries: number; lagSeconds: number } };

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, Math.max(0, ms)));

function rssMiB(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m?.[1] === undefined ? 0 : Number(m[1]) / 1024;
  } catch {
    return 0; // the process just exited
  }
}

async function statusOf(sup: Supervisor): Promise<Status | undefined> {
  const d = sup.daemon;
  if (d?.url === undefined) return undefined;
  try {
    const r = await fetch(`${d.url}/status`, { signal: AbortSignal.timeout(5000) });
    return (await r.json()) as Status;
  } catch {
    return undefined; // killed or restarting
  }
}

/** Polls `find` every 250 ms until it holds; throws after `timeoutMs`. */
async function waitFor<T>(find: () => Promise<T | undefined | false>, what: string, timeoutMs: number): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await find();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`faults: timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(250);
  }
}

/** Runs the plan; `progress` gets a line per phase and every 10 % of the faults. */
export async function runFaults(plan: FaultPlan, progress: (line: string) => void = () => undefined): Promise<FaultFigures> {
  const t0 = performance.now();
  const rng = new Rng(plan.seed);
  const dir = mkdtempSync(join(tmpdir(), 'packchain-faults-'));
  const ledgerDir = join(dir, 'ledger');
  let s: RunSetup | undefined;
  let ledger: LedgerProcess | undefined;
  let proxy: OutageProxy | undefined;
  let sup: Supervisor | undefined;
  let monitor: { stop: boolean; done: Promise<void> } | undefined;
  try {
    progress(`faults: working directory ${dir}`);
    s = await setUp(dir, { serial: plan.serial, ble: plan.ble }, { seed: plan.seed, speed: plan.speed, periodMs: plan.periodMs, tickMs: 50 });
    const setup = s;
    progress(`faults: ${plan.serial + plan.ble} packs provisioned (${plan.serial} serial, ${plan.ble} BLE) in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    const init = await ledgerCli(['init', '--dir', ledgerDir, '--name', 'packchain.ledger/faults', '--json']);
    if (init.code !== 0) throw new Error(`faults: ledger init: ${init.stderr}`);
    const witnessKey = (JSON.parse(init.stdout) as { verifierKey: string }).verifierKey;
    const enroll = await ledgerCli(['enroll', s.verifierKey, '--dir', ledgerDir, '--label', 'faults']);
    if (enroll.code !== 0) throw new Error(`faults: ledger enroll: ${enroll.stderr}`);
    const tok = await ledgerCli(['token', 'create', 'faults', '--dir', ledgerDir]);
    if (tok.code !== 0) throw new Error(`faults: ledger token: ${tok.stderr}`);
    const token = tok.stdout.trim();
    const port = await freePort();
    const ledgerUrl = `http://127.0.0.1:${port}`;
    ledger = await LedgerProcess.start(['--dir', ledgerDir, '--trust', s.bundlePath, '--listen', `127.0.0.1:${port}`]);
    const led = ledger;
    proxy = await OutageProxy.start({ host: '127.0.0.1', port });
    const relay = proxy;
    await syncConfig(s, { name: 'test-gw', ledgerUrl: relay.url, witnessKey });
    sup = new Supervisor(s);
    await sup.start();
    const gw = sup;
    progress('faults: ledger, relay and gateway running');

    // Sampling: sync lag and memory, every 500 ms.
    const maxLag = { entries: 0, seconds: 0 };
    const mem = { gatewayMaxRssMiB: 0, ledgerMaxRssMiB: 0, samples: 0 };
    const mon = { stop: false, done: Promise.resolve() };
    mon.done = (async () => {
      while (!mon.stop) {
        const st = await statusOf(gw);
        if (st?.sync) {
          maxLag.entries = Math.max(maxLag.entries, st.sync.lagEntries);
          maxLag.seconds = Math.max(maxLag.seconds, st.sync.lagSeconds);
        }
        mem.gatewayMaxRssMiB = Math.max(mem.gatewayMaxRssMiB, rssMiB(gw.daemon?.child.pid));
        mem.ledgerMaxRssMiB = Math.max(mem.ledgerMaxRssMiB, rssMiB(led.child.pid));
        mem.samples++;
        await sleep(500);
      }
    })();
    monitor = mon;

    // The schedule: every fault at a uniform random moment of the spread.
    const spread = plan.spreadMs ?? Math.max(20_000, (plan.kills + plan.tornTails) * 6000);
    const at = (): number => rng.int(spread);
    const gatewayEvents = [...Array<'kill'>(plan.kills).fill('kill'), ...Array<'torn-tail'>(plan.tornTails).fill('torn-tail')].map((kind) => ({ kind, at: at() })).sort((a, b) => a.at - b.at);
    const eps = s.fleet.endpoints();
    const perPack = new Map<string, { kind: FaultKind; at: number; downMs: number }[]>();
    const spreadOver = (labels: string[], n: number, kind: FaultKind): void => {
      for (let i = 0; i < n && labels.length > 0; i++) {
        const label = labels[i % labels.length] as string;
        const list = perPack.get(label) ?? [];
        list.push({ kind, at: at(), downMs: rng.range(300, 3000) });
        perPack.set(label, list);
      }
    };
    spreadOver(eps.filter((e) => e.kind === 'serial').map((e) => e.label), plan.unplugs, 'unplug');
    spreadOver(eps.filter((e) => e.kind === 'ble').map((e) => e.label), plan.bleDrops, 'ble-drop');
    const outageAt = Math.floor(spread * (0.2 + 0.3 * (rng.int(1000) / 1000)));
    const outageWallMs = plan.outageDeviceMs / plan.speed;
    const torn: TornTail[] = [];
    const start = performance.now();
    const until = (ms: number): Promise<void> => sleep(start + ms - performance.now());
    let gatewayDone = 0;
    const outage = { wallMs: 0, deviceMs: 0, refused: 0, catchUpMs: 0, backlog: 0 };
    progress(`faults: schedule over ${(spread / 1000).toFixed(0)} s: ${plan.kills} kill -9, ${plan.tornTails} torn tails, ${plan.unplugs} unplugs, ${plan.bleDrops} BLE drops, outage at ${(outageAt / 1000).toFixed(0)} s for ${(outageWallMs / 1000).toFixed(1)} s wall`);

    const gatewayLoop = async (): Promise<void> => {
      const logDir = join(setup.dataDir, 'log');
      for (const ev of gatewayEvents) {
        await until(ev.at);
        await gw.running();
        await sleep(rng.int(1000)); // a random moment of its run, never only its start-up
        await gw.kill(ev.kind, ev.kind === 'torn-tail' ? () => { torn.push(appendTornTail(logDir, rng)); } : undefined);
        gatewayDone++;
        if (gatewayEvents.length >= 10 && gatewayDone % Math.ceil(gatewayEvents.length / 10) === 0) {
          progress(`faults: ${gatewayDone}/${gatewayEvents.length} gateway kills (${((performance.now() - start) / 1000).toFixed(0)} s), faults by kind ${JSON.stringify(setup.fleet.faultStats.byKind)}`);
        }
      }
    };
    const packLoop = async (label: string, events: { kind: FaultKind; at: number; downMs: number }[]): Promise<void> => {
      events.sort((a, b) => a.at - b.at);
      for (const ev of events) {
        await until(ev.at);
        await setup.fleet.faultsSettled(label); // lasting faults do not stack: wait for the last one
        await setup.fleet.inject(label, { kind: ev.kind as 'unplug', downMs: ev.downMs });
      }
      await setup.fleet.faultsSettled(label);
    };
    const outageLoop = async (): Promise<void> => {
      await until(outageAt);
      const device0 = setup.fleet.now;
      const wall0 = performance.now();
      relay.cut();
      progress(`faults: upstream outage begins (${(plan.outageDeviceMs / 60_000).toFixed(0)} device minutes)`);
      // Until the device clocks have covered the whole outage (ticks may run late on a loaded box).
      while (setup.fleet.now - device0 < plan.outageDeviceMs) await sleep(Math.min(250, outageWallMs));
      const last = await waitFor(() => statusOf(gw), 'gateway status at the end of the outage', 120_000);
      relay.restore();
      outage.wallMs = performance.now() - wall0;
      outage.deviceMs = setup.fleet.now - device0;
      outage.refused = relay.refused;
      const back = performance.now();
      const target = last.store.size;
      outage.backlog = target - (last.sync?.syncedSize ?? 0);
      await waitFor(async () => ((await statusOf(gw))?.sync?.syncedSize ?? -1) >= target, 'the ledger to catch up after the outage', 600_000);
      outage.catchUpMs = performance.now() - back;
      progress(`faults: outage over: ${(outage.deviceMs / 60_000).toFixed(1)} device minutes in ${(outage.wallMs / 1000).toFixed(1)} s, backlog ${outage.backlog} entries synced in ${(outage.catchUpMs / 1000).toFixed(1)} s`);
    };
    await Promise.all([gatewayLoop(), outageLoop(), ...[...perPack].map(([label, evs]) => packLoop(label, evs))]);
    progress(`faults: every fault applied after ${((performance.now() - start) / 1000).toFixed(0)} s; stopping the packs' clocks and draining`);

    // Quiesce: device time stops (no new frames; links, resends and sync go on).
    (setup.fleet.opts as { speed?: number }).speed = 0;
    await waitFor(
      async () => {
        if (setup.fleet.devices.some((d) => d.firmware.hello().unacked > 0)) return false;
        const st = await statusOf(gw);
        return st?.sync !== undefined && st.sync.lagEntries === 0 && st.sync.syncedSize === st.store.size;
      },
      'every pack drained and the sync lag at 0',
      600_000,
    );
    mon.stop = true;
    await mon.done;
    monitor = undefined;

    // The ledger against the ground truth.
    const truth = groundTruth(setup.fleet.groundTruthPath);
    const truthKeys = new Map(truth.map((t) => [`${t.serial}/${t.counter}`, t.sha256]));
    const heldCount = new Map<string, number>();
    let notWitnessed = 0;
    for (const e of eps) {
      for (const r of await allHistory(ledgerUrl, token, e.label)) {
        const k = `${r.serial}/${r.counter}`;
        heldCount.set(k, (heldCount.get(k) ?? 0) + Math.max(1, r.sightings));
        if (!r.witnessed) notWitnessed++;
      }
    }
    let duplicates = 0;
    for (const n of heldCount.values()) duplicates += n - 1;
    const missing = [...truthKeys.keys()].filter((k) => !heldCount.has(k)).length;
    const unknown = [...heldCount.keys()].filter((k) => !truthKeys.has(k)).length;

    // The gateway: SIGTERM, its log against the ground truth's hashes, verify, cosigned checkpoint.
    const sigtermExit = await gw.stop();
    const log = await readLog(join(setup.dataDir, 'log'));
    const logMismatches = log.filter((f) => truthKeys.get(`${f.serial}/${f.counter}`) !== f.sha256).length;
    const logDuplicates = storedTwice(log).length;
    const v = await cli(['verify', '--config', setup.configPath]);
    let cosigned: FaultFigures['checks']['cosigned'];
    try {
      const cp = openCheckpoint(readFileSync(join(setup.dataDir, 'sync', 'cosigned-checkpoint'), 'utf8'), {
        origin: gatewayOrigin('test-gw'),
        verifiers: [parseVerifierKey(setup.verifierKey)],
        witnesses: [parseVerifierKey(witnessKey)],
        requiredWitnesses: 1,
      });
      cosigned = { ok: true, size: cp.size, logSize: log.length, witnesses: cp.witnesses.map((w) => w.name) };
    } catch (e) {
      cosigned = { ok: false, size: 0, logSize: log.length, witnesses: [], error: String(e) };
    }
    await relay.close();
    proxy = undefined;
    await led.stop('SIGTERM');
    ledger = undefined;
    const ev = await ledgerCli(['evidence', '--dir', ledgerDir, '--check']);

    const stats = setup.fleet.faultStats;
    let resends = 0;
    let dropped = 0;
    for (const d of setup.fleet.devices) {
      resends += d.firmware.stats.framesResent;
      dropped += d.firmware.stats.framesDropped + d.firmware.stats.framesWiped;
    }
    const discardedPath = join(setup.fleet.opts.dir, 'discarded.jsonl');
    if (existsSync(discardedPath)) dropped += readFileSync(discardedPath, 'utf8').split('\n').filter((l) => l !== '').length;
    const restarts = gw.restarts;
    return {
      plan,
      applied: {
        kill: restarts.filter((r) => r.cause === 'kill').length,
        'torn-tail': restarts.filter((r) => r.cause === 'torn-tail').length,
        unplug: stats.byKind.unplug ?? 0,
        'ble-drop': stats.byKind['ble-drop'] ?? 0,
        outage: outage.wallMs > 0 ? 1 : 0,
      },
      skipped: { ...stats.skipped },
      frames: { produced: truth.length, inLedger: [...heldCount.keys()].filter((k) => truthKeys.has(k)).length, duplicates, missing, unknown, notWitnessed, inGatewayLog: log.length, logMismatches, logDuplicates },
      resends,
      discarded: dropped,
      wallMs: performance.now() - t0,
      outage,
      maxLag,
      restarts,
      torn,
      unexpectedExits: [...gw.unexpected],
      memory: { ...mem, harnessRssMiB: process.memoryUsage().rss / 2 ** 20 },
      checks: { sigtermExit, verify: { code: v.code, output: (v.stdout + v.stderr).trim() }, cosigned, evidence: { code: ev.code, output: (ev.stdout + ev.stderr).trim() } },
    };
  } finally {
    if (monitor) {
      monitor.stop = true;
      await monitor.done;
    }
    await sup?.abandon();
    await proxy?.close();
    await ledger?.stop('SIGKILL');
    await s?.fleet.stop();
    if (plan.keep === true) progress(`faults: kept ${dir}`);
    else rmSync(dir, { recursive: true, force: true });
  }
}
