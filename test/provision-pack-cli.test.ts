// `packchain provision pack` and `provision line` as a technician runs them: real processes
// (cli/main.ts, the packchain CLI itself), hw-sim packs on real
// ptys, the real station files. Checks the label lines, that each failure has its exit code and a
// "next:" hint, that a crashed attempt is recovered on start, that `provision export`'s bundle lets
// a gateway verify the pack's frames, and that line mode stops cleanly on SIGINT with a summary.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPtyPair, Fleet, type FleetEndpoint } from '../hw-sim/index.js';
import { EXIT_CODES, EXIT_LINE_FAILURES, Registry, StationCa } from '../provisioning/index.js';
import { gatewayView } from './provision-testkit.js';

const repo = resolve(import.meta.dirname, '..');
/** Each run starts Node + tsx and loads the modules (1–3 s on a busy 2-core machine). */
const SLOW = 120_000;
const root = mkdtempSync(join(tmpdir(), 'prov-pack-cli-'));
const station = join(root, 'station');
const passFile = join(root, 'line.pass');
let fleet: Fleet;

beforeAll(async () => {
  writeFileSync(passFile, 'line passphrase for tests\n', { mode: 0o600 });
  await StationCa.init({ dir: station, linePassphrase: 'line passphrase for tests' });
  fleet = await Fleet.start({ dir: join(root, 'fleet'), serial: 4, ble: 0, seed: 21, periodMs: 300, tickMs: 50 });
}, SLOW);

afterAll(async () => {
  await fleet.stop();
  rmSync(root, { recursive: true, force: true });
});

const pack = (i: number): FleetEndpoint => fleet.endpoints()[i]!;

interface Run {
  code: number | null;
  out: string;
  err: string;
}

