/**
 * `packchain demo` (issue 8 item 1; README "The demo"): the whole data path on embedded defaults,
 * in one process, with each module's real code and real peers. A factory CA is created
 * (provisioning StationCa, demo passphrases) and its trust bundle exported; the upstream ledger
 * starts on it (witness key, PGlite storage and the HTTP service with its web page, a
 * service-engineer token); an hw-sim fleet of serial (socat ptys) and BLE (fake BlueZ on a private
 * D-Bus) packs runs with device time sped up; the station provisions every pack over its own link;
 * a gateway (its key enrolled at the ledger) ingests from the fleet and syncs to the ledger. Once a
 * gateway checkpoint covering frames of every pack is cosigned, the demo prints the ledger's packs
 * and one pack's history, fetches a proof bundle, verifies it offline (the ledger a required
 * witness) and shows a tampered copy rejected — all from the ledger's HTTP API. Then it keeps
 * running (frames flow, the page is live) until SIGINT or SIGTERM, and stops the gateway, the
 * ledger and the fleet (socat, dbus-daemon) before it exits; `--once` stops right after the summary.
 * Logs go to files in the demo directory; everything printed comes from the running parts.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { pino } from 'pino';
import { configWarnings, createKeyFile, createLogger, Gateway, parseConfig, readCosigned } from '../gateway/index.js';
import { Fleet, type FleetEndpoint } from '../hw-sim/index.js';
import { createWitnessKey, WITNESS_NAME_PREFIX } from '../ledger/index.js';
import { parseVerifierKey, verifierOf } from '../protocol/index.js';
import { provisionPack, readTrustBundle, Registry, REGISTRY_FILE, StationCa, writeFileAtomic } from '../provisioning/index.js';
import { historyText, HISTORY_ROWS_SHOWN, LedgerApi, packsTable, tamperedVerdict, verifiedText, verifyOffline, writeProof, type ProofFiles } from './demo-report.js';
import { WITNESS_KEY_FILE } from './ledger.js';
import { DEFAULT_LISTEN, ledgerLogger, loadLedgerTrust, parseListen, startLedgerService, type ListenAddress, type RunningLedger } from './ledger-service.js';
import { packageVersion } from './version.js';

/** Device seconds per wall second: a day of the packs' duty cycle every 12 s, so SoC and SoH charts move. */
const SPEED = 7200;
/** Device ms between frames (20 device minutes: about 6 frames a second per pack). */
const PERIOD_MS = 20 * 60_000;
const TICK_MS = 100;
const FLEET_SEED = 2026;
const GATEWAY_NAME = 'demo-gw';
const WITNESS_NAME = `${WITNESS_NAME_PREFIX}demo`;
const TOKEN_NAME = 'demo';
/** Demo-only CA passphrases (a real station reads them from files or a prompt). */
const DEMO_PASSPHRASES = { linePassphrase: 'demo line CA passphrase', rootPassphrase: 'demo root CA passphrase' };
/** Frames each pack must have in the ledger before the summary. */
const MIN_FRAMES_PER_PACK = 5;
const READY_TIMEOUT_MS = 90_000;

interface DemoOptions {
  dir?: string;
  listen?: ListenAddress;
  serial: number;
  ble: number;
  once?: boolean;
}

const say = (tag: string, text: string): void => {
  const lines = text.replace(/\n$/, '').split('\n');
  process.stdout.write(lines.map((l, i) => `${(i === 0 ? tag : '').padEnd(10)}${l}`.trimEnd()).join('\n') + '\n');
};

/** Thrown out of a step when SIGINT/SIGTERM asked the demo to stop. */
class Stopped extends Error {}

function int(name: string, min: number, max: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < min || n > max) throw new InvalidArgumentError(`${name} must be an integer in ${min}..${max}`);
    return n;
  };
}

