import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { decodeLeaf, gatewayOrigin, okResponse, parseSign1, type TrustStore } from '../../protocol/index.js';
import { LogStore } from '../store/log-store.js';
import { MemoryTransport, type MemoryDevice } from '../transport/memory.js';
import { TestFactory, type TestPack } from './ingest-testkit.js';
import { logPort } from './log-port.js';
import { IngestPipeline } from './pipeline.js';

let trust: TrustStore;
let pack: TestPack;
const cleanups: (() => Promise<void> | void)[] = [];

beforeAll(async () => {
  const f = await TestFactory.create();
  trust = await f.trust();
  pack = await f.pack('PACK-0001');
});

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'ingest-logport-'));
  cleanups.push(() => {
    rmSync(d, { recursive: true, force: true });
  });
  return d;
}

const entry = (c: number) => ({ leaf: { receivedAt: 1000 + c, source: 'memory:x', certSha256: pack.certSha256, frame: pack.frame(c) }, serial: pack.serial, counter: c });

describe('logPort over LogStore', () => {
  it('appends in order, finds a pack counter by its frame hash, and reads entries back', async () => {
    const dir = tmp();
    const store = await LogStore.open({ dir, origin: gatewayOrigin('port-test') });
    cleanups.push(() => store.close());
    const port = logPort(store);
    expect(await port.append([entry(0), entry(1)])).toBe(0);
    expect(await port.append([entry(5)])).toBe(2);
    expect(port.size).toBe(3);
    expect(await port.frameIdentity(pack.serial, 5)).toBe(Buffer.from(parseSign1(pack.frame(5)).payload).toString('latin1'));
    expect(await port.frameIdentity(pack.serial, 3)).toBeUndefined();
    expect(await port.frameIdentity('OTHER', 0)).toBeUndefined();
    const counters: number[] = [];
    for await (const d of port.leaves(1, 3)) counters.push(decodeLeaf(d).receivedAt - 1000);
    expect(counters).toEqual([1, 5]);
  });
});

describe('IngestPipeline on a real LogStore', () => {
  async function run(dir: string, counters: number[]): Promise<{ acked: number[]; pipeline: IngestPipeline; store: LogStore }> {
    const store = await LogStore.open({ dir: join(dir, 'log'), origin: gatewayOrigin('port-test') });
    const pipeline = await IngestPipeline.open({ log: logPort(store), trust, stateDir: dir, verify: { workers: 0 } });
    const transport = new MemoryTransport();
    await transport.start(pipeline.events);
    const d: MemoryDevice = transport.device('pack');
    d.onReceive((m) => {
      if (m.type === 'request' && m.op === 'hello') {
        const { type: _t, ...hello } = pack.hello();
        d.send(okResponse(m.id, { op: 'hello', hello }));
      }
    });
    d.plug();
    await expect.poll(() => pipeline.status().sessions[0]?.state).toBe('verified');
    for (const c of counters) d.send({ type: 'frame', cose: pack.frame(c) });
    const acked = (): number[] => d.received.flatMap((m) => (m.type === 'ack' ? m.ranges.flatMap(([lo, hi]) => Array.from({ length: hi - lo + 1 }, (_, i) => lo + i)) : []));
    await expect.poll(() => new Set(acked()).size).toBe(new Set(counters).size);
    await transport.stop();
    await pipeline.close();
    return { acked: acked(), pipeline, store };
  }

  it('stores frames durably and, after a restart, recognises their resends as duplicates through the log', async () => {
    const dir = tmp();
    const first = await run(dir, [0, 1, 2, 3]);
    expect(first.store.size).toBe(4);
    await first.store.close();
    const second = await run(dir, [2, 3, 4]);
    cleanups.push(() => second.store.close());
    expect(second.store.size).toBe(5);
    expect(second.pipeline.status().duplicates).toBe(2);
    expect(second.pipeline.recovery).toMatchObject({ snapshotSize: 4, replayed: 0 });
  });
});
