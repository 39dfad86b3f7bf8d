/**
 * The daemon assembled from a config around an in-memory transport (the serial and BLE transports
 * are exercised in test/gateway-run.test.ts): checkpoints by the entry policy, a final checkpoint
 * on stop, the certificate store filled by verified sessions, trust reload (good and bad), and the
 * log commands' core — verifyLog finds a CRC-consistent leaf edit (LEAF_HASH) and a damaged
 * checkpoint signature; history rows re-verify signatures; prove builds a bundle protocol accepts.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { crc32, encodeTrustBundle, sha256, okResponse, parseVerifierKey, verifyProofBundle } from '../protocol/index.js';
import { historyRows } from './audit/history.js';
import { proveFrame } from './audit/prove.js';
import { verifyLog } from './audit/verify-log.js';
import { CertStore } from './certs.js';
import { parseConfig } from './config.js';
import { Gateway } from './daemon.js';
import { isGatewayError } from './errors.js';
import { TestFactory, type TestPack } from './ingest/ingest-testkit.js';
import { createKeyFile } from './keys.js';
import { LogStore } from './store/log-store.js';
import { MemoryTransport } from './transport/memory.js';

let factory: TestFactory;
let pack: TestPack;
const cleanups: (() => Promise<void> | void)[] = [];
const quiet = pino({ level: 'silent' });

beforeAll(async () => {
  factory = await TestFactory.create();
  pack = await factory.pack('PACK-0007');
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function started(everyEntries = 4): Promise<{ gw: Gateway; dir: string; transport: MemoryTransport; verifierKey: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'gw-daemon-'));
  cleanups.push(() => {
    rmSync(dir, { recursive: true, force: true });
  });
  const key = await createKeyFile(join(dir, 'gateway.key'), 'unit-gw');
  writeFileSync(join(dir, 'trust-bundle.json'), encodeTrustBundle(await factory.bundle()));
  const config = parseConfig(`name: unit-gw\ndataDir: ${JSON.stringify(join(dir, 'data'))}\nlog: { checkpoint: { everyEntries: ${everyEntries}, everyMs: 86400000 } }\ningest: { workers: 0 }\nhttp: { listen: null }\n`, { baseDir: dir });
  const transport = new MemoryTransport();
  const gw = await Gateway.start(config, { logger: quiet, transports: [transport] });
  cleanups.push(() => gw.stop());
  return { gw, dir, transport, verifierKey: key.verifierKey };
}

async function stream(gw: Gateway, transport: MemoryTransport, counters: readonly number[]): Promise<void> {
  const d = transport.device('bay1');
  d.onReceive((m) => {
    if (m.type === 'request' && m.op === 'hello') {
      const { type: _t, ...hello } = pack.hello(0, 0);
      d.send(okResponse(m.id, { op: 'hello', hello }));
    }
  });
  d.plug();
  await expect.poll(() => gw.pipeline?.status().sessions.filter((s) => s.state === 'verified').length).toBe(1);
  for (const c of counters) d.send({ type: 'frame', cose: pack.frame(c) });
  await expect.poll(() => gw.store.size).toBe(counters.length);
}

describe('Gateway', () => {
  describe('when frames arrive and the daemon stops', () => {
    it('signs by the entry policy, keeps the chain, and signs a final checkpoint over the whole log', async () => {
      const { gw, dir, transport } = await started(4);
      await stream(gw, transport, [0, 1, 2, 3, 4, 5]);
      await expect.poll(() => gw.store.latestCheckpoint()?.size).toBeGreaterThanOrEqual(4);
      expect(gw.certs.chain(sha256(pack.hello(0, 0).chain[0] as Uint8Array))?.length).toBe(2);
      await gw.stop();
      const store = await LogStore.open({ dir: join(dir, 'data', 'log'), readOnly: true });
      cleanups.push(() => store.close());
      expect(store.latestCheckpoint()?.size).toBe(6);
    });
  });

  describe('reloadTrust', () => {
    it('when the bundle file is damaged › keeps the old trust store and reports false; a good file › true', async () => {
      const { gw, dir } = await started();
      const old = gw.trust;
      writeFileSync(join(dir, 'trust-bundle.json'), '{"format":"nope"}');
      expect(await gw.reloadTrust()).toBe(false);
      expect(gw.trust).toBe(old);
      expect(gw.stats.trustReloadFailures).toBe(1);
      writeFileSync(join(dir, 'trust-bundle.json'), encodeTrustBundle(await factory.bundle()));
      expect(await gw.reloadTrust()).toBe(true);
      expect(gw.trust).not.toBe(old);
    });
  });
});

describe('the log commands core', () => {
  async function stoppedLog(): Promise<{ dir: string; logDir: string; verifierKey: string }> {
    const { gw, dir, transport, verifierKey } = await started(3);
    await stream(gw, transport, [0, 1, 2, 3, 4, 5, 6, 7]);
    await gw.stop();
    return { dir, logDir: join(dir, 'data', 'log'), verifierKey };
  }
  const open = async (logDir: string): Promise<LogStore> => {
    const store = await LogStore.open({ dir: logDir, readOnly: true });
    cleanups.push(() => store.close());
    return store;
  };

  it('verifyLog › a clean log › ok with every frame re-verified', async () => {
    const { dir, logDir, verifierKey } = await stoppedLog();
    const r = await verifyLog({ store: await open(logDir), certs: CertStore.open(join(dir, 'data', 'certs'), false), verifier: parseVerifierKey(verifierKey), trust: await factory.trust() });
    expect(r).toMatchObject({ ok: true, entriesChecked: 8, framesVerified: 8, framesWithoutChain: 0, problemCount: 0 });
    expect(r.checkpointsChecked).toBeGreaterThanOrEqual(1);
  });

  it('verifyLog › a leaf edited with its CRC fixed › LEAF_HASH at that index', async () => {
    const { dir, logDir, verifierKey } = await stoppedLog();
    const { openSync, readSync, writeSync, closeSync } = await import('node:fs');
    const fd = openSync(join(logDir, '00000000.idx'), 'r');
    const rec = Buffer.alloc(24);
    readSync(fd, rec, 0, 24, 5 * 24);
    closeSync(fd);
    const off = rec.readUInt32BE(16);
    const lf = openSync(join(logDir, '00000000.leaves'), 'r+');
    const head = Buffer.alloc(4);
    readSync(lf, head, 0, 4, off);
    const len = head.readUInt32BE(0);
    const body = Buffer.alloc(36 + len);
    readSync(lf, body, 0, body.length, off);
    body[36 + 3] = (body[36 + 3] ?? 0) ^ 0x01; // inside receivedAt of the leaf: still a valid leaf
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(body) >>> 0, 0);
    writeSync(lf, body, 0, body.length, off);
    writeSync(lf, crc, 0, 4, off + body.length);
    closeSync(lf);
    const r = await verifyLog({ store: await open(logDir), certs: CertStore.open(join(dir, 'data', 'certs'), false), verifier: parseVerifierKey(verifierKey) });
    expect(r.ok).toBe(false);
    expect(r.problems[0]).toMatchObject({ index: 5, code: 'LEAF_HASH' });
  });

  it('verifyLog › checked against another gateway key › every checkpoint fails its signature', async () => {
    const { dir, logDir } = await stoppedLog();
    const other = await createKeyFile(join(dir, 'other.key'), 'unit-gw');
    const r = await verifyLog({ store: await open(logDir), certs: CertStore.open(join(dir, 'data', 'certs'), false), verifier: parseVerifierKey(other.verifierKey) });
    expect(r.ok).toBe(false);
    expect(r.problems.every((p) => p.code === 'NOTE_UNVERIFIED' || p.code === 'NOTE_SIGNATURE')).toBe(true);
  });

  it('history rows and prove › signatures ok, covered by the checkpoint; the bundle verifies; unknown counter › NOT_FOUND', async () => {
    const { dir, logDir, verifierKey } = await stoppedLog();
    const store = await open(logDir);
    const certs = CertStore.open(join(dir, 'data', 'certs'), false);
    const rows = await historyRows(store, certs, 'PACK-0007', {});
    expect(rows.map((r) => [r.counter, r.signature, r.checkpoint])).toEqual([0, 1, 2, 3, 4, 5, 6, 7].map((c) => [c, 'ok', 8]));
    const p = await proveFrame(store, certs, 'PACK-0007', 6);
    const v = verifyProofBundle(p.bundle, { trust: await factory.trust(), logs: [parseVerifierKey(verifierKey)] });
    expect(v).toMatchObject({ index: 6, treeSize: 8, origin: 'packchain.gateway/unit-gw' });
    await expect(proveFrame(store, certs, 'PACK-0007', 99)).rejects.toSatisfy((e) => isGatewayError(e, 'NOT_FOUND'));
  });
});
