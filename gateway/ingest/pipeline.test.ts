import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { okResponse, type HelloMessage, type Message, type TrustStore } from '../../protocol/index.js';
import { isGatewayError } from '../errors.js';
import { MemoryTransport, type MemoryDevice } from '../transport/memory.js';
import { blankHello, MemoryLog, TestFactory, type TestPack } from './ingest-testkit.js';
import { IngestPipeline, type PipelineOptions } from './pipeline.js';

let factory: TestFactory;
let trust: TrustStore;
let pack: TestPack & { certSerialHex: string };
const cleanups: (() => Promise<void> | void)[] = [];

beforeAll(async () => {
  factory = await TestFactory.create();
  pack = await factory.pack('PACK-0001');
  trust = await factory.trust();
});

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A pipeline on a memory transport; `device(hello)` plugs a device that answers `Q hello` with it. */
async function setup(opts: Partial<PipelineOptions> = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'ingest-pipeline-'));
  const log = (opts.log as MemoryLog | undefined) ?? new MemoryLog();
  const pipeline = await IngestPipeline.open({ log, trust, stateDir: dir, verify: { workers: 0 }, ...opts });
  const transport = new MemoryTransport();
  await transport.start(pipeline.events);
  cleanups.push(() => { rmSync(dir, { recursive: true, force: true }); });
  cleanups.push(() => pipeline.close());
  cleanups.push(() => transport.stop());
  let n = 0;
  const device = (hello: HelloMessage | undefined, name = `dev${n++}`): MemoryDevice => {
    const d = transport.device(name);
    d.onReceive((m) => {
      if (m.type === 'request' && m.op === 'hello' && hello) {
        const { type: _t, ...info } = hello;
        d.send(okResponse(m.id, { op: 'hello', hello: info }));
      }
    });
    d.plug();
    return d;
  };
  return { pipeline, transport, log, dir, device };
}

function acked(d: MemoryDevice): number[] {
  const out: number[] = [];
  for (const m of d.received) if (m.type === 'ack') for (const [lo, hi] of m.ranges) for (let c = lo; c <= hi; c++) out.push(c);
  return out.sort((a, b) => a - b);
}

const frame = (cose: Uint8Array): Message => ({ type: 'frame', cose });

/** A log whose appends wait until `release()`: frames pile up awaiting storage. */
function gatedLog(): { slow: MemoryLog; release: () => void } {
  const log = new MemoryLog();
  let release: () => void = () => undefined;
  const gate = new Promise<void>((r) => {
    release = r;
  });
  const slow = Object.assign(Object.create(log) as MemoryLog, {
    append: async (e: Parameters<MemoryLog['append']>[0]) => {
      await gate;
      return log.append(e);
    },
  });
  return { slow, release };
}

async function verified(p: IngestPipeline, n = 1): Promise<void> {
  await expect.poll(() => p.status().sessions.filter((s) => s.state === 'verified').length).toBe(n);
}

