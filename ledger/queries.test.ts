/**
 * What service engineers read, against both storage backends: packs, one pack, history paging and
 * time ranges, frames seen by two gateways held once, witnessed marks, proof bundles that verify
 * offline with protocol verifyProofBundle (the ledger's witness cosignature required), passport
 * frames, tokens, and a restart (close, open) that keeps everything.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { parseVerifierKey, TrustStore, verifyProofBundle, type TrustBundle } from '../protocol/index.js';
import { Ledger } from './ledger.js';
import { parseIntegers } from './queries.js';
import { BACKENDS, codeOf, send, T0, TestFactory, TestGateway, testWitness, type TestPack, type TestStorage } from './ledger-testkit.js';
import type { LedgerOptions } from './types.js';

describe.each(BACKENDS)('Ledger queries ($name)', ({ make }) => {
  let storage: TestStorage;
  let ledger: Ledger;
  let options: LedgerOptions;
  let bundle: TrustBundle;
  let a: TestPack;
  let b: TestPack;
  const g1 = new TestGateway('north', 61);
  const g2 = new TestGateway('south', 62);

  beforeAll(async () => {
    storage = await make();
    const f = await TestFactory.create();
    a = await f.pack('PK-2026-0201');
    b = await f.pack('PK-2026-0202', 'ES256');
    bundle = await f.bundle();
    options = { storage: storage.options, witness: testWitness(), trust: await TrustStore.create(bundle), clock: () => T0, verifyThreads: 2 };
    ledger = await Ledger.open(options);
    await ledger.enrollGateway(g1.vkey, 'north');
    await ledger.enrollGateway(g2.vkey, 'south');
    // north: a 0..199 (every frame, alarms on 150..159), b 0..49; south carries a 100..199 again, then b 50..59.
    for (let i = 0; i < 200; i++) g1.append(a, a.frame(i, i >= 150 && i < 160 ? { alarms: 0b101 } : {}));
    for (let i = 0; i < 50; i++) g1.append(b, b.frame(i));
    for (let i = 100; i < 200; i++) g2.appendLeaf(g1.leaves[i] as Uint8Array);
    for (let i = 50; i < 60; i++) g2.append(b, b.frame(i));
    await send(ledger, g1, g1.request(0, 250, [a, b], { proofFrom: 0 }));
    await send(ledger, g2, g2.request(0, 100, [a, b], { proofFrom: 0 }));
    await send(ledger, g2, g2.request(100, 110, [a, b]));
  });

  afterAll(async () => {
    await ledger.close();
    await storage.drop();
  });

  it('packs › by prefix, with counts, gateways and the latest frame', async () => {
    const list = await ledger.packs('PK-2026-02', 10);
    expect(list.map((p) => [p.serial, p.frames, p.firstCounter, p.lastCounter, p.gateways])).toEqual([
      ['PK-2026-0201', 200, 0, 199, [g1.origin, g2.origin]],
      ['PK-2026-0202', 60, 0, 59, [g1.origin, g2.origin]],
    ]);
    expect(list[1]?.latest).toMatchObject({ counter: 59, origin: g2.origin, witnessed: false });
    expect(await ledger.packs('PK-2026-03', 10)).toEqual([]);
    expect(await ledger.packs('PK_', 10)).toEqual([]);
    expect(await codeOf(ledger.packs('', 0))).toBe('BAD_QUERY');
  });

  it('pack › per-gateway sightings and the certificate', async () => {
    const p = await ledger.pack(a.serial);
    expect(p?.gateways.map((g) => [g.origin, g.frames])).toEqual([[g1.origin, 200], [g2.origin, 100]]);
    expect(p?.certificate).toMatchObject({ subject: `CN=${a.serial}, serialNumber=${a.serial}`, serial: a.certSerialHex, alg: 'Ed25519' });
    expect((await ledger.pack(b.serial))?.certificate?.alg).toBe('ES256');
    expect(await ledger.pack('PK-2026-9999')).toBeUndefined();
  });

  it('history › every frame once, sightings across gateways, display units, paging by counter', async () => {
    const page1 = await ledger.history(a.serial, { limit: 120 });
    expect(page1.rows).toHaveLength(120);
    expect(page1.next).toBe(119);
    const page2 = await ledger.history(a.serial, { after: page1.next ?? 0, limit: 120 });
    expect(page2.next).toBeNull();
    const rows = [...page1.rows, ...page2.rows];
    expect(rows.map((r) => r.counter)).toEqual([...Array(200).keys()]);
    expect(rows.map((r) => r.sightings)).toEqual([...Array(200).keys()].map((i) => (i >= 100 ? 2 : 1)));
    expect(rows.every((r) => r.origin === g1.origin && r.witnessed)).toBe(true);
    expect(rows[155]).toMatchObject({ alarms: 5, socPct: 81.5, voltageV: 52.48, cellSpreadMv: 3, tempMinC: 21.5 });
    expect(rows[155]?.alarmNames.length).toBe(2);
  });

  it('history › receivedAt range [since, until)', async () => {
    const all = (await ledger.history(a.serial, { limit: 1000 })).rows;
    const since = Date.parse(all[10]?.receivedAt ?? '');
    const until = Date.parse(all[20]?.receivedAt ?? '');
    const r = await ledger.history(a.serial, { since, until, limit: 1000 });
    expect(r.rows.map((x) => x.counter)).toEqual([...Array(10).keys()].map((i) => i + 10));
    expect(await codeOf(ledger.history(a.serial, { limit: 100_001 }))).toBe('BAD_QUERY');
  });

  it('proof bundle › verifies offline with the ledger as required witness; unwitnessed frames have none', async () => {
    const text = await ledger.proofBundle(a.serial, 42);
    const trust = await TrustStore.create(bundle);
    const info = await ledger.trustInfo();
    const v = verifyProofBundle(text ?? '', {
      trust,
      logs: info.gateways.map((g) => parseVerifierKey(g.vkey)),
      witnesses: [parseVerifierKey(info.witness)],
      requiredWitnesses: 1,
    });
    expect(v).toMatchObject({ origin: g1.origin, index: 42, frame: { serial: a.serial, counter: 42 } });
    expect(await ledger.proofBundle(b.serial, 55)).toBeUndefined(); // south's leaves beyond its checkpoint
    expect(await ledger.proofBundle(a.serial, 5000)).toBeUndefined();
  });

  it('passport frames › decoded frames oldest first with provenance', async () => {
    const frames = await ledger.passportFrames(b.serial);
    expect(frames.map((f) => f.frame.counter)).toEqual([...Array(60).keys()]);
    expect(frames[0]).toMatchObject({ origin: g1.origin, index: 200, witnessed: true });
    expect(frames[0]?.leafHash).toMatch(/^[0-9a-f]{64}$/);
    expect(frames[59]).toMatchObject({ origin: g2.origin, witnessed: false });
  });

  it('tokens › created once, verified, listed, revoked', async () => {
    const t = await ledger.createToken('alice');
    expect(t).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(await ledger.verifyToken(t)).toBe('alice');
    expect(await ledger.verifyToken(`${t}x`)).toBeUndefined();
    expect(await codeOf(ledger.createToken('alice'))).toBe('TOKEN_EXISTS');
    expect(await codeOf(ledger.createToken('bad name'))).toBe('TOKEN_NAME');
    await ledger.revokeToken('alice');
    expect(await ledger.verifyToken(t)).toBeUndefined();
    expect(await codeOf(ledger.revokeToken('alice'))).toBe('TOKEN_UNKNOWN');
    expect((await ledger.tokens()).map((x) => [x.name, x.revokedAt !== null])).toEqual([['alice', true]]);
    const t2 = await ledger.createToken('alice');
    expect(await ledger.verifyToken(t2)).toBe('alice');
  });

  it('restart (close, open) › keeps gateways, state, frames and evidence; the embedded store is locked while open', async () => {
    const before = { gws: await ledger.gateways(), hist: await ledger.history(a.serial, { limit: 1000 }), state: await ledger.state((await ledger.gateways())[0] ?? never()) };
    if (storage.name === 'embedded') expect(await codeOf(Ledger.open(options))).toBe('STORAGE_LOCKED');
    await ledger.close();
    expect(await codeOf(ledger.packs('', 1))).toBe('LEDGER_CLOSED');
    ledger = await Ledger.open(options);
    expect(await ledger.gateways()).toEqual(before.gws);
    expect(await ledger.history(a.serial, { limit: 1000 })).toEqual(before.hist);
    expect(await ledger.state(before.gws[0] ?? never())).toEqual(before.state);
    const r = await send(ledger, g2, g2.request(110, 110, [], { proofFrom: 100 }));
    expect(r.state.size).toBe(110);
  });
});

function never(): never {
  throw new Error('unreachable');
}

describe('parseIntegers (history rows)', () => {
  it('reads what Number() reads from each comma-separated field of 16 integers', () => {
    const field = fc.oneof(fc.integer({ min: -(2 ** 53) + 1, max: 2 ** 53 - 1 }).map(String), fc.constantFrom('', '-', '1x', '007', '-0', '12345678901234567'));
    fc.assert(
      fc.property(fc.array(field, { minLength: 16, maxLength: 16 }), (fields) => {
        const out = new Float64Array(16);
        parseIntegers(fields.join(','), out, 0, 16);
        expect([...out]).toEqual(fields.map(Number));
      }),
      { numRuns: 5000, seed: 5 },
    );
  });
});
