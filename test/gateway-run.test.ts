/**
 * `packchain gateway run` end to end (issue 6 items 4–7): the daemon as a child process in front of
 * an hw-sim fleet on real ptys (serialport) and the fake BlueZ (node-ble), provisioned over the
 * wire. Frames flow; /healthz, /metrics, /status answer; `gateway history`, `prove`,
 * `verify-proof` and `verify` work beside the running daemon; unplug/replug and BLE drops recover;
 * SIGTERM exits 0 with a final checkpoint over the whole log; kill -9 mid-ingest and a restart lose
 * nothing the packs produced (their resends fill every gap) and the log verifies; a torn tail is
 * cut on start; one altered byte in the middle is pinpointed by `gateway verify`.
 * The steps share one fleet and one data directory and run in order.
 */
import { readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync, mkdtempSync, openSync, readSync, writeSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LogStore } from '../gateway/index.js';
import { groundTruth, readLog, storedTwice, until } from './gateway-ingest-testkit.js';
import { cli, Daemon, setUp, type RunSetup } from './gateway-run-kit.js';

const dir = mkdtempSync(join(tmpdir(), 'gw-run-'));
let s: RunSetup;
let daemon: Daemon | undefined;

beforeAll(async () => {
  s = await setUp(dir, { serial: 3, ble: 2 });
}, 120_000);

afterAll(async () => {
  if (daemon) await daemon.stop('SIGKILL');
  await s.fleet.stop();
  rmSync(dir, { recursive: true, force: true });
});

const labels = (): string[] => s.fleet.endpoints().map((e) => e.label);
const cfg = (): string[] => ['--config', s.configPath];

/** Every ground-truth frame (produced so far) is in the log once with its bytes. */
async function everyProducedFrameLogged(timeoutMs = 60_000): Promise<void> {
  const logDir = join(s.dataDir, 'log');
  await until(
    async () => {
      const truth = groundTruth(s.fleet.groundTruthPath);
      const stored = new Map((await readLog(logDir)).map((f) => [`${f.serial}/${f.counter}`, f.sha256]));
      return truth.every((t) => stored.get(`${t.serial}/${t.counter}`) === t.sha256);
    },
    'every produced frame in the log',
    timeoutMs,
  );
}

async function framesOf(serial: string): Promise<number> {
  const st = await (daemon as Daemon).status();
  return st.ingest.devices.find((d) => d.serial === serial)?.frames ?? 0;
}