describe('IngestPipeline', () => {
  it('when a provisioned device connects › asks hello, verifies its chain, stores its frames once and acks them after the append', async () => {
    const { pipeline, log, device } = await setup();
    const d = device(pack.hello(10, 0));
    await verified(pipeline);
    expect(d.received[0]).toMatchObject({ type: 'request', op: 'hello' });
    for (let c = 0; c < 10; c++) d.send(frame(pack.frame(c)));
    await expect.poll(() => acked(d)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(log.size).toBe(10);
    expect(pipeline.status().devices[0]).toMatchObject({ serial: 'PACK-0001', frames: 10, lastCounter: 9, missing: 0 });
    expect(pipeline.status().quarantine.total).toBe(0);
  });

  it('when frames arrive before the hello › refuses them NO_SESSION, stores and acks nothing', async () => {
    const { pipeline, log, device } = await setup();
    const d = device(undefined);
    d.send(frame(pack.frame(1)));
    await expect.poll(() => pipeline.rejects('NO_SESSION')).toBe(1);
    expect(log.size).toBe(0);
    expect(acked(d)).toEqual([]);
    d.send(pack.hello(2, 1));
    await verified(pipeline);
    d.send(frame(pack.frame(1)));
    await expect.poll(() => acked(d)).toEqual([1]);
  });

  it('when the device is unprovisioned › counts DEVICE_UNPROVISIONED, keeps the channel, refuses its frames', async () => {
    const { pipeline, device } = await setup();
    const d = device(blankHello());
    await expect.poll(() => pipeline.rejects('DEVICE_UNPROVISIONED')).toBe(1);
    d.send(frame(pack.frame(1)));
    await expect.poll(() => pipeline.rejects('DEVICE_UNPROVISIONED')).toBe(2);
    expect(d.channel?.isOpen).toBe(true);
    expect(pipeline.status().sessions[0]?.state).toBe('unprovisioned');
  });

  it('when the chain ends at a foreign root › refuses the hello and every frame CHAIN_UNTRUSTED', async () => {
    const foreign = await (await TestFactory.create('Foreign')).pack('PACK-0001');
    const { pipeline, log, device } = await setup();
    const d = device(foreign.hello());
    await expect.poll(() => pipeline.rejects('CHAIN_UNTRUSTED')).toBe(1);
    d.send(frame(foreign.frame(1)));
    await expect.poll(() => pipeline.rejects('CHAIN_UNTRUSTED')).toBe(2);
    expect(log.size).toBe(0);
    expect(pipeline.status().quarantine.security).toBe(2);
  });

  it('when the certificate is revoked › refuses CERT_REVOKED; a trust reload revokes a live session at once', async () => {
    const other = await factory.pack('PACK-0002');
    const { pipeline, log, device } = await setup({ trust: await factory.trust([other.certSerialHex]) });
    device(other.hello());
    await expect.poll(() => pipeline.rejects('CERT_REVOKED')).toBe(1);
    const d = device(pack.hello());
    await expect.poll(() => pipeline.status().sessions.some((s) => s.state === 'verified')).toBe(true);
    d.send(frame(pack.frame(1)));
    await expect.poll(() => acked(d)).toEqual([1]);
    pipeline.setTrust(await factory.trust([other.certSerialHex, pack.certSerialHex]));
    d.send(frame(pack.frame(2)));
    await expect.poll(() => pipeline.rejects('CERT_REVOKED')).toBe(3);
    expect(log.size).toBe(1);
  });

  it('when the hello carries a key that is not its certificate\'s › refuses HELLO_KEY_MISMATCH', async () => {
    const { pipeline, device } = await setup();
    const other = await factory.pack('PACK-0003');
    device({ ...pack.hello(), publicKey: other.publicKey });
    await expect.poll(() => pipeline.rejects('HELLO_KEY_MISMATCH')).toBe(1);
  });

  it('when a forged copy precedes the genuine frame › rejects COSE_SIGNATURE and stores only the genuine one', async () => {
    const { pipeline, log, device } = await setup();
    const d = device(pack.hello());
    await verified(pipeline);
    d.send(frame(pack.forged(1)));
    d.send(frame(pack.frame(1)));
    await expect.poll(() => acked(d)).toEqual([1]);
    expect(pipeline.rejects('COSE_SIGNATURE')).toBe(1);
    expect(log.size).toBe(1);
    expect(pipeline.status().quarantine.recent[0]).toMatchObject({ code: 'COSE_SIGNATURE', serial: 'PACK-0001' });
  });

  it('when a frame is repeated › stores it once, acks it again and counts the duplicate', async () => {
    const { pipeline, log, device } = await setup();
    const d = device(pack.hello());
    await verified(pipeline);
    const f = pack.frame(4);
    d.send(frame(f));
    d.send(frame(f)); // in flight together: the copy waits for the first append, one coalesced ack
    await expect.poll(() => acked(d)).toEqual([4]);
    d.send(frame(f));
    await expect.poll(() => acked(d)).toEqual([4, 4]);
    expect(log.size).toBe(1);
    expect(pipeline.status()).toMatchObject({ duplicates: 2, stored: 1 });
    expect(pipeline.status().devices[0]?.duplicates).toBe(2);
  });

  it('when a stored counter comes back with other bytes › refuses COUNTER_REPLAY and does not ack it', async () => {
    const { pipeline, log, device } = await setup();
    const d = device(pack.hello());
    await verified(pipeline);
    d.send(frame(pack.frame(1)));
    await expect.poll(() => acked(d)).toEqual([1]);
    d.send(frame(pack.frame(1, { soc: 1 })));
    await expect.poll(() => pipeline.rejects('COUNTER_REPLAY')).toBe(1);
    expect(acked(d)).toEqual([1]);
    expect(log.size).toBe(1);
    expect(pipeline.status().devices[0]?.replays).toBe(1);
  });

  it('when counters skip › records the gap; resends fill it', async () => {
    const { pipeline, device } = await setup();
    const d = device(pack.hello());
    await verified(pipeline);
    for (const c of [0, 1, 5]) d.send(frame(pack.frame(c)));
    await expect.poll(() => acked(d)).toEqual([0, 1, 5]);
    expect(pipeline.status().devices[0]).toMatchObject({ gaps: [[2, 4]], missing: 3 });
    d.send(frame(pack.frame(3)));
    await expect.poll(() => acked(d)).toEqual([0, 1, 3, 5]);
    expect(pipeline.status().devices[0]).toMatchObject({ gaps: [[2, 2], [4, 4]], missing: 2 });
  });

  it('when a payload names another pack › refuses FRAME_SERIAL_MISMATCH', async () => {
    const { pipeline, log, device } = await setup();
    const d = device(pack.hello());
    await verified(pipeline);
    d.send(frame(pack.frame(1, { serial: 'PACK-9999' })));
    await expect.poll(() => pipeline.rejects('FRAME_SERIAL_MISMATCH')).toBe(1);
    expect(log.size).toBe(0);
  });

  it('when the log refuses an append › rejects STORE_UNAVAILABLE without acking; the resend is stored', async () => {
    const log = new MemoryLog();
    log.failNext = 1;
    const { pipeline, device } = await setup({ log });
    const d = device(pack.hello());
    await verified(pipeline);
    d.send(frame(pack.frame(1)));
    await expect.poll(() => pipeline.rejects('STORE_UNAVAILABLE')).toBe(1);
    expect(acked(d)).toEqual([]);
    d.send(frame(pack.frame(1)));
    await expect.poll(() => acked(d)).toEqual([1]);
    expect(log.size).toBe(1);
  });

  it('when a channel has too many frames awaiting storage › refuses INGEST_BUSY instead of queueing more', async () => {
    const { slow, release } = gatedLog();
    const { pipeline, device } = await setup({ log: slow, maxInFlightPerChannel: 4 });
    const d = device(pack.hello());
    await verified(pipeline);
    for (let c = 0; c < 10; c++) d.send(frame(pack.frame(c)));
    await expect.poll(() => pipeline.rejects('INGEST_BUSY')).toBe(6);
    release();
    await expect.poll(() => acked(d)).toEqual([0, 1, 2, 3]);
  });

  it('when frames pile up awaiting storage › holds input back at holdInputAt and lets it go once half are acked', async () => {
    const { slow, release } = gatedLog();
    const { pipeline, device } = await setup({ log: slow, holdInputAt: 6 });
    const changes: boolean[] = [];
    const unwatch = pipeline.events.flow?.watch((held) => changes.push(held));
    const d = device(pack.hello());
    await verified(pipeline);
    for (let c = 0; c < 5; c++) d.send(frame(pack.frame(c)));
    await expect.poll(() => pipeline.status().inFlight).toBe(5);
    expect(pipeline.events.flow?.held).toBe(false);
    d.send(frame(pack.frame(5)));
    await expect.poll(() => pipeline.events.flow?.held).toBe(true);
    expect(changes).toEqual([true]);
    // A transport that cannot hold back (or a chunk already being decoded) still gets its frames in.
    d.send(frame(pack.frame(6)));
    await expect.poll(() => pipeline.status().inFlight).toBe(7);
    expect(pipeline.status()).toMatchObject({ inputHeld: true, inputHolds: 1 });
    release();
    await expect.poll(() => acked(d)).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(changes).toEqual([true, false]);
    expect(pipeline.status()).toMatchObject({ inFlight: 0, inputHeld: false, inputHolds: 1 });
    expect(pipeline.rejects('INGEST_BUSY')).toBe(0);
    unwatch?.();
    for (let c = 7; c < 13; c++) d.send(frame(pack.frame(c)));
    await expect.poll(() => acked(d).length).toBe(13);
    expect(changes).toEqual([true, false]); // no longer watching
    expect(pipeline.status().inputHolds).toBe(2);
  });

  it('when a device sends garbage, hostile frames and host-only messages › counts each and keeps running', async () => {
    const { pipeline, log, device } = await setup();
    const d = device(pack.hello());
    await verified(pipeline);
    d.write(new TextEncoder().encode('garbage line\n'));
    let seed = 7;
    const rnd = (): number => (seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31;
    for (let i = 0; i < 100; i++) {
      const good = pack.frame(i);
      const bad = new Uint8Array(good);
      const at = Math.floor(rnd() * bad.length);
      bad[at] = (bad[at] ?? 0) ^ (1 + Math.floor(rnd() * 255));
      d.send(frame(i % 2 === 0 ? bad : bad.subarray(0, Math.max(1, Math.floor(rnd() * bad.length)))));
    }
    d.send({ type: 'ack', ranges: [[1, 2]] });
    d.send({ type: 'response', id: 999, status: 'ok', result: new Map() });
    await expect.poll(() => pipeline.status().quarantine.total).toBeGreaterThanOrEqual(103);
    expect(pipeline.rejects('LINE_GARBAGE')).toBe(1);
    expect(pipeline.rejects('UNEXPECTED_MESSAGE')).toBe(2);
    expect(log.size).toBe(0);
    d.send(frame(pack.frame(500)));
    await expect.poll(() => acked(d)).toEqual([500]);
  });

  it('when restarted on the same log › recovers gaps from the snapshot and the log, stores resends once', async () => {
    const log = new MemoryLog();
    const first = await setup({ log, snapshotEvery: 3 });
    const d = first.device(pack.hello());
    await verified(first.pipeline);
    for (const c of [0, 1, 2, 6, 7]) d.send(frame(pack.frame(c)));
    await expect.poll(() => acked(d)).toEqual([0, 1, 2, 6, 7]);
    // No close: what a kill -9 leaves (the snapshot covers the first 3 entries at most).
    const second = await setup({ log, stateDir: first.dir });
    expect(second.pipeline.recovery.snapshotSize).toBeGreaterThanOrEqual(3);
    expect(second.pipeline.recovery.snapshotSize + second.pipeline.recovery.replayed).toBe(5);
    const e = second.device(pack.hello(), 'again');
    await verified(second.pipeline);
    for (const c of [5, 6, 7, 8]) e.send(frame(pack.frame(c)));
    await expect.poll(() => acked(e)).toEqual([5, 6, 7, 8]);
    expect(log.size).toBe(7);
    expect([...log.frames().values()].every((n) => n === 1)).toBe(true);
    const snap = second.pipeline.status();
    expect(snap.duplicates).toBe(2);
    expect(snap.devices[0]).toMatchObject({ gaps: [[3, 4]] });
  });

  it('when options are out of range › open throws INGEST_CONFIG', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ingest-pipeline-'));
    cleanups.push(() => {
      rmSync(dir, { recursive: true, force: true });
    });
    for (const bad of [{ maxInFlight: 0 }, { holdInputAt: -1 }, { appendBatchMax: 1e9 }, { window: 0 }, { verify: { workers: -1 } }]) {
      await expect(IngestPipeline.open({ log: new MemoryLog(), trust, stateDir: dir, ...bad })).rejects.toSatisfy((e) => isGatewayError(e, 'INGEST_CONFIG'));
    }
  });

  it('when verification runs on worker threads › gives the same results', async () => {
    const { pipeline, log, device } = await setup({ verify: { workers: 1, inlineBelow: 0 } });
    const d = device(pack.hello());
    await verified(pipeline);
    for (let c = 0; c < 50; c++) d.send(frame(c === 10 ? pack.forged(c) : pack.frame(c)));
    await expect.poll(() => acked(d).length, { timeout: 20_000 }).toBe(49);
    expect(log.size).toBe(49);
    expect(pipeline.rejects('COSE_SIGNATURE')).toBe(1);
    expect(pipeline.status().verify.offloaded).toBe(50);
  });
});
