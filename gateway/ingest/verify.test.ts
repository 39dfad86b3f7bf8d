import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Worker } from 'node:worker_threads';
import { decodeLeaf, DeviceKeyCache, encodeLeaf, leafHash, parseSign1, type VerifiedDevice } from '../../protocol/index.js';
import { isGatewayError } from '../errors.js';
import { TestFactory, type TestPack } from './ingest-testkit.js';
import type { FrameVerdict } from './verify-frame.js';
import { verifyBatch, verifyFrame, verifyFrameAndLeaf } from './verify-frame.js';
import { VerifyPool } from './verify.js';

let factory: TestFactory;
let ed: TestPack;
let p256: TestPack;
let edDevice: VerifiedDevice;
let p256Device: VerifiedDevice;

beforeAll(async () => {
  factory = await TestFactory.create();
  const trust = await factory.trust();
  ed = await factory.pack('PACK-ED-1', 'Ed25519');
  p256 = await factory.pack('PACK-P256-1', 'ES256');
  edDevice = trust.verifyChain(ed.chain, new Date());
  p256Device = trust.verifyChain(p256.chain, new Date());
});

function run(pool: VerifyPool, jobs: { cose: Uint8Array; device: VerifiedDevice }[]): Promise<FrameVerdict[]> {
  const out: FrameVerdict[] = [];
  return new Promise((resolve, reject) => {
    for (const j of jobs) {
      const ok = pool.submit({ cose: j.cose, key: j.device, certSha256: j.device.certSha256 }, (v) => {
        out.push(v);
        if (out.length === jobs.length) resolve(out);
      });
      if (!ok) reject(new Error('refused'));
    }
  });
}

describe('verifyFrame', () => {
  it('when the frame is genuine › returns its counter, time and its signed payload as its identity', () => {
    const cose = ed.frame(7);
    const v = verifyFrame(cose, edDevice);
    expect(v.ok && v.counter).toBe(7);
    expect(v.ok && v.identity).toBe(Buffer.from(parseSign1(cose).payload).toString('latin1'));
    const w = verifyFrame(p256.frame(9), p256Device);
    expect(w.ok && w.counter).toBe(9);
  });

  it('when the signature is forged under the device kid › returns COSE_SIGNATURE', () => {
    expect(verifyFrame(ed.forged(7), edDevice)).toMatchObject({ ok: false, code: 'COSE_SIGNATURE' });
  });

  it('when the frame comes from another device key › returns COSE_KID_MISMATCH or COSE_ALG_MISMATCH', () => {
    expect(verifyFrame(p256.frame(1), edDevice)).toMatchObject({ ok: false, code: 'COSE_ALG_MISMATCH' });
    expect(verifyFrame(ed.frame(1), { ...edDevice, kid: new Uint8Array(16) })).toMatchObject({ ok: false, code: 'COSE_KID_MISMATCH' });
  });

  it('when the validly signed payload names another serial › returns FRAME_SERIAL_MISMATCH with the counter', () => {
    expect(verifyFrame(ed.frame(3, { serial: 'OTHER-1' }), edDevice)).toMatchObject({ ok: false, code: 'FRAME_SERIAL_MISMATCH', counter: 3 });
  });

  it('when the bytes are not a COSE_Sign1 › returns a CBOR_* or COSE_* code, never throws', () => {
    for (const bad of [new Uint8Array(0), Uint8Array.of(0xd2), Uint8Array.of(0xff, 0x00), new Uint8Array(800)]) {
      const v = verifyFrame(bad, edDevice);
      expect(v.ok).toBe(false);
      expect(v.ok ? '' : v.code).toMatch(/^(CBOR|COSE)_/);
    }
  });
});

describe('verifyFrameAndLeaf', () => {
  const fields = { receivedAt: 1_767_225_600_123, source: 'serial:/dev/ttyUSB3' };

  it('when the frame is genuine › returns its log leaf as encodeLeaf builds it and the RFC 9162 leaf hash', () => {
    const cose = ed.frame(11);
    const v = verifyFrameAndLeaf(cose, edDevice, edDevice.certSha256, fields);
    const expected = encodeLeaf({ ...fields, certSha256: edDevice.certSha256, frame: cose });
    expect(v.ok && v.counter).toBe(11);
    expect(v.ok && v.leaf?.data).toEqual(expected);
    expect(v.ok && v.leaf?.leafHash).toEqual(leafHash(expected));
  });

  it('when the frame is forged › returns COSE_SIGNATURE and builds no leaf', () => {
    expect(verifyFrameAndLeaf(ed.forged(2), edDevice, edDevice.certSha256, fields)).toMatchObject({ ok: false, code: 'COSE_SIGNATURE' });
  });

  it('when the leaf cannot be encoded (source beyond the leaf cap) › returns LEAF_MALFORMED with the counter', () => {
    const v = verifyFrameAndLeaf(ed.frame(4), edDevice, edDevice.certSha256, { ...fields, source: 'x'.repeat(2000) });
    expect(v).toMatchObject({ ok: false, code: 'LEAF_MALFORMED', counter: 4 });
  });
});

