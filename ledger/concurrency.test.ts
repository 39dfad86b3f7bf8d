/**
 * Several ledger instances on one PostgreSQL database (the scale-out deployment), each with its own
 * connection pool as a separate process would have: migrations started at once both succeed; one
 * gateway's uploads sent to two instances at the same time are serialised by the gateway's row
 * lock (nothing lost, nothing twice); two gateways carrying the same frames through two instances
 * at once store every frame once with two sightings.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { UploadRequest } from '../protocol/index.js';
import { Ledger } from './ledger.js';
import { codeOf, postgresStorage, send, T0, TestFactory, TestGateway, testWitness, type TestPack, type TestStorage } from './ledger-testkit.js';
import { isLedgerError } from './errors.js';
import type { LedgerOptions } from './types.js';

describe('two ledger instances on one PostgreSQL', () => {
  let storage: TestStorage;
  let options: LedgerOptions;
  let pack: TestPack;
  let one: Ledger;
  let two: Ledger;

  beforeAll(async () => {
    storage = await postgresStorage(4);
    const f = await TestFactory.create();
    pack = await f.pack('PK-2026-0301');
    options = { storage: storage.options, witness: testWitness(), trust: await f.trust(), clock: () => T0, verifyThreads: 1 };
    // Both start at once on an empty database: the advisory lock serialises the migrations.
    [one, two] = await Promise.all([Ledger.open(options), Ledger.open(options)]);
  });

  afterAll(async () => {
    await one.close();
    await two.close();
    await storage.drop();
  });

  it('migrations started at once › both succeed and the schema is applied once', async () => {
    const third = await Ledger.open(options);
    expect(await third.gateways()).toEqual([]);
    await third.close();
  });

  /** Sends `req` until it is not refused for a gap (another instance has not committed the batch before it yet). */
  const persist = async (ledger: Ledger, gw: TestGateway, req: UploadRequest): Promise<{ stored: number; duplicates: number }> => {
    for (;;) {
      try {
        return await send(ledger, gw, req);
      } catch (e) {
        if (!isLedgerError(e, 'UPLOAD_GAP')) throw e;
        await new Promise((r) => setTimeout(r, 5));
      }
    }
  };

  it('one gateway uploading through both instances at once › every leaf stored once, the state the same on both', async () => {
    const gw = new TestGateway('busy', 71);
    await one.enrollGateway(gw.vkey);
    for (let i = 0; i < 400; i++) gw.append(pack, pack.frame(i));
    const batches = [0, 100, 200, 300].map((from) => gw.request(from, from + 100, [pack]));
    // Each instance sends every batch (a client retrying against another process) at the same time.
    const results = await Promise.all([...batches.map((b) => persist(one, gw, b)), ...batches.map((b) => persist(two, gw, b))]);
    expect(results.reduce((n, r) => n + r.stored, 0)).toBe(400);
    expect(results.reduce((n, r) => n + r.duplicates, 0)).toBe(400);
    const tail = await send(one, gw, gw.request(400, 400, [], { proofFrom: 0 }));
    expect(tail.state).toMatchObject({ size: 400, staged: 400 });
    expect(await two.state(await two.enrollGateway(gw.vkey))).toEqual(tail.state);
    const h = await two.history(pack.serial, { limit: 1000 });
    expect(h.rows.map((r) => r.counter)).toEqual([...Array(400).keys()]);
    expect(h.rows.every((r) => r.sightings === 1)).toBe(true);
    expect((await one.pack(pack.serial))?.frames).toBe(400);
  });

  it('two gateways carrying the same frames through two instances at once › every frame once, two sightings', async () => {
    const east = new TestGateway('east', 72);
    const west = new TestGateway('west', 73);
    await one.enrollGateway(east.vkey);
    await two.enrollGateway(west.vkey);
    for (let i = 1000; i < 1500; i++) {
      const frame = pack.frame(i);
      east.append(pack, frame);
      west.append(pack, frame);
    }
    await Promise.all([
      (async () => {
        for (let from = 0; from < 500; from += 50) await send(one, east, east.request(from, from + 50, [pack]));
      })(),
      (async () => {
        for (let from = 0; from < 500; from += 50) await send(two, west, west.request(from, from + 50, [pack]));
      })(),
    ]);
    const h = await one.history(pack.serial, { after: 999, limit: 1000 });
    expect(h.rows.map((r) => r.counter)).toEqual([...Array(500).keys()].map((i) => i + 1000));
    expect(h.rows.every((r) => r.sightings === 2)).toBe(true);
    const p = await two.pack(pack.serial);
    expect(p?.frames).toBe(900);
    expect(p?.gateways.map((g) => [g.origin, g.frames])).toEqual([[east.origin, 500], [west.origin, 500], ['packchain.gateway/busy', 400]].sort((a, b) => String(a[0]).localeCompare(String(b[0]))));
    expect(await codeOf(one.upload(await one.enrollGateway(east.vkey), new Uint8Array(0)))).toBe('UPLOAD_MALFORMED');
  });
});
