/**
 * Fork detection against both storage backends: a gateway whose new checkpoint does not extend the
 * one the ledger accepted is refused with CHECKPOINT_CONFLICT (same size other root, smaller size
 * other root, rewritten history), told apart from a merely bad consistency proof
 * (CONSISTENCY_PROOF_INVALID) and from leaves that do not match a valid proof (ENTRIES_MISMATCH);
 * evidence keeps both signed checkpoints and the proof, and an alert is raised.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { proveTree, toBase64 } from '../protocol/index.js';
import { Ledger } from './ledger.js';
import { BACKENDS, codeOf, send, T0, TestFactory, TestGateway, testWitness, type TestPack, type TestStorage } from './ledger-testkit.js';
import type { LedgerAlert } from './types.js';

describe.each(BACKENDS)('Ledger fork detection ($name)', ({ make }) => {
  let storage: TestStorage;
  let ledger: Ledger;
  let pack: TestPack;
  const alerts: LedgerAlert[] = [];
  let seed = 40;
  let counter = 0;

  /** A gateway whose leaves [0, 6) the ledger accepted under a cosigned checkpoint, with 4 more leaves in its log. */
  const accepted = async (name: string): Promise<{ gw: TestGateway; note: string; liar: (keep: number) => TestGateway }> => {
    const s = seed++;
    const gw = new TestGateway(name, s);
    await ledger.enrollGateway(gw.vkey);
    for (let i = 0; i < 10; i++) gw.append(pack, pack.frame(counter++));
    const r = await send(ledger, gw, gw.request(0, 6, [pack], { proofFrom: 0 }));
    // The same gateway key over a log that keeps only its first `keep` leaves and then differs.
    const liar = (keep: number): TestGateway => {
      const l = new TestGateway(name, s);
      for (let i = 0; i < 10; i++) {
        if (i < keep) l.appendLeaf(gw.leaves[i] as Uint8Array);
        else l.append(pack, pack.frame(counter++));
      }
      return l;
    };
    return { gw, note: r.cosigned ?? '', liar };
  };

  beforeAll(async () => {
    storage = await make();
    const f = await TestFactory.create();
    pack = await f.pack('PK-2026-0100');
    ledger = await Ledger.open({ storage: storage.options, witness: testWitness(), trust: await f.trust(), clock: () => T0, verifyThreads: 0, onAlert: (a) => alerts.push(a) });
  });

  afterAll(async () => {
    await ledger.close();
    await storage.drop();
  });

  it('same size, another root › CHECKPOINT_CONFLICT, both signed checkpoints kept as evidence, alert raised', async () => {
    const { gw, note, liar } = await accepted('same-size');
    const l = liar(3);
    const offending = l.checkpoint(6);
    const err = await send(ledger, l, l.request(6, 6, [], { size: 6, proofFrom: 6 })).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'CHECKPOINT_CONFLICT', state: { size: 6 } });
    const ev = (await ledger.evidence()).at(-1);
    expect(ev).toMatchObject({ kind: 'checkpoint-conflict', origin: gw.origin, accepted: note, offending });
    expect(alerts.at(-1)).toMatchObject({ kind: 'checkpoint-conflict', level: 'error', origin: gw.origin, evidenceId: ev?.id });
  });

  it('a smaller size with another root › CHECKPOINT_CONFLICT; with the ledger\'s own root › answered, nothing new cosigned', async () => {
    const { gw, liar } = await accepted('smaller');
    const l = liar(1);
    expect(await codeOf(send(ledger, l, l.request(6, 6, [], { size: 3, proofFrom: 6, proof: [] })))).toBe('CHECKPOINT_CONFLICT');
    const covered = await send(ledger, gw, gw.request(6, 6, [], { size: 3, proofFrom: 6, proof: [] }));
    expect(covered).toMatchObject({ cosigned: null, state: { size: 6 } });
  });

  it('rewritten history (a bigger tree that does not extend the accepted one) › CHECKPOINT_CONFLICT with the proof kept', async () => {
    const { gw, liar } = await accepted('rewrite');
    const l = liar(3);
    const req = l.request(6, 10, [pack], { size: 10, proofFrom: 6 });
    expect(await codeOf(send(ledger, l, req))).toBe('CHECKPOINT_CONFLICT');
    const ev = (await ledger.evidence()).at(-1);
    expect(ev).toMatchObject({ kind: 'checkpoint-conflict', origin: gw.origin, offending: req.checkpoint, proof: (req.proof ?? []).map(toBase64) });
    // Nothing of the refused upload was stored: the honest continuation is accepted.
    expect((await send(ledger, gw, gw.request(6, 10, [pack], { proofFrom: 6 }))).state).toMatchObject({ size: 10, staged: 10 });
  });

  it('a bad consistency proof over the right leaves › CONSISTENCY_PROOF_INVALID (not a conflict), warning alert', async () => {
    const { gw } = await accepted('bad-proof');
    const proof = proveTree(10, 6, gw.store).map((h, i) => (i === 0 ? h.map((b) => b ^ 1) : h));
    const conflicts = ledger.stats().conflicts;
    expect(await codeOf(send(ledger, gw, gw.request(6, 10, [pack], { proofFrom: 6, proof })))).toBe('CONSISTENCY_PROOF_INVALID');
    expect((await ledger.evidence()).at(-1)).toMatchObject({ kind: 'bad-proof', origin: gw.origin });
    expect(alerts.at(-1)).toMatchObject({ kind: 'bad-proof', level: 'warning' });
    expect(ledger.stats().conflicts).toBe(conflicts);
    expect(ledger.stats().badProofs).toBeGreaterThan(0);
  });

  it('a valid proof with leaves that do not give the signed root › ENTRIES_MISMATCH, no evidence', async () => {
    const { gw, liar } = await accepted('mismatch');
    const other = liar(6);
    const before = (await ledger.evidence()).length;
    const req = { ...gw.request(6, 10, [pack], { proofFrom: 6 }), entries: other.leaves.slice(6, 10) };
    expect(await codeOf(send(ledger, gw, req))).toBe('ENTRIES_MISMATCH');
    expect(await ledger.evidence()).toHaveLength(before);
  });
});
