/**
 * Test support for test/gateway-run.test.ts: a gateway set up as an operator would (a factory trust
 * bundle, a key made by createKeyFile, a JSON config) in front of an hw-sim fleet whose packs were
 * provisioned over their real links (serial ptys and the fake BlueZ) before the daemon starts, and
 * helpers that spawn `packchain gateway …` as a child process (`node --import tsx cli/main.ts`)
 * and read its JSON logs.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { encodeTrustBundle } from '../protocol/index.js';
import { Fleet, type FleetOptions } from '../hw-sim/index.js';
import { TestFactory } from '../gateway/ingest/ingest-testkit.js';
import { BleTransport, createKeyFile, SerialTransport } from '../gateway/index.js';
import { Provisioner, until } from './gateway-ingest-testkit.js';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

export interface RunSetup {
  readonly dir: string;
  readonly fleet: Fleet;
  readonly configPath: string;
  readonly bundlePath: string;
  readonly verifierKey: string;
  readonly dataDir: string;
  /** Rewrites the config with these checkpoint settings (the rest unchanged). */
  writeConfig(checkpoint: { everyEntries: number; everyMs: number }): void;
}

const BLE_FAST = { scanIntervalMs: 200, connectTimeoutMs: 5000, backoff: { initialMs: 50, maxMs: 400 } };

/**
 * Starts the fleet, provisions every pack over its link, writes bundle, key and config. `fleet`
 * overrides the fleet's seed, speed, frame period or tick (default seed 29, 200 ms, 50 ms, speed 1).
 */
export async function setUp(dir: string, packs: { serial: number; ble: number }, fleet: Partial<Pick<FleetOptions, 'seed' | 'speed' | 'periodMs' | 'tickMs'>> = {}): Promise<RunSetup> {
  const sim = await Fleet.start({ dir: join(dir, 'fleet'), ...packs, seed: 29, periodMs: 200, tickMs: 50, ...fleet });
  const factory = await TestFactory.create();
  const prov = new Provisioner({ open: () => undefined, message: () => undefined, reject: () => undefined, close: () => undefined });
  const eps = sim.endpoints();
  const serialEps = eps.filter((e) => e.kind === 'serial');
  const bleEps = eps.filter((e) => e.kind === 'ble');
  const serial = new SerialTransport({ ports: serialEps.map((e) => e.endpoint), pollMs: 200 });
  const ble = bleEps.length > 0 ? new BleTransport({ ...BLE_FAST, busAddress: sim.busAddress as string }) : undefined;
  await serial.start(prov);
  await ble?.start(prov);
  await Promise.all(eps.map((e, i) => prov.provision(`${e.kind}:${e.endpoint}`, e.label, factory, i % 2 === 0 ? 'Ed25519' : 'ES256')));
  await serial.stop();
  await ble?.stop();

  const bundlePath = join(dir, 'trust-bundle.json');
  writeFileSync(bundlePath, encodeTrustBundle(await factory.bundle()));
  const key = await createKeyFile(join(dir, 'gateway.key'), 'test-gw');
  const configPath = join(dir, 'gateway.json');
  const dataDir = join(dir, 'data');
  const writeConfig = (checkpoint: { everyEntries: number; everyMs: number }): void => {
    const config = {
      name: 'test-gw',
      dataDir,
      keyFile: join(dir, 'gateway.key'),
      trustBundle: bundlePath,
      logLevel: 'info',
      transports: {
        serial: { ports: serialEps.map((e) => e.endpoint), pollMs: 200, backoff: { initialMs: 50, maxMs: 400 } },
        ble: { enabled: bleEps.length > 0, ...BLE_FAST },
      },
      log: { checkpoint },
      ingest: { workers: 1 },
      http: { listen: '127.0.0.1:0' },
    };
    writeFileSync(configPath, JSON.stringify(config, null, 2));
  };
  writeConfig({ everyEntries: 20, everyMs: 500 });
  return { dir, fleet: sim, configPath, bundlePath, verifierKey: key.verifierKey, dataDir, writeConfig };
}

/** A running `gateway run` child. */
export class Daemon {
  out = '';
  err = '';
  url: string | undefined;

  private constructor(readonly child: ChildProcess) {}

  static async start(s: RunSetup): Promise<Daemon> {
    const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'cli/main.ts'), 'gateway', 'run', '--config', s.configPath], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...(s.fleet.busAddress === undefined ? {} : { DBUS_SYSTEM_BUS_ADDRESS: s.fleet.busAddress }) },
    });
    const d = new Daemon(child);
    child.stdout.on('data', (b: Buffer) => {
      d.out += b.toString();
      d.url ??= /http listening on (http:\/\/[^"\s]+)/.exec(d.out)?.[1];
    });
    child.stderr.on('data', (b: Buffer) => (d.err += b.toString()));
    await until(() => (d.out.includes('"gateway: running"') ? true : child.exitCode !== null ? true : undefined), 'the daemon to start', 60_000);
    if (child.exitCode !== null) throw new Error(`gateway run exited ${child.exitCode}: ${d.err}${d.out}`);
    return d;
  }

  /** The JSON log lines. */
  lines(): Record<string, unknown>[] {
    return this.out
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  }

  async status(): Promise<{ store: { size: number; checkpoint?: { size: number } }; ingest: { stored: number; devices: { serial: string; frames: number; lastCounter: number }[] } }> {
    const r = await fetch(`${this.url ?? ''}/status`);
    return (await r.json()) as Awaited<ReturnType<Daemon['status']>>;
  }

  /** Sends `signal` and waits for the exit; returns the exit code (null after a kill signal). */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
    await until(() => this.child.exitCode !== null || this.child.signalCode !== null, 'the daemon to exit', 30_000);
    return this.child.exitCode;
  }
}

/** Runs `packchain <args>` to completion (asynchronously: a fleet in this process keeps running). */
export function packchain(args: readonly string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'cli/main.ts'), ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      resolve({ code, stdout, stderr });
    });
  });
}

/** Runs `packchain gateway <args>` to completion. */
export const cli = (args: readonly string[]): ReturnType<typeof packchain> => packchain(['gateway', ...args]);
