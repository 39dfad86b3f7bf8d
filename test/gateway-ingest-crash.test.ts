/**
 * kill -9 during ingest (DESIGN.md decision 4): a child process runs the gateway (real LogStore on
 * disk, the ingest pipeline, SerialTransport) against simulated packs on ptys that stream frames
 * fast; the parent kills it with SIGKILL in mid-ingest, twice, at random moments, and restarts it on
 * the same directories. Afterwards: every frame any child acknowledged is in the log, the packs'
 * resends filled every gap (every ground-truth frame is there with its genuine bytes, no gap left
 * open), and nothing is stored twice.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { encodeTrustBundle } from '../protocol/index.js';
import { Fleet } from '../hw-sim/index.js';
import { TestFactory } from '../gateway/ingest/ingest-testkit.js';
import { type PipelineStatus, SerialTransport } from '../gateway/index.js';
import { groundTruth, Provisioner, readLog, storedTwice, until } from './gateway-ingest-testkit.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const dir = mkdtempSync(join(tmpdir(), 'gw-ingest-crash-'));
const children = new Set<ChildProcess>();
let fleet: Fleet | undefined;

afterAll(async () => {
  for (const c of children) c.kill('SIGKILL');
  await fleet?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** Acked (channel id, counter) pairs from the children's ack log. */
function ackedPairs(path: string): { id: string; counter: number }[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .flatMap((l) => {
      const [id = '', lo = '0', hi = '0'] = l.split(' ');
      return Array.from({ length: Number(hi) - Number(lo) + 1 }, (_, i) => ({ id, counter: Number(lo) + i }));
    });
}

async function startChild(cfg: object): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'test/gateway-ingest-crash-child.ts'), JSON.stringify(cfg)], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  child.on('exit', () => children.delete(child));
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  await until(() => out.includes('ready') || child.exitCode !== null, 'the child to start');
  if (!out.includes('ready')) throw new Error(`child failed: ${err}`);
  return child;
}

describe('ingest across kill -9', () => {
  it('loses no acknowledged frame, fills every gap from the resends and stores nothing twice', async () => {
    fleet = await Fleet.start({ dir: join(dir, 'fleet'), serial: 4, ble: 0, seed: 73, periodMs: 60, tickMs: 30 });
    const factory = await TestFactory.create();
    const eps = fleet.endpoints();
    const serialOf = new Map(eps.map((e) => [`serial:${e.endpoint}`, e.label]));

    // Provision every pack over its pty with no gateway listening: their first frames wait in the rings.
    const prov = new Provisioner({ open: () => undefined, message: () => undefined, reject: () => undefined, close: () => undefined });
    const setup = new SerialTransport({ ports: eps.map((e) => e.endpoint), pollMs: 200 });
    await setup.start(prov);
    await Promise.all(eps.map((e, i) => prov.provision(`serial:${e.endpoint}`, e.label, factory, i % 2 === 0 ? 'Ed25519' : 'ES256')));
    await setup.stop();

    const bundlePath = join(dir, 'trust.json');
    writeFileSync(bundlePath, encodeTrustBundle(await factory.bundle()));
    const ackLog = join(dir, 'acks.log');
    const cfg = { logDir: join(dir, 'log'), stateDir: dir, ports: eps.map((e) => e.endpoint), bundlePath, ackLog, statusPath: join(dir, 'status.json') };

    for (let round = 0; round < 2; round++) {
      const child = await startChild(cfg);
      const before = ackedPairs(ackLog).length;
      await until(() => ackedPairs(ackLog).length >= before + 30 + Math.floor(Math.random() * 60), 'acks from the child');
      child.kill('SIGKILL');
      await until(() => child.exitCode !== null || child.signalCode !== null, 'the child to die');
    }

    const last = await startChild(cfg);
    const truth = groundTruth(fleet.groundTruthPath);
    await until(() => {
      const acked = new Set(ackedPairs(ackLog).map((a) => `${serialOf.get(a.id) ?? '?'}/${a.counter}`));
      return truth.every((t) => acked.has(`${t.serial}/${t.counter}`));
    }, 'every frame produced so far acknowledged', 60_000);
    last.kill('SIGTERM');
    await until(() => last.exitCode !== null, 'the last child to close');
    await fleet.stop();

    const log = await readLog(cfg.logDir);
    const stored = new Map(log.map((f) => [`${f.serial}/${f.counter}`, f.sha256]));
    const acked = ackedPairs(ackLog).map((a) => `${serialOf.get(a.id) ?? '?'}/${a.counter}`);
    expect(acked.filter((k) => !stored.has(k))).toEqual([]);
    expect(truth.filter((t) => stored.get(`${t.serial}/${t.counter}`) !== t.sha256)).toEqual([]);
    expect(storedTwice(log)).toEqual([]);
    expect(new Set(log.map((f) => f.sha256)).size).toBe(log.length);

    const status = JSON.parse(readFileSync(cfg.statusPath, 'utf8')) as PipelineStatus;
    expect(status.devices.map((d) => d.missing)).toEqual(eps.map(() => 0));
    expect(status.recovery.snapshotSize + status.recovery.replayed).toBeGreaterThan(0);
    expect(status.recovery.undecodable).toBe(0);
    process.stderr.write(
      `  ingest crash test: ${log.length} entries, ${truth.length} produced, ${acked.length} acks logged, last child: duplicates ${status.duplicates}, recovery ${JSON.stringify(status.recovery)}\n`,
    );
  }, 150_000);
});
