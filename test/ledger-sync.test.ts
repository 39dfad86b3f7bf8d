/**
 * Gateway → ledger sync end to end (issue 7 items 1–5), embedded storage: `packchain ledger run`
 * and `packchain gateway run` as child processes, hw-sim packs on real ptys. Every frame the packs
 * produce reaches the ledger's history exactly once; the gateway's checkpoint comes back cosigned
 * and verifies with the ledger as witness; an unenrolled gateway and a replayed request are
 * refused; while the ledger is down the gateway keeps ingesting and its lag rises in status, then
 * it catches up; a kill -9 of the gateway and a restart resume without duplicates; when the packs
 * stop, the lag returns to 0. The steps share one fleet, one ledger directory and run in order.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNoteSigner, gatewayOrigin, openCheckpoint, parseVerifierKey, signSyncRequest } from '../protocol/index.js';
import { groundTruth, readLog, until } from './gateway-ingest-testkit.js';
import { cli, Daemon, setUp, type RunSetup } from './gateway-run-kit.js';
import { allHistory, api, freePort, LedgerProcess, ledgerCli, syncConfig } from './ledger-sync-kit.js';

const dir = mkdtempSync(join(tmpdir(), 'ledger-sync-'));
const ledgerDir = join(dir, 'ledger');
let s: RunSetup;
let ledger: LedgerProcess | undefined;
let gateway: Daemon | undefined;
let token = '';
let witnessKey = '';
let url = '';
let fleetStopped = false;

interface SyncStatus {
  store: { size: number };
  sync: { syncedSize: number; lagEntries: number; lagSeconds: number; consecutiveFailures?: number; lastErrorCode?: string; lastSyncAt?: number; cosignedSize?: number };
}
const status = async (): Promise<SyncStatus> => (await (gateway as Daemon).status()) as unknown as SyncStatus;

const startLedger = async (): Promise<LedgerProcess> => LedgerProcess.start(['--dir', ledgerDir, '--trust', s.bundlePath, '--listen', url.replace('http://', '')]);

/** Every ground-truth frame produced so far is in the ledger's history exactly once. */
async function ledgerHoldsEveryFrame(timeoutMs = 90_000): Promise<void> {
  const serials = s.fleet.endpoints().map((e) => e.label);
  const truth = groundTruth(s.fleet.groundTruthPath);
  await until(
    async () => {
      const held = new Set<string>();
      for (const serial of serials) for (const r of await allHistory(url, token, serial)) held.add(`${r.serial}/${r.counter}`);
      return truth.every((t) => held.has(`${t.serial}/${t.counter}`));
    },
    'every produced frame in the ledger',
    timeoutMs,
  );
}

beforeAll(async () => {
  s = await setUp(dir, { serial: 3, ble: 0 });
  const init = await ledgerCli(['init', '--dir', ledgerDir, '--name', 'packchain.ledger/test', '--json']);
  expect(init.code, init.stderr).toBe(0);
  witnessKey = (JSON.parse(init.stdout) as { verifierKey: string }).verifierKey;
  const enroll = await ledgerCli(['enroll', s.verifierKey, '--dir', ledgerDir, '--label', 'line 1']);
  expect(enroll.code, enroll.stderr).toBe(0);
  const t = await ledgerCli(['token', 'create', 'engineer', '--dir', ledgerDir]);
  expect(t.code, t.stderr).toBe(0);
  token = t.stdout.trim();
  url = `http://127.0.0.1:${await freePort()}`;
  ledger = await startLedger();
  await syncConfig(s, { name: 'test-gw', ledgerUrl: url, witnessKey });
}, 180_000);

