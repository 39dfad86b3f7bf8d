/**
 * The ledger's verify pool on real worker threads (TS source through tsx): a large request is cut
 * into sub-batches over the workers and the verdicts come back merged in request order; a worker
 * that dies mid-request costs nothing but time (the request is verified on the main thread).
 */
import type { Worker } from 'node:worker_threads';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { deviceKeyWire, type DeviceKeyWire } from '../protocol/index.js';
import { T0, TestFactory, type TestPack } from './ledger-testkit.js';
import { FIELD_COUNT, type BatchReply } from './verify-frame.js';
import { VerifyPool, type VerifyRequest } from './verify-pool.js';

let pack: TestPack;
let wire: DeviceKeyWire;
const pools: VerifyPool[] = [];
afterEach(async () => {
  for (const p of pools.splice(0)) await p.close();
});

beforeAll(async () => {
  const f = await TestFactory.create();
  pack = await f.pack('PK-2026-0601');
  wire = deviceKeyWire((await f.trust()).verifyChain(pack.chain, new Date(T0)));
});

/** `n` frames of the pack, every 7th forged. */
function request(n: number): VerifyRequest {
  return { keys: [wire], frames: Array.from({ length: n }, (_, i) => (i % 7 === 3 ? pack.forged(i) : pack.frame(i))), keyOf: Array.from({ length: n }, () => 0) };
}

/** Per frame: its counter when verified, else its error code. */
const verdicts = (r: BatchReply): (number | string)[] =>
  Array.from(r.ok, (ok, i) => (ok === 1 ? (r.values[i * FIELD_COUNT] ?? -1) : (r.errors.find((e) => e[0] === i)?.[1] ?? '?')));

const expected = (n: number): (number | string)[] => Array.from({ length: n }, (_, i) => (i % 7 === 3 ? 'COSE_SIGNATURE' : i));

describe('ledger VerifyPool', () => {
  it('a request larger than a sub-batch › spread over the workers, verdicts merged in request order', async () => {
    const pool = await VerifyPool.start(2, { inlineBelow: 0, batchMax: 16 });
    pools.push(pool);
    const [a, b] = await Promise.all([pool.verify(request(150)), pool.verify(request(90))]);
    expect(verdicts(a)).toEqual(expected(150));
    expect(verdicts(b)).toEqual(expected(90));
  });

  it('when a worker dies mid-request › the request is verified on the main thread, every verdict right, and a new worker takes its place', async () => {
    const pool = await VerifyPool.start(2, { inlineBelow: 0, batchMax: 8 });
    pools.push(pool);
    const pending = pool.verify(request(120));
    const slots = (pool as unknown as { slots: { worker: Worker }[] }).slots;
    await slots[0]?.worker.terminate();
    expect(verdicts(await pending)).toEqual(expected(120));
    await expect.poll(() => pool.threads).toBe(2);
    expect(verdicts(await pool.verify(request(40)))).toEqual(expected(40));
  });
});
