/**
 * Uploads against both storage backends (PGlite in a temp dir, a fresh database on the machine's
 * PostgreSQL): verify-again of every leaf, witnessing, idempotence, gaps, request authentication.
 * Gateway logs, device certificates and frames are built with protocol code (ledger-testkit.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openCheckpoint, verifierOf, type NoteVerifier } from '../protocol/index.js';
import { Ledger } from './ledger.js';
import { BACKENDS, codeOf, send, T0, TestFactory, TestGateway, testWitness, type TestPack, type TestStorage } from './ledger-testkit.js';
import type { LedgerAlert } from './types.js';

const UPLOAD = '/v1/gateway/upload';

describe.each(BACKENDS)('Ledger uploads ($name)', ({ make }) => {
  let storage: TestStorage;
  let ledger: Ledger;
  let good: TestPack;
  let revoked: TestPack;
  let foreign: TestPack;
  let witness: NoteVerifier;
  const alerts: LedgerAlert[] = [];
  let seed = 10;
  const gateway = async (name: string): Promise<TestGateway> => {
    const gw = new TestGateway(name, seed++);
    await ledger.enrollGateway(gw.vkey, name);
    return gw;
  };

  beforeAll(async () => {
    storage = await make();
    const f = await TestFactory.create();
    good = await f.pack('PK-2026-0001');
    revoked = await f.pack('PK-2026-0002', 'ES256');
    foreign = await (await TestFactory.create('Foreign')).pack('PK-2026-0003');
    witness = verifierOf(testWitness());
    ledger = await Ledger.open({
      storage: storage.options, witness: testWitness(), trust: await f.trust([revoked.certSerialHex]), clock: () => T0, verifyThreads: 1,
      onAlert: (a) => alerts.push(a),
    });
  });

  afterAll(async () => {
    await ledger.close();
    await storage.drop();
  });

  it('happy path › stores every leaf, accepts the checkpoint and returns it cosigned by the ledger as witness', async () => {
    const gw = await gateway('happy');
    for (let i = 0; i < 300; i++) gw.append(good, good.frame(i));
    const r = await send(ledger, gw, gw.request(0, 300, [good], { proofFrom: 0 }));
    expect(r).toMatchObject({ stored: 300, duplicates: 0, rejected: 0, state: { size: 300, staged: 300 } });
    const cp = openCheckpoint(r.cosigned ?? '', { origin: gw.origin, verifiers: [gw.verifier], witnesses: [witness], requiredWitnesses: 1 });
    expect(cp.size).toBe(300);
    expect(r.state.checkpoint).toBe(r.cosigned);
    expect(await ledger.state(await ledger.enrollGateway(gw.vkey))).toEqual(r.state);
  });

  it('consecutive uploads of one gateway arriving at once, the later first › taken in order of their first index: none refused, every leaf once', async () => {
    const gw = await gateway('in-flight');
    for (let i = 0; i < 600; i++) gw.append(good, good.frame(5000 + i));
    // Each with the chains its leaves name, as the sync client sends them.
    const reqs = [0, 200, 400].map((from) => gw.request(from, from + 200, [good], from === 400 ? { proofFrom: 0 } : undefined));
    const results = await Promise.all([send(ledger, gw, reqs[2]!), send(ledger, gw, reqs[1]!), send(ledger, gw, reqs[0]!)]);
    expect(results.map((r) => [r.stored, r.duplicates, r.rejected])).toEqual([[200, 0, 0], [200, 0, 0], [200, 0, 0]]);
    expect(results[0].state).toMatchObject({ size: 600, staged: 600 });
    expect(results[0].cosigned).not.toBeNull();
  });

  it('leaves without a checkpoint are staged; a later checkpoint with a consistency proof extends the accepted one', async () => {
    const gw = await gateway('staged');
    for (let i = 0; i < 10; i++) gw.append(good, good.frame(1000 + i));
    const a = await send(ledger, gw, gw.request(0, 6, [good], { proofFrom: 0 }));
    expect(a.state).toMatchObject({ size: 6, staged: 6 });
    const b = await send(ledger, gw, gw.request(6, 10, [good]));
    expect(b).toMatchObject({ stored: 4, cosigned: null, state: { size: 6, staged: 10 } });
    const c = await send(ledger, gw, gw.request(10, 10, [], { proofFrom: 6 }));
    expect(c.state).toMatchObject({ size: 10, staged: 10 });
    expect(c.cosigned).not.toBeNull();
  });

  it('the same upload twice › gives the same answer and stores nothing twice', async () => {
    const gw = await gateway('twice');
    for (let i = 0; i < 50; i++) gw.append(good, good.frame(2000 + i));
    const req = gw.request(0, 50, [good], { proofFrom: 0 });
    const first = await send(ledger, gw, req);
    const again = await send(ledger, gw, req);
    expect(again).toEqual({ ...first, stored: 0, duplicates: 50 });
    const h = await ledger.history(good.serial, { after: 1999, limit: 100 });
    expect(h.rows.filter((r) => r.counter >= 2000 && r.counter < 2050).map((r) => r.sightings)).toEqual(Array(50).fill(1));
  });

  it('an upload starting beyond the held leaves › UPLOAD_GAP with the state attached', async () => {
    const gw = await gateway('gap');
    for (let i = 0; i < 5; i++) gw.append(good, good.frame(3000 + i));
    await send(ledger, gw, gw.request(0, 2, [good]));
    const err = await send(ledger, gw, gw.request(3, 5, [good])).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'UPLOAD_GAP', state: { staged: 2, size: 0 } });
  });

  it('forged, revoked and foreign-root frames › stored in the tree with their verdict, kept out of history, counted', async () => {
    const gw = await gateway('verdicts');
    gw.append(good, good.frame(4000));
    gw.append(good, good.forged(4001));
    gw.append(revoked, revoked.frame(1));
    gw.append(foreign, foreign.frame(1));
    gw.append(good, good.frame(4002));
    const r = await send(ledger, gw, gw.request(0, 5, [good, revoked, foreign], { proofFrom: 0 }));
    expect(r).toMatchObject({ stored: 5, rejected: 3, state: { size: 5 } });
    expect(r.rejects.map((x) => [x.index, x.code])).toEqual([[1, 'COSE_SIGNATURE'], [2, 'CERT_REVOKED'], [3, 'CHAIN_UNTRUSTED']]);
    const h = await ledger.history(good.serial, { after: 3999, limit: 10 });
    expect(h.rows.filter((x) => x.counter < 5000).map((x) => x.counter)).toEqual([4000, 4002]);
    expect(await ledger.history(revoked.serial, { limit: 10 })).toEqual({ rows: [], next: null });
    expect((await ledger.pack(revoked.serial))?.rejected).toBe(1);
    expect(ledger.stats().framesRejected).toMatchObject({ COSE_SIGNATURE: 1, CERT_REVOKED: 1, CHAIN_UNTRUSTED: 1 });
  });

  it('a leaf naming a certificate nobody uploaded › CERT_UNKNOWN', async () => {
    const gw = await gateway('nocert');
    gw.append(good, good.frame(4100));
    const r = await send(ledger, gw, { ...gw.request(0, 1, []), certs: [] });
    // The pack's certificate is stored from earlier uploads: found by hash, so the frame verifies.
    expect(r.rejected).toBe(0);
    const other = await (await TestFactory.create('Unseen')).pack('PK-2026-0099');
    gw.append(other, other.frame(1));
    const r2 = await send(ledger, gw, gw.request(1, 2, []));
    expect(r2.rejects.map((x) => x.code)).toEqual(['CERT_UNKNOWN']);
  });

  it('a different leaf at a held index › ENTRY_CONFLICT, evidence kept, alert raised', async () => {
    const gw = await gateway('rewrite-entry');
    gw.append(good, good.frame(4200));
    await send(ledger, gw, gw.request(0, 1, [good]));
    const liar = new TestGateway('rewrite-entry', seed - 1);
    liar.append(good, good.frame(4201));
    expect(await codeOf(send(ledger, liar, liar.request(0, 1, [good])))).toBe('ENTRY_CONFLICT');
    expect(alerts.at(-1)).toMatchObject({ kind: 'entry-conflict', origin: gw.origin, level: 'error' });
    expect((await ledger.evidence()).at(-1)).toMatchObject({ kind: 'entry-conflict', origin: gw.origin });
  });

  it('a checkpoint beyond the leaves, a stale proof, a bad signature, another origin › refused with their codes', async () => {
    const gw = await gateway('cp-codes');
    for (let i = 0; i < 8; i++) gw.append(good, good.frame(4300 + i));
    await send(ledger, gw, gw.request(0, 4, [good], { proofFrom: 0 }));
    expect(await codeOf(send(ledger, gw, gw.request(4, 6, [good], { size: 8, proofFrom: 4 })))).toBe('CHECKPOINT_BEYOND_ENTRIES');
    const stale = await send(ledger, gw, gw.request(4, 8, [good], { size: 8, proofFrom: 2 })).catch((e: unknown) => e);
    expect(stale).toMatchObject({ code: 'CHECKPOINT_STALE', state: { size: 4, staged: 4 } });
    const other = new TestGateway('cp-codes', 99);
    for (let i = 0; i < 8; i++) other.appendLeaf(gw.leaves[i] as Uint8Array);
    expect(await codeOf(send(ledger, gw, gw.request(4, 8, [good], { proofFrom: 4, note: other.checkpoint(8) })))).toBe('CHECKPOINT_SIGNATURE');
    expect(await codeOf(send(ledger, gw, { ...gw.request(4, 8, [good]), origin: 'packchain.gateway/else' }))).toBe('ORIGIN_MISMATCH');
    expect(await codeOf(ledger.upload(await ledger.enrollGateway(gw.vkey), new Uint8Array([1, 2, 3])))).toBe('UPLOAD_MALFORMED');
    expect((await send(ledger, gw, gw.request(4, 8, [good], { proofFrom: 4 }))).state.size).toBe(8);
  });

  it('a replayed request › AUTH_REPLAY; a bad signature, an unknown or disabled gateway › refused', async () => {
    const gw = await gateway('auth');
    const body = gw.body(gw.request(0, 0, []));
    const header = gw.authorize('POST', UPLOAD, body, T0);
    const who = await ledger.authenticateGateway(header, 'POST', UPLOAD, body);
    expect(who.origin).toBe(gw.origin);
    expect(await codeOf(ledger.authenticateGateway(header, 'POST', UPLOAD, body))).toBe('AUTH_REPLAY');
    expect(await codeOf(ledger.authenticateGateway(gw.authorize('POST', UPLOAD, body, T0), 'POST', UPLOAD, new Uint8Array([9])))).toBe('AUTH_FAILED');
    expect(await codeOf(ledger.authenticateGateway(gw.authorize('POST', UPLOAD, body, T0 - 10 * 60_000), 'POST', UPLOAD, body))).toBe('AUTH_FAILED');
    expect(await codeOf(ledger.authenticateGateway(undefined, 'POST', UPLOAD, body))).toBe('AUTH_FAILED');
    const stranger = new TestGateway('stranger', 200);
    expect(await codeOf(ledger.authenticateGateway(stranger.authorize('POST', UPLOAD, body, T0), 'POST', UPLOAD, body))).toBe('GATEWAY_UNKNOWN');
    await ledger.setGatewayDisabled(gw.origin, true);
    expect(await codeOf(ledger.authenticateGateway(gw.authorize('POST', UPLOAD, body, T0), 'POST', UPLOAD, body))).toBe('GATEWAY_DISABLED');
    await ledger.setGatewayDisabled(gw.origin, false);
    expect(ledger.stats()).toMatchObject({ replays: 1 });
  });

  it('enrollment › same key gives the same record, another key for the origin GATEWAY_EXISTS, bad keys GATEWAY_KEY', async () => {
    const gw = new TestGateway('enroll', 300);
    const a = await ledger.enrollGateway(gw.vkey, 'first');
    expect(await ledger.enrollGateway(gw.vkey, 'again')).toEqual(a);
    expect(await codeOf(ledger.enrollGateway(new TestGateway('enroll', 301).vkey))).toBe('GATEWAY_EXISTS');
    expect(await codeOf(ledger.enrollGateway('not a key'))).toBe('GATEWAY_KEY');
    expect(await codeOf(ledger.enrollGateway(testWitnessKey()))).toBe('GATEWAY_KEY');
    expect((await ledger.gateways()).map((g) => g.origin)).toContain(gw.origin);
  });

  it('a device that signs two different frames with one counter › FRAME_EQUIVOCATION, the first kept', async () => {
    const g1 = await gateway('equiv-1');
    const g2 = await gateway('equiv-2');
    g1.append(good, good.frame(4400, { soc: 100 }));
    g2.append(good, good.frame(4400, { soc: 900 }));
    await send(ledger, g1, g1.request(0, 1, [good]));
    const r = await send(ledger, g2, g2.request(0, 1, [good]));
    expect(r.rejects.map((x) => x.code)).toEqual(['FRAME_EQUIVOCATION']);
    expect(alerts.at(-1)).toMatchObject({ kind: 'equivocation', origin: g2.origin });
    const row = (await ledger.history(good.serial, { after: 4399, limit: 1 })).rows[0];
    expect(row).toMatchObject({ counter: 4400, socPct: 10, origin: g1.origin, sightings: 1 });
  });
});

function testWitnessKey(): string {
  const w = testWitness();
  return `${w.name}+${w.keyHash.toString(16).padStart(8, '0')}+${Buffer.concat([Buffer.from([4]), Buffer.from(w.publicKey)]).toString('base64')}`;
}