describe('gateway run', () => {
  it('takes frames from serial and BLE packs and answers /healthz, /metrics and /status', async () => {
    daemon = await Daemon.start(s);
    const d = daemon;
    await until(async () => {
      const st = await d.status();
      return labels().every((l) => (st.ingest.devices.find((x) => x.serial === l)?.frames ?? 0) >= 3);
    }, 'three stored frames from every pack', 60_000);
    expect((await fetch(`${d.url ?? ''}/healthz`)).status).toBe(200);
    const metrics = await (await fetch(`${d.url ?? ''}/metrics`)).text();
    const stored = Number(/^packchain_gateway_frames_stored_total (\d+)/m.exec(metrics)?.[1]);
    expect(stored).toBeGreaterThanOrEqual(15);
    expect(metrics).toMatch(/packchain_gateway_transport_channels_open\{transport="ble"\} 2/);
    expect(metrics).toMatch(/packchain_gateway_transport_channels_open\{transport="serial"\} 3/);
    await until(async () => ((await d.status()).store.checkpoint?.size ?? 0) > 0, 'a checkpoint by the policy');
  }, 90_000);

  it('shows a pack\'s history as table, CSV and JSON while the daemon runs', async () => {
    const serial = labels()[0] as string;
    const json = await cli(['history', serial, ...cfg(), '--format', 'json']);
    expect(json.code, json.stderr).toBe(0);
    const rows = JSON.parse(json.stdout) as { counter: number; signature: string; source: string; checkpoint: number | null; socPct: number }[];
    expect(rows.length).toBeGreaterThanOrEqual(3);
    expect(rows.every((r) => r.signature === 'ok')).toBe(true);
    expect(rows.map((r) => r.counter)).toEqual([...rows.map((r) => r.counter)].sort((a, b) => a - b));
    expect(rows[0]?.source).toMatch(/^serial:/);
    const csv = await cli(['history', serial, ...cfg(), '--format', 'csv', '--fields', 'counter,socPct,signature']);
    expect(csv.stdout.split('\r\n')[0]).toBe('counter,socPct,signature');
    expect(csv.stdout).toContain(`${rows[0]?.counter},${rows[0]?.socPct},ok`);
    const table = await cli(['history', serial, ...cfg()]);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/frames; signatures re-verified: \d+ ok/);
    const bad = await cli(['history', serial, ...cfg(), '--fields', 'nope']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('unknown field "nope"');
  }, 60_000);

  it('proves a frame offline: prove, then verify-proof against the trust bundle and the verifier key', async () => {
    const serial = labels()[3] as string; // a BLE pack
    const out = join(dir, 'proof.tlog-proof');
    const p = await cli(['prove', serial, '0', ...cfg(), '--out', out]);
    expect(p.code, p.stderr).toBe(0);
    const v = await cli(['verify-proof', out, '--trust', s.bundlePath, '--gateway-key', s.verifierKey]);
    expect(v.code, v.stderr).toBe(0);
    expect(v.stdout).toContain(`VALID: pack ${serial} frame #0`);
    expect(v.stdout).toContain('logged by packchain.gateway/test-gw');
    // Another gateway's key does not vouch for it; a bundle altered in transit fails.
    const other = await cli(['verify-proof', out, '--trust', s.bundlePath, '--gateway-key', 'packchain.gateway/other+12345678+AQ' + 'A'.repeat(42) + '=']);
    expect(other.code).not.toBe(0);
    const text = readFileSync(out, 'utf8');
    const lines = text.split('\n');
    lines[3] = (lines[3] ?? '').startsWith('A') ? `B${(lines[3] ?? '').slice(1)}` : `A${(lines[3] ?? '').slice(1)}`;
    writeFileSync(join(dir, 'bad.tlog-proof'), lines.join('\n'));
    const bad = await cli(['verify-proof', join(dir, 'bad.tlog-proof'), '--trust', s.bundlePath, '--gateway-key', s.verifierKey]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/INVALID: (MERKLE_PROOF|BUNDLE_MALFORMED)/);
  }, 60_000);

  it('keeps frames flowing after an unplug/replug and a BLE drop', async () => {
    const [serialPack, , , blePack] = labels() as [string, string, string, string];
    const before = { serial: await framesOf(serialPack), ble: await framesOf(blePack) };
    await s.fleet.inject(serialPack, { kind: 'unplug', downMs: 500 });
    await s.fleet.inject(blePack, { kind: 'ble-drop', downMs: 500 });
    await s.fleet.faultsSettled(serialPack);
    await s.fleet.faultsSettled(blePack);
    await until(async () => (await framesOf(serialPack)) >= before.serial + 5 && (await framesOf(blePack)) >= before.ble + 5, 'frames after the faults', 60_000);
  }, 90_000);

  it('stops on SIGTERM with exit 0 and a final checkpoint over the whole log, which verifies', async () => {
    expect(await (daemon as Daemon).stop('SIGTERM')).toBe(0);
    daemon = undefined;
    const store = await LogStore.open({ dir: join(s.dataDir, 'log'), readOnly: true });
    try {
      expect(store.size).toBeGreaterThan(0);
      expect(store.latestCheckpoint()?.size).toBe(store.size);
    } finally {
      await store.close();
    }
    const v = await cli(['verify', ...cfg()]);
    expect(v.code, v.stdout + v.stderr).toBe(0);
    expect(v.stdout).toMatch(/^gateway verify: OK/);
    expect(v.stdout).not.toContain('without a stored certificate');
  }, 60_000);

  it('after kill -9 mid-ingest and a restart, every produced frame is logged once and the log verifies', async () => {
    daemon = await Daemon.start(s);
    const size0 = (await daemon.status()).store.size;
    await until(async () => (await (daemon as Daemon).status()).store.size >= size0 + 20, 'more frames');
    await daemon.stop('SIGKILL');
    daemon = await Daemon.start(s);
    await everyProducedFrameLogged();
    expect(await daemon.stop('SIGTERM')).toBe(0);
    daemon = undefined;
    const log = await readLog(join(s.dataDir, 'log'));
    expect(storedTwice(log)).toEqual([]);
    const v = await cli(['verify', ...cfg()]);
    expect(v.code, v.stdout + v.stderr).toBe(0);
  }, 150_000);

  it('cuts a torn tail on start and the log still verifies', async () => {
    s.writeConfig({ everyEntries: 1_000_000, everyMs: 86_400_000 }); // no checkpoint past the start
    daemon = await Daemon.start(s);
    const size0 = (await daemon.status()).store.size;
    await until(async () => (await (daemon as Daemon).status()).store.size >= size0 + 10, 'frames past the last checkpoint');
    await daemon.stop('SIGKILL');
    daemon = undefined;
    const logDir = join(s.dataDir, 'log');
    const leaves = readdirSync(logDir).filter((n) => n.endsWith('.leaves')).sort().at(-1) as string;
    const path = join(logDir, leaves);
    truncateSync(path, statSync(path).size - 7); // mid-record: the last record loses its tail
    s.writeConfig({ everyEntries: 20, everyMs: 500 });
    daemon = await Daemon.start(s);
    const opened = daemon.lines().find((l) => typeof l.msg === 'string' && l.msg.startsWith('gateway: log opened')) as { report: { cutEntries: number; cutBytes: number } };
    expect(opened.report.cutEntries).toBeGreaterThanOrEqual(1);
    expect(await daemon.stop('SIGTERM')).toBe(0);
    daemon = undefined;
    const v = await cli(['verify', ...cfg()]);
    expect(v.code, v.stdout + v.stderr).toBe(0);
  }, 120_000);

  it('pinpoints one altered byte of a leaf in the middle of the log: exit 1 naming its index', async () => {
    const logDir = join(s.dataDir, 'log');
    const store = await LogStore.open({ dir: logDir, readOnly: true });
    const target = Math.floor(store.size / 2);
    await store.close();
    // Index record of entry `target` (segment 0): receivedAt u64 ‖ counter u64 ‖ leaf offset u32 ‖ pack id u32.
    const idx = openSync(join(logDir, '00000000.idx'), 'r');
    const rec = Buffer.alloc(24);
    readSync(idx, rec, 0, 24, target * 24);
    closeSync(idx);
    const offset = rec.readUInt32BE(16);
    const fd = openSync(join(logDir, '00000000.leaves'), 'r+');
    const b = Buffer.alloc(1);
    readSync(fd, b, 0, 1, offset + 36 + 20);
    b[0] = (b[0] ?? 0) ^ 0x01;
    writeSync(fd, b, 0, 1, offset + 36 + 20);
    closeSync(fd);
    const v = await cli(['verify', ...cfg()]);
    expect(v.code).toBe(1);
    expect(v.stdout).toContain(`TAMPERED: first bad entry ${target}:`);
  }, 60_000);
});