function start(args: string[]): { child: ChildProcess; done: Promise<Run>; out: () => string } {
  const env = { ...process.env, PACKCHAIN_CA_PASSPHRASE: '', PACKCHAIN_ROOT_PASSPHRASE: '', PACKCHAIN_STATION_DIR: station };
  const child = spawn(process.execPath, ['--import', 'tsx', join(repo, 'cli/main.ts'), 'provision', ...args], {
    cwd: repo,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const done = new Promise<Run>((r) => child.on('close', (code) => {
    r({ code, out, err });
  }));
  return { child, done, out: () => out };
}

/** `provision <args>` with the line CA passphrase file and a station/operator name. */
const provision = (...args: string[]): Promise<Run> => start([...args, '--passphrase-file', passFile, '--station', 'cli-test', '--operator', 'tester']).done;

describe('packchain provision pack', () => {
  it('prints the PASS label line and exits 0; export then lets a gateway verify the frames', async () => {
    const r = await provision('pack', '--port', pack(0).endpoint, '--serial', 'CLI-0001');
    expect(r.err).toBe('');
    expect(r.out).toMatch(/^PASS {2}CLI-0001 {2}ES256 {2}key [0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4} {2}cert [0-9A-F]+\n$/);
    expect(r.code).toBe(0);
    const exported = await start(['export']).done;
    expect(exported.code).toBe(0);
    const seen = await gatewayView(pack(0).endpoint, readFileSync(join(station, 'trust-bundle.json'), 'utf8'), 2);
    expect(seen.serial).toBe('CLI-0001');
  }, SLOW);

  it('prints FAIL with the code and a next step, and exits with the code of the failure', async () => {
    const already = await provision('pack', '--port', pack(0).endpoint, '--serial', 'CLI-0002');
    expect(already.out).toMatch(/^FAIL CLI-0002 ALREADY_PROVISIONED: the pack is already provisioned as "CLI-0001" \(key [0-9a-f-]{19}\)/);
    expect(already.err).toMatch(/^next: .*--force/);
    expect(already.code).toBe(EXIT_CODES.ALREADY_PROVISIONED);

    const missing = await provision('pack', '--port', join(root, 'ttyUSB7'), '--serial', 'CLI-0003');
    expect(missing.out).toMatch(/^FAIL CLI-0003 NO_DEVICE: cannot open .*ttyUSB7: No such file or directory/);
    expect(missing.code).toBe(10);

    const silent = await createPtyPair({ dir: join(root, 'fleet', 'pty'), name: 'silent' });
    try {
      const r = await provision('pack', '--port', silent.hostPath, '--serial', 'CLI-0004', '--timeout-ms', '600');
      expect(r.out).toMatch(/^FAIL CLI-0004 NO_ANSWER: no answer: expected a response to "hello" within 600 ms/);
      expect(r.code).toBe(11);
    } finally {
      await silent.stop();
    }
  }, SLOW);

  it('refuses a bad serial (USAGE, 2) and a missing passphrase (CA_PASSPHRASE, 6) with one line each', async () => {
    const bad = await provision('pack', '--port', pack(1).endpoint, '--serial', 'cli 5');
    expect(bad.err).toMatch(/^provisioning: USAGE: pack serial "cli 5"/);
    expect(bad.err.trim().split('\n')).toHaveLength(1);
    expect(bad.code).toBe(EXIT_CODES.USAGE);
    const nopass = await start(['pack', '--port', pack(1).endpoint, '--serial', 'CLI-0005']).done;
    expect(nopass.err).toMatch(/^provisioning: CA_PASSPHRASE: /);
    expect(nopass.code).toBe(EXIT_CODES.CA_PASSPHRASE);
  }, SLOW);

  it('recovers an attempt a crashed station left PENDING, then provisions', async () => {
    const reg = await Registry.open(join(station, 'registry.db'));
    const crashed = await reg.begin({ serial: 'CLI-0006', model: 'M', port: pack(1).endpoint, station: 'cli-test', operator: 'tester' });
    await reg.close();
    const r = await provision('pack', '--port', pack(1).endpoint, '--serial', 'CLI-0006', '--alg', 'Ed25519');
    expect(r.err).toContain('provisioning: recovered an unfinished attempt: CLI-0006');
    expect(r.out).toMatch(/^PASS {2}CLI-0006 {2}Ed25519 /);
    expect(r.code).toBe(0);
    const after = await Registry.open(join(station, 'registry.db'), { readOnly: true });
    const history = await after.history('CLI-0006');
    await after.close();
    expect(history.map((h) => [h.id === crashed.id, h.result, h.reason ?? ''])).toEqual([
      [true, 'FAIL', 'station stopped mid-attempt'],
      [false, 'PASS', ''],
    ]);
  }, SLOW);
});

describe('packchain provision line', () => {
  it('refuses both or neither serial source (USAGE)', async () => {
    const r = await provision('line', '--ports', join(root, 'fleet', 'pty', '*.host'));
    expect(r.err).toMatch(/^provisioning: USAGE: give exactly one of --serials FILE or --serial-pattern PATTERN/);
    expect(r.code).toBe(EXIT_CODES.USAGE);
  }, SLOW);

  it('provisions the new packs, and on SIGINT finishes, prints the summary and exits by the results', async () => {
    const line = start(['line', '--ports', join(root, 'fleet', 'pty', 'SIM-*.host'), '--serial-pattern', 'LINE-{001}', '--poll-ms', '100',
      '--passphrase-file', passFile, '--station', 'cli-test', '--operator', 'tester']);
    const deadline = Date.now() + 60_000;
    // Packs 0 and 1 are provisioned already (ALREADY_PROVISIONED), 2 and 3 are new (PASS).
    while ((line.out().match(/ (PASS|FAIL) /g) ?? []).length < 4 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    line.child.kill('SIGINT');
    const r = await line.done;
    expect(r.out.match(/ PASS {2}LINE-00\d /g)).toHaveLength(2);
    expect(r.out.match(/FAIL LINE-00\d ALREADY_PROVISIONED/g)).toHaveLength(2);
    expect(r.out).toContain('summary: 4 packs, 2 PASS, 2 FAIL (ALREADY_PROVISIONED 2)');
    expect(r.err).toContain('SIGINT: no new packs');
    expect(r.code).toBe(EXIT_LINE_FAILURES);
  }, SLOW);
});