/** The demo directory: --dir (absent or empty; created 0700), else a new temporary one. */
function demoDir(given: string | undefined): string {
  if (given === undefined) return mkdtempSync(join(tmpdir(), 'packchain-demo-'));
  const dir = resolve(given);
  if (existsSync(dir) && readdirSync(dir).length > 0) throw new InvalidArgumentError(`--dir ${dir} is not empty; give a new or empty directory (the demo creates a CA, keys and logs there)`);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  return dir;
}

/** The parts that are running, stopped in this order: gateway, ledger, fleet. */
interface Running {
  gateway?: Gateway;
  ledger?: RunningLedger;
  fleet?: Fleet;
  registry?: Registry;
}

async function stopAll(r: Running): Promise<void> {
  let tag = 'stopped';
  const step = async (what: string, fn: () => Promise<unknown>, done: () => string): Promise<void> => {
    try {
      await fn();
      say(tag, done());
    } catch (e) {
      process.stderr.write(`demo: stopping ${what} failed: ${e instanceof Error ? e.message : String(e)}\n`);
    }
    tag = '';
  };
  const { registry, gateway, ledger, fleet } = r;
  if (registry) await registry.close().catch(() => undefined);
  if (gateway) await step('the gateway', () => gateway.stop(), () => `gateway ${gateway.origin} (final checkpoint at ${gateway.store.latestCheckpoint()?.size ?? 0} entries)`);
  if (ledger) await step('the ledger', () => ledger.close(), () => 'ledger (listener and storage closed)');
  if (fleet) await step('the fleet', () => fleet.stop(), () => 'fleet (packs saved, socat and dbus-daemon stopped)');
}

