/**
 * Big uploads against both storage backends: the signatures of an upload are verified in chunks
 * (judge.ts VERIFY_CHUNK) while, on PostgreSQL, the transaction already writes the first leaves —
 * verdicts found in a later chunk, a frame seen twice across chunks and a device equivocation
 * within one upload must come out exactly as in a small upload. Also: a database left at schema
 * version 1 is upgraded to the covering history key (migration 2) with its frames intact, and one
 * left at version 2 gets its tree hashes moved into hash blocks (migration 3) with the tree intact.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseVerifierKey, storedHashCount, TrustStore, verifyProofBundle } from '../protocol/index.js';
import { openEmbedded, openPostgres, type Db } from './db/driver.js';
import { MIGRATIONS } from './db/migrations.js';
import { VERIFY_CHUNK } from './judge.js';
import { Ledger } from './ledger.js';
import { BACKENDS, frameOf, send, T0, TestFactory, TestGateway, testWitness, type TestPack, type TestStorage } from './ledger-testkit.js';

describe.each(BACKENDS)('chunked verification of a big upload ($name)', ({ make }) => {
  let storage: TestStorage;
  let ledger: Ledger;
  let pack: TestPack;
  let other: TestPack;

  beforeAll(async () => {
    storage = await make();
    const f = await TestFactory.create();
    pack = await f.pack('PK-2026-0101');
    other = await f.pack('PK-2026-0102');
    ledger = await Ledger.open({ storage: storage.options, witness: testWitness(), trust: await f.trust(), clock: () => T0, verifyThreads: 2 });
  });

  afterAll(async () => {
    await ledger.close();
    await storage.drop();
  });

  it('verdicts from later chunks, a frame twice and an equivocation within one upload › stored as for a small upload', async () => {
    const n = 2 * VERIFY_CHUNK + 500;
    const forgedAt = VERIFY_CHUNK + 300;
    const againAt = 2 * VERIFY_CHUNK + 100;
    const equivAt = 2 * VERIFY_CHUNK + 200;
    const gw = new TestGateway('chunks', 21);
    await ledger.enrollGateway(gw.vkey);
    for (let i = 0; i < n; i++) {
      if (i === forgedAt) gw.append(pack, pack.forged(i));
      else if (i === againAt) gw.append(pack, pack.frame(50)); // the frame of leaf 50 again
      else if (i === equivAt) gw.append(pack, pack.frame(60, { soc: 5 })); // counter 60 signed twice
      else gw.append(i % 7 === 0 ? other : pack, (i % 7 === 0 ? other : pack).frame(i));
    }
    const r = await send(ledger, gw, gw.request(0, n, [pack, other], { proofFrom: 0 }));
    expect(r).toMatchObject({ stored: n, duplicates: 0, rejected: 2, state: { size: n, staged: n } });
    expect(r.rejects.map((x) => [x.index, x.code])).toEqual([[forgedAt, 'COSE_SIGNATURE'], [equivAt, 'FRAME_EQUIVOCATION']]);
    const h = await ledger.history(pack.serial, { limit: 10_000 });
    const packLeaves = Array.from({ length: n }, (_, i) => i).filter((i) => i % 7 !== 0 && i !== forgedAt && i !== againAt && i !== equivAt);
    expect(h.rows.map((x) => x.counter)).toEqual(packLeaves);
    expect(h.rows.find((x) => x.counter === 50)?.sightings).toBe(2);
    expect(h.rows.find((x) => x.counter === 60)).toMatchObject({ sightings: 1, index: 60, socPct: frameOf(pack.serial, 60).soc / 10 });
    expect((await ledger.history(other.serial, { limit: 10_000 })).rows).toHaveLength(Math.ceil(n / 7));
    // Both refused leaves keep their verdict in the leaves table (the equivocation's written after the frames).
    expect((await ledger.pack(pack.serial))?.rejected).toBe(2);
    expect((await ledger.evidence()).filter((e) => e.kind === 'equivocation')).toHaveLength(1);
    expect(ledger.stats()).toMatchObject({ framesStored: n - 3, framesSeenAgain: 1, equivocations: 1 });
    // The same upload again: same answer, nothing stored twice.
    const again = await send(ledger, gw, gw.request(0, n, [pack, other], { proofFrom: 0 }));
    expect(again).toMatchObject({ stored: 0, duplicates: n, state: r.state });
  });
});

describe.each(BACKENDS)('schema upgrade ($name)', ({ make }) => {
  let storage: TestStorage;
  const more: TestStorage[] = [];
  afterAll(async () => {
    await storage.drop();
    for (const s of more) await s.drop();
  });

  it('a database at version 1 with frames › migration 2 applied at open, history and uploads work on', async () => {
    storage = await make();
    const o = storage.options;
    const db: Db = o.kind === 'embedded' ? await openEmbedded(o.dir) : await openPostgres(o.url, 1);
    try {
      const v1 = MIGRATIONS.find((m) => m.version === 1);
      await db.transaction(async (tx) => {
        await tx.query('CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at bigint NOT NULL)');
        for (const stmt of (v1?.sql ?? '').split(/;\s*\n/).map((s) => s.trim()).filter((s) => s !== '')) await tx.query(stmt);
        await tx.query("INSERT INTO schema_migrations VALUES (1, 'initial schema', 0)");
        await tx.query("INSERT INTO gateways (origin, vkey, enrolled_at, root, size) VALUES ('packchain.gateway/old', 'k', 0, '\\x00', 1)");
        await tx.query(
          `INSERT INTO frames (serial, counter, frame_sha256, gateway_id, idx, received_at, source, cert_sha256, device_time,
             soc, soh, voltage, current, cell_min, cell_max, temp_min, temp_max, cycles, alarms)
           VALUES ('PK-OLD', 7, '\\x01', 1, 0, $1, 'serial:/dev/ttyUSB0', '\\x02', $1, 800, 960, 52000, -1000, 3280, 3290, 210, 250, 300, 0)`,
          [T0],
        );
      });
    } finally {
      await db.close();
    }
    const f = await TestFactory.create();
    const pack = await f.pack('PK-2026-0201');
    const ledger = await Ledger.open({ storage: o, witness: testWitness(), trust: await f.trust(), clock: () => T0, verifyThreads: 0 });
    try {
      expect((await ledger.history('PK-OLD', { limit: 10 })).rows).toMatchObject([{ counter: 7, socPct: 80, origin: 'packchain.gateway/old', index: 0, witnessed: true }]);
      const gw = new TestGateway('after-upgrade', 22);
      await ledger.enrollGateway(gw.vkey);
      for (let i = 0; i < 3; i++) gw.append(pack, pack.frame(i));
      expect(await send(ledger, gw, gw.request(0, 3, [pack], { proofFrom: 0 }))).toMatchObject({ stored: 3, rejected: 0 });
      expect((await ledger.history(pack.serial, { limit: 10 })).rows.map((x) => [x.counter, x.witnessed])).toEqual([[0, true], [1, true], [2, true]]);
    } finally {
      await ledger.close();
    }
  });

  it('a database at version 2 with a tree › migration 3 moves its hashes into blocks, the tree extends and proves as before', async () => {
    const own = await make();
    more.push(own);
    const o = own.options;
    const f = await TestFactory.create();
    const trust = await f.trust();
    const pack = await f.pack('PK-2026-0301');
    const gw = new TestGateway('before-blocks', 23);
    for (let i = 0; i < 100; i++) gw.append(pack, pack.frame(i));
    const open = (): Promise<Ledger> => Ledger.open({ storage: o, witness: testWitness(), trust, clock: () => T0, verifyThreads: 0 });
    let ledger = await open();
    try {
      await ledger.enrollGateway(gw.vkey);
      const first = await send(ledger, gw, gw.request(0, 45, [pack], { proofFrom: 0 }));
      expect(first).toMatchObject({ stored: 45, state: { size: 45 } });
      expect(first.cosigned).not.toBeNull();
    } finally {
      await ledger.close();
    }
    // Back to version 2 as that ledger would have left it: one row per stored hash, per-row gateway references.
    const db: Db = o.kind === 'embedded' ? await openEmbedded(o.dir) : await openPostgres(o.url, 1);
    try {
      await db.transaction(async (tx) => {
        await tx.query('CREATE TABLE hashes (gateway_id integer NOT NULL REFERENCES gateways(id), n bigint NOT NULL, h bytea NOT NULL, PRIMARY KEY (gateway_id, n))');
        await tx.query('INSERT INTO hashes SELECT gateway_id, block * 32 + k, substring(h FROM k * 32 + 1 FOR 32) FROM hash_blocks, generate_series(0, length(h) / 32 - 1) AS k');
        await tx.query('DROP TABLE hash_blocks');
        await tx.query('ALTER TABLE leaves ADD FOREIGN KEY (gateway_id) REFERENCES gateways(id)');
        await tx.query('ALTER TABLE frames ADD FOREIGN KEY (gateway_id) REFERENCES gateways(id)');
        await tx.query('DELETE FROM schema_migrations WHERE version = 3');
      });
      expect(await db.query('SELECT count(*)::int AS n FROM hashes')).toEqual([{ n: storedHashCount(45) }]);
    } finally {
      await db.close();
    }
    ledger = await open();
    try {
      // The consistency proof from 45 is judged against the migrated tree; the new leaves extend it.
      expect(await send(ledger, gw, gw.request(45, 100, [pack], { proofFrom: 45 }))).toMatchObject({ stored: 55, rejected: 0, state: { size: 100 } });
      const info = await ledger.trustInfo();
      const v = verifyProofBundle((await ledger.proofBundle(pack.serial, 7)) ?? '', {
        trust: await TrustStore.create(await f.bundle()),
        logs: info.gateways.map((g) => parseVerifierKey(g.vkey)),
        witnesses: [parseVerifierKey(info.witness)],
        requiredWitnesses: 1,
      });
      expect(v).toMatchObject({ index: 7, frame: { serial: pack.serial, counter: 7 } });
    } finally {
      await ledger.close();
    }
  });
});
