/**
 * The ingest pipeline against simulated packs on real ptys (hw-sim Fleet, socat, the real serialport
 * library through the gateway's SerialTransport) and a real log store on disk: forged frames
 * (bad-signature, wrong-key), a foreign root, a revoked certificate, replays, counter rollbacks,
 * duplicates and frames before the hello are each refused or deduplicated with the right code, and
 * every frame the packs produced is stored exactly once with its genuine bytes.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gatewayOrigin } from '../protocol/index.js';
import { Fleet } from '../hw-sim/index.js';
import { TestFactory } from '../gateway/ingest/ingest-testkit.js';
import { IngestPipeline, logPort, LogStore, SerialTransport } from '../gateway/index.js';
import { groundTruth, logFrames, Provisioner, storedTwice, until } from './gateway-ingest-testkit.js';

const dir = mkdtempSync(join(tmpdir(), 'gw-ingest-faults-'));
let fleet: Fleet;
let store: LogStore;
let pipeline: IngestPipeline;
let transport: SerialTransport;
let prov: Provisioner;
/** Channel id and serial per role. */
const packs: Record<'a' | 'b' | 'revoked' | 'foreign' | 'late', { id: string; serial: string }> = {} as never;

beforeAll(async () => {
  fleet = await Fleet.start({ dir: join(dir, 'fleet'), serial: 5, ble: 0, seed: 61, periodMs: 250, tickMs: 50 });
  const factory = await TestFactory.create();
  const foreign = await TestFactory.create('Foreign');
  const eps = fleet.endpoints();
  (['a', 'b', 'revoked', 'foreign', 'late'] as const).forEach((role, i) => {
    const ep = eps[i];
    if (ep === undefined) throw new Error('fleet too small');
    packs[role] = { id: `serial:${ep.endpoint}`, serial: ep.label };
  });
  const REVOKED_CERT = 'BAD0001';
  store = await LogStore.open({ dir: join(dir, 'log'), origin: gatewayOrigin('ingest-faults') });
  pipeline = await IngestPipeline.open({ log: logPort(store), trust: await factory.trust([REVOKED_CERT]), stateDir: dir, verify: { workers: 1 } });
  prov = new Provisioner(pipeline.events);
  prov.hold(packs.late.id);
  transport = new SerialTransport({ ports: eps.map((e) => e.endpoint), pollMs: 200 });
  await transport.start(prov);
  await Promise.all([
    prov.provision(packs.a.id, packs.a.serial, factory, 'Ed25519'),
    prov.provision(packs.b.id, packs.b.serial, factory, 'ES256'),
    prov.provision(packs.revoked.id, packs.revoked.serial, factory, 'Ed25519', REVOKED_CERT),
    prov.provision(packs.foreign.id, packs.foreign.serial, foreign, 'Ed25519'),
    prov.provision(packs.late.id, packs.late.serial, factory, 'Ed25519'),
  ]);
}, 60_000);

afterAll(async () => {
  await transport.stop();
  await pipeline.close();
  await store.close();
  await fleet.stop();
  rmSync(dir, { recursive: true, force: true });
});

const device = (role: keyof typeof packs) => pipeline.status().devices.find((d) => d.serial === packs[role].serial);