describe('VerifyPool', () => {
  let pool: VerifyPool;
  afterAll(async () => {
    await pool.close();
  });

  it('when the queue is deep › verifies on worker threads (TS source loaded through tsx) in submission order', async () => {
    pool = await VerifyPool.start({ workers: 2, inlineBelow: 0, batchMax: 16, helpBatch: 0 });
    const jobs = Array.from({ length: 200 }, (_, i) =>
      i % 7 === 3 ? { cose: ed.forged(i), device: edDevice } : i % 2 === 0 ? { cose: ed.frame(i), device: edDevice } : { cose: p256.frame(i), device: p256Device },
    );
    const out = await run(pool, jobs);
    expect(out.map((v) => (v.ok ? v.counter : v.code))).toEqual(jobs.map((_, i) => (i % 7 === 3 ? 'COSE_SIGNATURE' : i)));
    expect(pool.stats.offloaded).toBe(200);
    expect(pool.stats.batches).toBeGreaterThanOrEqual(13);
  });

  it('when a worker dies with a batch › that batch fails WORKER_FAILED, a new worker takes over', async () => {
    const slots = (pool as unknown as { slots: { worker: Worker }[] }).slots;
    const pending = run(pool, Array.from({ length: 32 }, (_, i) => ({ cose: ed.frame(1000 + i), device: edDevice })));
    await slots[0]?.worker.terminate();
    const out = await pending;
    expect(out.every((v) => v.ok || v.code === 'WORKER_FAILED')).toBe(true);
    expect(pool.stats.workerFailures).toBe(1);
    await expect.poll(() => pool.stats.workers).toBe(2);
    const again = await run(pool, [{ cose: ed.frame(5000), device: edDevice }]);
    expect(again[0]).toMatchObject({ ok: true, counter: 5000 });
  });

  it('when every worker is full and frames still wait › the main thread verifies some itself, verdicts still in submission order', async () => {
    const busy = await VerifyPool.start({ workers: 1, inlineBelow: 0, batchMax: 8, helpBatch: 4 });
    try {
      const jobs = Array.from({ length: 120 }, (_, i) => (i % 9 === 4 ? { cose: ed.forged(i), device: edDevice } : { cose: ed.frame(i), device: edDevice }));
      const out = await run(busy, jobs);
      expect(out.map((v) => (v.ok ? v.counter : v.code))).toEqual(jobs.map((_, i) => (i % 9 === 4 ? 'COSE_SIGNATURE' : i)));
      // The worker takes two batches of 8 at once; the main thread 4 per turn while it holds them.
      expect(busy.stats.inline).toBeGreaterThan(0);
      expect(busy.stats.offloaded).toBeGreaterThan(0);
      expect(busy.stats.inline + busy.stats.offloaded).toBe(120);
    } finally {
      await busy.close();
    }
  });

  it('when the load is light › verifies inline without a worker round trip', async () => {
    const light = await VerifyPool.start({ workers: 1, inlineBelow: 4 });
    try {
      const out = await run(light, [{ cose: ed.frame(1), device: edDevice }]);
      expect(out[0]).toMatchObject({ ok: true, counter: 1 });
      expect(light.stats).toMatchObject({ inline: 1, offloaded: 0 });
    } finally {
      await light.close();
    }
  });

  it('when the queue is full › refuses the frame (the caller does not ack it) and never calls back for it', async () => {
    const small = await VerifyPool.start({ workers: 0, maxQueued: 3 });
    try {
      const calls: number[] = [];
      const results = [1, 2, 3, 4].map((c) => small.submit({ cose: ed.frame(c), key: edDevice, certSha256: edDevice.certSha256 }, () => calls.push(c)));
      expect(results).toEqual([true, true, true, false]);
      await expect.poll(() => calls).toEqual([1, 2, 3]);
      expect(small.stats.refused).toBe(1);
    } finally {
      await small.close();
    }
  });

  it('when a device key cannot be imported in the worker › its frames fail COSE_KEY, others pass', async () => {
    const bad = { ...edDevice, publicKey: { ...edDevice.publicKey, raw: new Uint8Array(31) }, certSha256: new Uint8Array(32).fill(9) };
    const out = await run(pool, [
      { cose: ed.frame(1), device: bad },
      { cose: ed.frame(2), device: edDevice },
      { cose: ed.frame(3), device: bad },
      { cose: ed.frame(4), device: edDevice },
      { cose: ed.frame(5), device: edDevice },
    ]);
    expect(out.map((v) => (v.ok ? v.counter : v.code))).toEqual(['COSE_KEY', 2, 'COSE_KEY', 4, 5]);
  });

  it('when closed with frames queued › delivers INGEST_BUSY for them and refuses new ones', async () => {
    const p = await VerifyPool.start({ workers: 0 });
    const got: FrameVerdict[] = [];
    p.submit({ cose: ed.frame(1), key: edDevice, certSha256: edDevice.certSha256 }, (v) => got.push(v));
    await p.close();
    expect(got).toEqual([expect.objectContaining({ ok: false, code: 'INGEST_BUSY' })]);
    expect(p.submit({ cose: ed.frame(2), key: edDevice, certSha256: edDevice.certSha256 }, () => undefined)).toBe(false);
  });

  it('when leaves are asked for › workers and the inline path return the same leaf bytes and leaf hashes, none for failures', async () => {
    const inline = await VerifyPool.start({ workers: 0 });
    try {
      const jobs = Array.from({ length: 40 }, (_, i) => ({
        cose: i % 9 === 4 ? ed.forged(i) : ed.frame(i),
        key: edDevice,
        certSha256: edDevice.certSha256,
        ...(i % 10 === 7 ? {} : { leaf: { receivedAt: 1_767_225_600_000 + i, source: `serial:/dev/ttyUSB${i % 3}` } }),
      }));
      const collect = (p: VerifyPool): Promise<FrameVerdict[]> =>
        new Promise((resolve) => {
          const out: FrameVerdict[] = [];
          for (const j of jobs) {
            p.submit(j, (v) => {
              out.push(v);
              if (out.length === jobs.length) resolve(out);
            });
          }
        });
      const [viaWorkers, viaInline] = [await collect(pool), await collect(inline)];
      jobs.forEach((j, i) => {
        const w = viaWorkers[i];
        expect(w?.ok).toBe(i % 9 !== 4);
        if (!w?.ok) return;
        if (j.leaf === undefined) {
          expect(w.leaf).toBeUndefined();
          return;
        }
        const expected = encodeLeaf({ ...j.leaf, certSha256: edDevice.certSha256, frame: j.cose });
        expect(w.leaf?.data).toEqual(expected);
        expect(w.leaf?.leafHash).toEqual(leafHash(expected));
        expect(decodeLeaf(w.leaf?.data ?? new Uint8Array(0)).source).toBe(j.leaf.source);
        expect(viaInline[i]).toEqual(w);
      });
    } finally {
      await inline.close();
    }
  });

  it('when one frame of a batch has a receive time a leaf cannot carry › that frame alone is LEAF_MALFORMED, the others get their exact leaves', () => {
    const frames = [ed.frame(1), ed.frame(2), ed.frame(3)];
    const ends = new Uint32Array(3);
    const data = new Uint8Array(frames.reduce((n, f) => n + f.length, 0));
    let at = 0;
    frames.forEach((f, i) => {
      data.set(f, at);
      at += f.length;
      ends[i] = at;
    });
    const times = [1_767_225_600_001, Number.NaN, 1_767_225_600_003];
    const reply = verifyBatch(
      {
        id: 1,
        keys: [{ certSha256: edDevice.certSha256, packSerial: edDevice.packSerial, alg: edDevice.publicKey.alg, raw: edDevice.publicKey.raw, kid: edDevice.kid }],
        data,
        ends,
        keyOf: new Uint32Array(3),
        leaves: { receivedAt: Float64Array.from(times), sources: ['serial:/dev/ttyUSB0'], sourceOf: new Uint32Array(3) },
      },
      new DeviceKeyCache(),
    );
    expect([...reply.ok]).toEqual([1, 0, 1]);
    expect(reply.errors).toEqual([[1, 'LEAF_MALFORMED', expect.stringContaining('receivedAt'), 2]]);
    const leaves = reply.leaves;
    for (const i of [0, 2]) {
      const from = i === 0 ? 0 : (leaves?.ends[i - 1] ?? 0);
      const slot = leaves?.data.subarray(from + 1, leaves.ends[i]);
      expect(slot).toEqual(encodeLeaf({ receivedAt: times[i] ?? 0, source: 'serial:/dev/ttyUSB0', certSha256: edDevice.certSha256, frame: frames[i] ?? new Uint8Array(0) }));
    }
  });

  it('when options are out of range › throws INGEST_CONFIG', async () => {
    await expect(VerifyPool.start({ workers: -1 })).rejects.toSatisfy((e) => isGatewayError(e, 'INGEST_CONFIG'));
    await expect(VerifyPool.start({ batchMax: 0 })).rejects.toSatisfy((e) => isGatewayError(e, 'INGEST_CONFIG'));
  });

});
