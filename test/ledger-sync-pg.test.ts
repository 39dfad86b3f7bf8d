/**
 * Scale-out end to end (issue 7 item 4): two `packchain ledger run` processes on one PostgreSQL
 * database (a fresh one on the machine's server), two gateways each with its own hw-sim packs on
 * ptys (one fleet, its ports split), the first syncing to one ledger process and the second to the other. Operator commands
 * (enroll, token) run beside the services on the same database. Every frame either gateway logged
 * is in the history exactly once, read through either process — nothing lost, nothing duplicated.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gatewayOrigin } from '../protocol/index.js';
import { readLog, until } from './gateway-ingest-testkit.js';
import { Daemon, setUp, type RunSetup } from './gateway-run-kit.js';
import { allHistory, freshDatabase, LedgerProcess, ledgerCli, syncConfig } from './ledger-sync-kit.js';

const dir = mkdtempSync(join(tmpdir(), 'ledger-pg-'));
const ledgerDir = join(dir, 'ledger');
let db: Awaited<ReturnType<typeof freshDatabase>> | undefined;
const ledgers: LedgerProcess[] = [];
const gateways: Daemon[] = [];
const setups: RunSetup[] = [];
let fleetStopped = false;
let token = '';

beforeAll(async () => {
  db = await freshDatabase('ledger_sync');
  const pgArgs = ['--dir', ledgerDir, '--postgres', db.url];
  const init = await ledgerCli(['init', '--dir', ledgerDir, '--name', 'packchain.ledger/scale', '--json']);
  expect(init.code, init.stderr).toBe(0);
  // One fleet (one factory, one trust bundle), its ports split between two gateways.
  const s = await setUp(dir, { serial: 4, ble: 0 });
  const ports = s.fleet.endpoints().map((e) => e.endpoint);
  for (let i = 0; i < 2; i++) ledgers.push(await LedgerProcess.start([...pgArgs, '--trust', s.bundlePath, '--listen', '127.0.0.1:0']));
  const names = ['gw-a', 'gw-b'];
  for (let i = 0; i < 2; i++) {
    const configPath = join(dir, `${names[i] as string}.json`);
    const dataDir = join(dir, `data-${names[i] as string}`);
    const vkey = await syncConfig(s, { name: names[i] as string, ledgerUrl: (ledgers[i] as LedgerProcess).url, configPath, ports: ports.slice(2 * i, 2 * i + 2), dataDir });
    setups.push({ ...s, configPath, dataDir });
    // Operator commands work beside running services on PostgreSQL.
    const e = await ledgerCli(['enroll', vkey, ...pgArgs]);
    expect(e.code, e.stderr).toBe(0);
  }
  const t = await ledgerCli(['token', 'create', 'engineer', ...pgArgs]);
  expect(t.code, t.stderr).toBe(0);
  token = t.stdout.trim();
}, 240_000);

afterAll(async () => {
  for (const g of gateways) await g.stop('SIGKILL');
  for (const l of ledgers) await l.stop('SIGKILL');
  if (!fleetStopped) await setups[0]?.fleet.stop();
  await db?.drop();
  rmSync(dir, { recursive: true, force: true });
});

describe('two ledger processes on one PostgreSQL database', () => {
  it('take two gateways\' logs with nothing lost or duplicated', async () => {
    for (const s of setups) gateways.push(await Daemon.start(s));
    const synced = async (g: Daemon): Promise<{ size: number; synced: number; lag: number }> => {
      const st = (await g.status()) as unknown as { store: { size: number }; sync: { syncedSize: number; lagEntries: number } };
      return { size: st.store.size, synced: st.sync.syncedSize, lag: st.sync.lagEntries };
    };
    await until(async () => {
      for (const g of gateways) if ((await synced(g)).synced < 20) return false;
      return true;
    }, 'both gateways to sync 20 entries', 90_000);
    await (setups[0] as RunSetup).fleet.stop();
    fleetStopped = true;
    await until(async () => {
      for (const g of gateways) if ((await synced(g)).lag !== 0) return false;
      return true;
    }, 'both gateways to have no lag', 60_000);
    for (const g of gateways) await g.stop('SIGTERM');

    const names = ['gw-a', 'gw-b'];
    for (let i = 0; i < 2; i++) {
      const s = setups[i] as RunSetup;
      const logged = (await readLog(join(s.dataDir, 'log'))).map((f) => `${f.serial}/${f.counter}`).sort();
      for (const l of ledgers) {
        const held: string[] = [];
        for (const serial of s.fleet.endpoints().filter((e) => logged.some((k) => k.startsWith(`${e.label}/`))).map((e) => e.label)) {
          const rows = await allHistory(l.url, token, serial);
          expect(rows.every((r) => r.sightings === 1 && r.origin === gatewayOrigin(names[i] as string))).toBe(true);
          held.push(...rows.map((r) => `${r.serial}/${r.counter}`));
        }
        expect(held.sort()).toEqual(logged);
      }
    }
  }, 240_000);
});