describe('ingest with simulated packs on ptys', () => {
  it('verifies provisioned packs and stores their frames; refuses the revoked and the foreign pack', async () => {
    await until(() => (device('a')?.frames ?? 0) >= 3 && (device('b')?.frames ?? 0) >= 3, 'frames from packs a and b');
    await until(() => pipeline.rejects('CERT_REVOKED') >= 1 && pipeline.rejects('CHAIN_UNTRUSTED') >= 1, 'the revoked and foreign hellos refused');
    const before = { revoked: pipeline.rejects('CERT_REVOKED'), foreign: pipeline.rejects('CHAIN_UNTRUSTED') };
    // Their frames keep coming and keep being refused with the chain's code.
    await until(() => pipeline.rejects('CERT_REVOKED') > before.revoked && pipeline.rejects('CHAIN_UNTRUSTED') > before.foreign, 'their frames refused');
    expect(device('revoked')).toBeUndefined();
    expect(device('foreign')).toBeUndefined();
    const sessions = new Map(pipeline.status().sessions.map((s) => [s.channel, s]));
    expect(sessions.get(packs.revoked.id)).toMatchObject({ state: 'refused', code: 'CERT_REVOKED' });
    expect(sessions.get(packs.foreign.id)).toMatchObject({ state: 'refused', code: 'CHAIN_UNTRUSTED' });
    expect(sessions.get(packs.a.id)?.state).toBe('verified');
  });

  it('rejects frames before the hello NO_SESSION, then takes them all after it', async () => {
    await until(() => pipeline.rejects('NO_SESSION') >= 2, 'frames of the held channel refused');
    expect(device('late')).toBeUndefined();
    prov.release(packs.late.id);
    await until(() => (device('late')?.frames ?? 0) >= 2, 'frames of the released pack stored');
  });

  it('rejects forged frames COSE_SIGNATURE (bad-signature, wrong-key) and stores the genuine ones', async () => {
    const n = pipeline.rejects('COSE_SIGNATURE');
    const bad = await fleet.inject(packs.a.serial, 'bad-signature');
    const wrong = await fleet.inject(packs.b.serial, 'wrong-key');
    expect(bad.applied && wrong.applied).toBe(true);
    await until(() => pipeline.rejects('COSE_SIGNATURE') >= n + 2, 'both forgeries refused');
    const forgedCounter = Number(bad.detail.counter);
    await until(() => (device('a')?.lastCounter ?? -1) >= forgedCounter, 'the genuine frame stored');
  });

  it('treats a replay of an acknowledged frame and a duplicate as duplicates: acked again, stored once', async () => {
    const before = pipeline.status().duplicates;
    expect((await fleet.inject(packs.a.serial, 'replay')).applied).toBe(true);
    expect((await fleet.inject(packs.b.serial, 'duplicate')).applied).toBe(true);
    await until(() => pipeline.status().duplicates >= before + 2, 'two duplicates counted');
  });

  it('refuses rolled-back counters with other bytes COUNTER_REPLAY and never acks them', async () => {
    const n = pipeline.rejects('COUNTER_REPLAY');
    const rec = await fleet.inject(packs.a.serial, { kind: 'counter-rollback', n: 3 });
    expect(rec.applied).toBe(true);
    await until(() => pipeline.rejects('COUNTER_REPLAY') >= n + 3, 'three rollbacks refused');
    expect(device('a')?.replays).toBeGreaterThanOrEqual(3);
  });

  it('has stored every frame the verified packs produced, once, with its genuine bytes, and no injected frame', async () => {
    const verified = new Set([packs.a.serial, packs.b.serial, packs.late.serial]);
    const truth = groundTruth(fleet.groundTruthPath).filter((t) => verified.has(t.serial));
    const want = new Map(truth.map((t) => [`${t.serial}/${t.counter}`, t.sha256]));
    await until(async () => {
      const got = new Map((await logFrames(store)).map((f) => [`${f.serial}/${f.counter}`, f.sha256]));
      return [...want].every(([k, sha]) => got.get(k) === sha);
    }, 'every ground-truth frame in the log');
    const log = await logFrames(store);
    expect(storedTwice(log)).toEqual([]);
    const injected = readFileSync(fleet.faultsPath, 'utf8')
      .split('\n')
      .filter((l) => l !== '')
      .flatMap((l) => [(JSON.parse(l) as { detail: { sha256?: string | string[] } }).detail.sha256 ?? []].flat());
    const stored = new Set(log.map((f) => f.sha256));
    expect(injected.length).toBeGreaterThanOrEqual(5);
    for (const sha of injected) {
      // A replayed or duplicated frame is genuine (its hash is in the ground truth); forgeries and rollbacks never are.
      if (!truth.some((t) => t.sha256 === sha)) expect(stored.has(sha)).toBe(false);
    }
    expect(log.every((f) => verified.has(f.serial))).toBe(true);
  });
});