/** Resolves after `ms`, or throws Stopped as soon as `signal` aborts. */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((done, fail) => {
    if (signal.aborted) {
      fail(new Stopped());
      return;
    }
    const t = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      done();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(t);
      fail(new Stopped());
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

async function runDemo(o: DemoOptions & { dir: string }): Promise<number> {
  const t0 = performance.now();
  const stop = new AbortController();
  const onSignal = (sig: NodeJS.Signals): void => {
    if (stop.signal.aborted) return;
    process.stdout.write('\n');
    say('demo', `${sig}: stopping`);
    stop.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const check = (): void => {
    if (stop.signal.aborted) throw new Stopped();
  };

  const dir = o.dir;
  const paths = {
    station: join(dir, 'station'),
    trustBundle: join(dir, 'trust-bundle.json'),
    ledger: join(dir, 'ledger'),
    fleet: join(dir, 'fleet'),
    gateway: join(dir, 'gateway'),
    gatewayVkey: join(dir, 'gateway.vkey'),
    witnessVkey: join(dir, 'ledger.vkey'),
  };
  const running: Running = {};
  let ready = false;
  say('packchain', `demo ${packageVersion()}: factory, ledger, ${o.serial} serial + ${o.ble} BLE packs, station, gateway — all live`);
  say('dir', dir);
  try {
    // 1. Factory: root and line CA, trust bundle for the ledger and the gateway.
    const ca = await StationCa.init({ dir: paths.station, ...DEMO_PASSPHRASES, org: 'packchain demo' });
    const bundle = await readTrustBundle(paths.station);
    writeFileAtomic(paths.trustBundle, bundle.text, 0o644);
    say('factory', `root CA  ${ca.root.subject}  ${ca.alg}  SHA-256 ${ca.root.fingerprint.slice(0, 23)}…\nline CA  ${ca.line.subject}  ${ca.alg}  SHA-256 ${ca.line.fingerprint.slice(0, 23)}…\ntrust bundle ${paths.trustBundle} (${bundle.bundle.roots.length} root, ${bundle.bundle.intermediates.length} line CA, ${bundle.bundle.crls.length} CRLs)`);
    check();

    // 2. Ledger: witness key, embedded storage, HTTP service with the web page, a token.
    mkdirSync(paths.ledger, { recursive: true, mode: 0o700 });
    const key = await createWitnessKey(join(paths.ledger, WITNESS_KEY_FILE), WITNESS_NAME);
    writeFileSync(paths.witnessVkey, `${key.verifierKey}\n`);
    const trust = await loadLedgerTrust(paths.trustBundle);
    const wanted = o.listen ?? parseListen(DEFAULT_LISTEN);
    running.ledger = await startLedgerService({
      storage: { kind: 'embedded', dir: paths.ledger },
      key,
      trust: trust.store,
      trustBundle: () => trust.text,
      listen: o.listen === undefined ? [wanted, { host: wanted.host, port: 0 }] : [wanted],
      logger: ledgerLogger('info', pino.destination({ dest: join(paths.ledger, 'ledger.log'), sync: true })),
      verifyThreads: 1,
    });
    const ledger = running.ledger;
    const token = await ledger.ledger.createToken(TOKEN_NAME);
    const moved = ledger.listen.port !== wanted.port ? ` (${wanted.host}:${wanted.port} is in use)` : '';
    say('ledger', `witness ${key.verifierKey}\nstorage ${ledger.ledger.storageKind} in ${paths.ledger}\nlistening on ${ledger.url}${moved}; service-engineer token "${TOKEN_NAME}" created`);
    check();

    // 3. The packs: an hw-sim fleet, time sped up.
    running.fleet = await Fleet.start({ dir: paths.fleet, serial: o.serial, ble: o.ble, seed: FLEET_SEED, labelPrefix: 'PK', speed: SPEED, periodMs: PERIOD_MS, tickMs: TICK_MS });
    const fleet = running.fleet;
    const eps = fleet.endpoints();
    say('fleet', `${o.serial} serial + ${o.ble} BLE simulated packs; device time ×${SPEED}, a frame every ${PERIOD_MS / 60_000} device minutes\n${eps.map((e) => `${e.label}  ${e.kind.padEnd(6)}  ${e.model.padEnd(10)}  ${e.endpoint}`).join('\n')}`);
    check();

    // 4. The station provisions every pack over its own link (keys made on the pack).
    const station = await StationCa.open({ dir: paths.station, passphrase: DEMO_PASSPHRASES.linePassphrase });
    running.registry = await Registry.open(join(paths.station, REGISTRY_FILE));
    for (const [i, e] of eps.entries()) {
      const outcome = await provisionPack({
        ca: station,
        registry: running.registry,
        ...(e.kind === 'serial' ? { port: e.endpoint } : { ble: { address: e.endpoint, busAddress: fleet.busAddress } }),
        serial: e.label,
        alg: i % 2 === 0 ? 'ES256' : 'Ed25519',
        station: 'demo-station',
        operator: 'demo',
      });
      say(i === 0 ? 'station' : '', `${outcome.label}  (${e.kind}, ${outcome.durationMs} ms)`);
      if (outcome.result !== 'PASS') throw new Error(`demo: the station could not provision ${e.label}: ${outcome.code ?? ''} ${outcome.reason ?? ''}`);
      check();
    }
    await running.registry.close();
    delete running.registry;

    // 5. The gateway: key, enrolled at the ledger, started on the fleet's ports and bus.
    running.gateway = await startGateway(paths, eps, fleet, ledger, key.verifierKey);
    const gw = running.gateway;
    check();

    // 6. Wait for frames of every pack in the ledger under a cosigned checkpoint, then the summary.
    const api = new LedgerApi(ledger.url, token);
    const cosigned = await untilCosigned(gw, api, eps, stop.signal);
    const packs = await api.packs();
    const note = await readCosigned(gw.config.dataDir, gw.origin, verifierOf(gw.key.signer), [parseVerifierKey(key.verifierKey)]);
    say('sync', `the gateway's latest checkpoint (${note?.size ?? cosigned} entries) is cosigned by the ledger: sync lag 0\n${note?.note.trimEnd() ?? '(no cosigned checkpoint kept: a bug)'}`);
    say('ledger', `packs (GET /api/v1/packs)\n${packsTable(packs)}`);
    const pick = packs.find((p) => p.serial === eps[0]?.label) ?? packs[0];
    if (pick === undefined) throw new Error('demo: the ledger holds no pack');
    const rows = await api.history(pick.serial, pick.lastCounter - HISTORY_ROWS_SHOWN, HISTORY_ROWS_SHOWN);
    say('history', `${pick.serial}, newest ${rows.length} of ${pick.frames} frames (GET /api/v1/packs/${pick.serial}/history)\n${historyText(rows)}`);
    const witnessed = [...rows].reverse().find((r) => r.witnessed) ?? (await api.history(pick.serial, -1, 1))[0];
    if (witnessed === undefined) throw new Error(`demo: no frame of ${pick.serial} in the ledger`);
    const proofText = await api.proof(pick.serial, witnessed.counter);
    const proofPath = await writeProof(dir, pick.serial, witnessed.counter, proofText);
    const files: ProofFiles = { trustBundle: paths.trustBundle, gatewayVkey: paths.gatewayVkey, witnessVkey: paths.witnessVkey };
    const verified = await verifyOffline(proofText, files);
    const tampered = await tamperedVerdict(proofText, files);
    say('proof', `${proofPath} (GET ${api.proofPath(pick.serial, witnessed.counter)})\n${verifiedText(verified)}\ntampered copy (${tampered.change}): ${tampered.verdict}\nchecked offline from public files, the ledger a required witness; the same check from a shell:\n  packchain gateway verify-proof ${proofPath} --trust ${files.trustBundle} --gateway-key ${files.gatewayVkey} --witness-key ${files.witnessVkey}`);
    say('web', `${ledger.url}/  — token: ${token}\nlogs: ${join(paths.ledger, 'ledger.log')}, ${join(paths.gateway, 'gateway.log')}; gateway status: ${gw.url ?? '-'}/status`);
    say('ready', `in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    ready = true;
    if (!tampered.verdict.startsWith('rejected')) return 1;
    if (o.once === true) return 0;
    say('', 'frames keep flowing and the page stays live; press Ctrl-C to stop');
    await new Promise<void>((done) => {
      if (stop.signal.aborted) done();
      else stop.signal.addEventListener('abort', () => { done(); }, { once: true });
    });
    return 0;
  } catch (e) {
    if (e instanceof Stopped) return ready ? 0 : 130;
    process.stderr.write(`demo: ${e instanceof Error ? e.message : String(e)}\n`);
    return 1;
  } finally {
    await stopAll(running);
    say('', `state kept in ${dir}`);
  }
}

/** Writes the gateway's key, vkey and config into the demo directory, enrolls it, starts it. */
async function startGateway(paths: { gateway: string; trustBundle: string; gatewayVkey: string }, eps: readonly FleetEndpoint[], fleet: Fleet, ledger: RunningLedger, witnessKey: string): Promise<Gateway> {
  mkdirSync(paths.gateway, { recursive: true, mode: 0o700 });
  const keyFile = join(paths.gateway, 'gateway.key');
  const gwKey = await createKeyFile(keyFile, GATEWAY_NAME);
  writeFileSync(paths.gatewayVkey, `${gwKey.verifierKey}\n`);
  const enrolled = await ledger.ledger.enrollGateway(gwKey.verifierKey, 'packchain demo');
  const serialPorts = eps.filter((e) => e.kind === 'serial').map((e) => e.endpoint);
  const bleCount = eps.filter((e) => e.kind === 'ble').length;
  const configPath = join(paths.gateway, 'gateway.json');
  const text = JSON.stringify(
    {
      name: GATEWAY_NAME,
      dataDir: join(paths.gateway, 'data'),
      keyFile,
      trustBundle: paths.trustBundle,
      transports: {
        serial: { ports: serialPorts, pollMs: 500 },
        ble: { enabled: bleCount > 0, maxDevices: Math.max(1, bleCount), scanIntervalMs: 500, connectTimeoutMs: 10_000 },
      },
      log: { checkpoint: { everyEntries: 100, everyMs: 1000 } },
      ingest: { workers: 1 },
      upstream: { url: ledger.url, intervalMs: 1000, backoffBaseMs: 200, backoffMaxMs: 5000, witnessKey },
      http: { listen: '127.0.0.1:0' },
    },
    null,
    2,
  );
  writeFileSync(configPath, `${text}\n`);
  const config = parseConfig(text, { source: configPath, baseDir: paths.gateway });
  const logger = createLogger({ level: 'info', gateway: GATEWAY_NAME, destination: pino.destination({ dest: join(paths.gateway, 'gateway.log'), sync: true }) });
  for (const w of configWarnings(config)) logger.warn(`gateway: config: ${w}`);
  const gw = await Gateway.start(config, { logger, version: packageVersion(), ...(fleet.busAddress === undefined ? {} : { bleBusAddress: fleet.busAddress }) });
  say('gateway', `${gwKey.origin} enrolled at the ledger (id ${enrolled.id}); config ${configPath}\ningesting from ${serialPorts.length} serial ports${bleCount > 0 ? " and BLE on the fleet's bus" : ''}; syncing to ${ledger.url}`);
  return gw;
}

/**
 * Waits until the gateway's latest checkpoint is the one the ledger cosigned and the ledger holds
 * MIN_FRAMES_PER_PACK frames of every pack; returns the cosigned size. Throws on timeout (with the
 * sync client's last error) or Stopped.
 */
async function untilCosigned(gw: Gateway, api: LedgerApi, eps: readonly FleetEndpoint[], signal: AbortSignal): Promise<number> {
  const deadline = performance.now() + READY_TIMEOUT_MS;
  for (;;) {
    const latest = gw.store.latestCheckpoint();
    const st = gw.sync?.status();
    if (latest !== undefined && st?.cosignedSize === latest.size) {
      const packs = await api.packs();
      const frames = new Map(packs.map((p) => [p.serial, p.frames]));
      if (eps.every((e) => (frames.get(e.label) ?? 0) >= MIN_FRAMES_PER_PACK)) return latest.size;
    }
    if (performance.now() > deadline) {
      throw new Error(`demo: no cosigned checkpoint covering every pack within ${READY_TIMEOUT_MS / 1000} s (gateway log ${gw.store.size} entries, cosigned ${st?.cosignedSize ?? 0}, last sync error ${st?.lastErrorCode ?? 'none'}: ${st?.lastError ?? ''})`);
    }
    await pause(250, signal);
  }
}

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description('the whole path live on embedded defaults: factory CA, ledger with web page, simulated serial and BLE packs provisioned by the station, a gateway syncing to the ledger; history, proof, Ctrl-C to stop')
    .option('--dir <dir>', 'where the demo keeps its state: new or empty (default: a new temporary directory, printed)')
    .addOption(new Option('--listen <host:port>', `the ledger's address (default ${DEFAULT_LISTEN}, or a free port when that one is taken)`).argParser(parseListen))
    .option('--serial <n>', 'simulated packs on serial ptys', int('--serial', 0, 20), 3)
    .option('--ble <n>', 'simulated packs on BLE (fake BlueZ)', int('--ble', 0, 7), 2)
    .option('--once', 'stop after the summary instead of running until Ctrl-C')
    .action(async (o: DemoOptions) => {
      if (o.serial + o.ble === 0) program.error('demo: --serial and --ble are both 0; the demo needs at least one pack', { exitCode: 2 });
      let dir: string;
      try {
        dir = demoDir(o.dir);
      } catch (e) {
        program.error(`demo: ${e instanceof Error ? e.message : String(e)}`, { exitCode: 2 });
      }
      const code = await runDemo({ ...o, dir });
      // Serial ports, D-Bus connections and worker handles may linger after stop: the demo is done.
      process.exit(code);
    });
}