afterAll(async () => {
  await gateway?.stop('SIGKILL');
  await ledger?.stop('SIGKILL');
  if (!fleetStopped) await s.fleet.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('gateway sync to the ledger (embedded storage)', () => {
  it('delivers every frame to the ledger once, and the checkpoint comes back cosigned by the ledger as witness', async () => {
    gateway = await Daemon.start(s);
    await until(async () => (await status()).sync.syncedSize > 30, 'the ledger to acknowledge 30 entries', 60_000);
    await ledgerHoldsEveryFrame();
    const note = readFileSync(join(s.dataDir, 'sync', 'cosigned-checkpoint'), 'utf8');
    const cp = openCheckpoint(note, { origin: gatewayOrigin('test-gw'), verifiers: [parseVerifierKey(s.verifierKey)], witnesses: [parseVerifierKey(witnessKey)], requiredWitnesses: 1 });
    expect(cp.witnesses.map((w) => w.name)).toEqual(['packchain.ledger/test']);
    expect(cp.size).toBeGreaterThan(0);
    const st = await status();
    expect(st.sync.cosignedSize).toBeGreaterThan(0);
    expect(st.sync.lastSyncAt).toBeGreaterThan(0);
    const packs = await api(url, token, '/api/v1/packs');
    expect(packs.status).toBe(200);
    expect((packs.body as { packs: { serial: string; gateways: string[] }[] }).packs.map((p) => p.serial).sort()).toEqual(s.fleet.endpoints().map((e) => e.label).sort());
  }, 150_000);

  it('refuses an unenrolled gateway and a replayed request', async () => {
    const stranger = createNoteSigner(gatewayOrigin('stranger'), new Uint8Array(32).fill(3));
    const path = '/v1/gateway/state';
    const sign = (signer: typeof stranger): string => signSyncRequest({ method: 'GET', path, timestamp: Date.now(), nonce: crypto.getRandomValues(new Uint8Array(16)), body: new Uint8Array(0) }, signer);
    const r1 = await fetch(`${url}${path}`, { headers: { authorization: sign(stranger) } });
    expect(r1.status).toBe(401);
    expect(((await r1.json()) as { error: { code: string } }).error.code).toBe('GATEWAY_UNKNOWN');
    // The enrolled gateway's key: a fresh request passes, the same header again is a replay.
    const keyLine = readFileSync(join(s.dir, 'gateway.key'), 'utf8').trim();
    const { signerFromKey } = await import('../protocol/index.js');
    const header = sign(signerFromKey(keyLine));
    const first = await fetch(`${url}${path}`, { headers: { authorization: header } });
    expect(first.status).toBe(200);
    const again = await fetch(`${url}${path}`, { headers: { authorization: header } });
    expect(again.status).toBe(401);
    expect(((await again.json()) as { error: { code: string } }).error.code).toBe('AUTH_REPLAY');
    const noToken = await fetch(`${url}/api/v1/packs`);
    expect(noToken.status).toBe(401);
  }, 30_000);

  it('keeps ingesting while the ledger is down, shows the lag, and catches up when it returns', async () => {
    await (ledger as LedgerProcess).stop('SIGTERM');
    const before = await status();
    const down = await until(async () => {
      const st = await status();
      return (st.sync.consecutiveFailures ?? 0) >= 2 && st.sync.lagEntries > before.sync.lagEntries + 10 ? st : undefined;
    }, 'lag to rise and failures to be counted while the ledger is down', 60_000);
    expect(down.sync.lastErrorCode).toBe('SYNC_UNREACHABLE');
    expect(down.store.size).toBeGreaterThan(before.store.size);
    expect(down.sync.lagSeconds).toBeGreaterThan(0);
    const metrics = await (await fetch(`${(gateway as Daemon).url ?? ''}/metrics`)).text();
    expect(Number(/^packchain_gateway_sync_lag_entries (\d+)/m.exec(metrics)?.[1])).toBeGreaterThan(10);
    expect(metrics).toMatch(/packchain_gateway_sync_errors_total\{code="SYNC_UNREACHABLE"\} [1-9]/);

    ledger = await startLedger();
    const target = (await status()).store.size;
    await until(async () => {
      const st = await status();
      return st.sync.syncedSize >= target && st.sync.consecutiveFailures === 0;
    }, 'the gateway to catch up after the outage', 60_000);
  }, 150_000);

  it('resumes after kill -9 of the gateway without duplicates', async () => {
    await until(async () => (await status()).sync.syncedSize > 0, 'some sync');
    await (gateway as Daemon).stop('SIGKILL');
    gateway = await Daemon.start(s);
    const target = (await status()).store.size;
    await until(async () => (await status()).sync.syncedSize >= target, 'the restarted gateway to sync what it holds', 60_000);
  }, 120_000);

  it('when the packs stop, the lag returns to 0 and the ledger holds every frame exactly once', async () => {
    await s.fleet.stop();
    fleetStopped = true;
    await until(async () => {
      const st = await status();
      return st.sync.lagEntries === 0 && st.store.size > 0 ? st : undefined;
    }, 'the lag to return to 0', 60_000);
    // Exactly what the gateway logged (frames the packs made in their last instant may not have reached it).
    const logged = new Set((await readLog(join(s.dataDir, 'log'))).map((f) => `${f.serial}/${f.counter}`));
    const held = new Set<string>();
    for (const serial of s.fleet.endpoints().map((e) => e.label)) {
      const hist = await allHistory(url, token, serial);
      const keys = hist.map((r) => r.counter);
      expect(new Set(keys).size, `${serial}: a counter twice in history`).toBe(keys.length);
      expect(hist.every((r) => r.sightings === 1 && r.origin === gatewayOrigin('test-gw'))).toBe(true);
      for (const r of hist) held.add(`${r.serial}/${r.counter}`);
    }
    expect([...held].sort()).toEqual([...logged].sort());
    const st = await status();
    expect(st.sync.syncedSize).toBe(st.store.size);
  }, 120_000);

  it('gateway prove uses the cosigned checkpoint, and verify-proof --witness-key requires the ledger\'s cosignature', async () => {
    const serial = s.fleet.endpoints()[0]?.label ?? '';
    const out = join(dir, 'witnessed.tlog-proof');
    const p = await cli(['prove', serial, '1', '--config', s.configPath, '--out', out]);
    expect(p.code, p.stderr).toBe(0);
    expect(p.stderr).toContain('cosigned by the ledger');
    const v = await cli(['verify-proof', out, '--trust', s.bundlePath, '--gateway-key', s.verifierKey, '--witness-key', witnessKey]);
    expect(v.code, v.stderr).toBe(0);
    expect(v.stdout).toContain('witnessed by packchain.ledger/test');
    // A bundle without the cosignature fails when the witness is required.
    const bare = readFileSync(out, 'utf8').replace(/^— packchain\.ledger\/test .*\n/m, '');
    writeFileSync(join(dir, 'bare.tlog-proof'), bare);
    const b = await cli(['verify-proof', join(dir, 'bare.tlog-proof'), '--trust', s.bundlePath, '--gateway-key', s.verifierKey, '--witness-key', witnessKey]);
    expect(b.code).toBe(1);
    expect(b.stderr).toContain('CHECKPOINT_WITNESSES');
  }, 60_000);
});
