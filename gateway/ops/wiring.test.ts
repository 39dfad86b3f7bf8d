/**
 * The operations shell around real parts, as the daemon will wire it: a LogStore on disk, the
 * ingest pipeline on a memory transport behind an instrumented log port, the gateway key signing a
 * checkpoint, and the HTTP endpoint serving snapshots assembled from all of them. Checks that
 * /status, /metrics and /healthz report what actually happened, and that the instrumented port
 * times appends, hands stored frames on, and marks the store unwritable on append failures.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { okResponse, type Message, type TrustStore } from '../../protocol/index.js';
import { isGatewayError } from '../errors.js';
import { MemoryLog, TestFactory, type TestPack } from '../ingest/ingest-testkit.js';
import { logPort } from '../ingest/log-port.js';
import { IngestPipeline } from '../ingest/pipeline.js';
import { createKeyFile } from '../keys.js';
import { LogStore } from '../store/log-store.js';
import { MemoryTransport } from '../transport/memory.js';
import { assembleSnapshot } from './assemble.js';
import { OpsServer } from './http.js';
import { instrumentLog } from './instrument.js';
import { GatewayMetrics, LatencyHistogram } from './metrics.js';
import type { StoredFrame } from './mqtt.js';
import { parsePrometheus } from './ops-testkit.js';
import { fetchStatus } from './status-client.js';

let factory: TestFactory;
let trust: TrustStore;
let pack: TestPack;
const cleanups: (() => Promise<void> | void)[] = [];

beforeAll(async () => {
  factory = await TestFactory.create();
  pack = await factory.pack('PACK-0001');
  trust = await factory.trust();
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const frame = (cose: Uint8Array): Message => ({ type: 'frame', cose });

describe('the operations shell on a real store and pipeline', () => {
  it('reports stored frames, devices, ports, the checkpoint and commit latencies on /status and /metrics', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gw-wiring-'));
    cleanups.push(() => { rmSync(dir, { recursive: true, force: true }); });
    const key = await createKeyFile(join(dir, 'gateway.key'), 'line-3-gw1');
    const store = await LogStore.open({ dir: join(dir, 'log'), origin: key.origin });
    cleanups.push(() => store.close());
    const latency = new LatencyHistogram();
    const handed: StoredFrame[] = [];
    const log = instrumentLog(logPort(store), { latency, stored: (f) => handed.push(...f) });
    const pipeline = await IngestPipeline.open({ log, trust, stateDir: dir, verify: { workers: 0 } });
    let running: IngestPipeline | undefined = pipeline;
    cleanups.push(() => pipeline.close());
    const transport = new MemoryTransport();
    await transport.start(pipeline.events);
    cleanups.push(() => transport.stop());
    const signed: { at?: number } = {};
    const metrics = new GatewayMetrics({ processMetrics: false });
    const server = await OpsServer.start({
      listen: { host: '127.0.0.1', port: 0 },
      metrics,
      snapshot: () => assembleSnapshot({ name: 'line-3-gw1', origin: key.origin, version: '0.1.0', startedAt: Date.now() - 1000, store, checkpointSignedAt: () => signed.at, transports: [transport], pipeline: running, log, latency, sync: { url: null } }),
    });
    cleanups.push(() => server.close());

    const d = transport.device('bay1');
    d.onReceive((m) => {
      if (m.type === 'request' && m.op === 'hello') {
        const { type: _t, ...hello } = pack.hello(5, 0);
        d.send(okResponse(m.id, { op: 'hello', hello }));
      }
    });
    d.plug();
    await expect.poll(() => pipeline.status().sessions.filter((s) => s.state === 'verified').length).toBe(1);
    for (let c = 0; c < 5; c++) d.send(frame(pack.frame(c)));
    d.send(frame(pack.frame(4))); // a duplicate: acked, not stored, not handed on
    d.write(new TextEncoder().encode('garbage line\n'));
    await expect.poll(() => store.size).toBe(5);
    await expect.poll(() => pipeline.status().duplicates).toBe(1);
    await store.checkpoint(key.signer);
    signed.at = Date.now();

    const s = await fetchStatus(server.url);
    expect(s.gateway).toMatchObject({ name: 'line-3-gw1', origin: 'packchain.gateway/line-3-gw1' });
    expect(s.store).toMatchObject({ size: 5, writable: true, checkpoint: { size: 5, signedAt: signed.at } });
    expect(s.store.commitLatency?.count).toBeGreaterThanOrEqual(1);
    expect(s.ingest).toMatchObject({ running: true, stored: 5, duplicates: 1, sessions: 1, verifiedSessions: 1 });
    expect(s.ingest.devices).toEqual([expect.objectContaining({ serial: 'PACK-0001', frames: 5, duplicates: 1, lastCounter: 4, gaps: 0, missing: 0 })]);
    expect(s.ingest.quarantine.byCode.LINE_GARBAGE).toBe(1);
    expect(s.transports[0]).toMatchObject({ kind: 'memory', open: 1 });
    expect(s.sync).toMatchObject({ enabled: false, syncedSize: 0, lagEntries: 5 });
    expect(s.sync.lagSeconds).toBeGreaterThanOrEqual(0);
    expect(handed.map((f) => f.serial)).toEqual(Array<string>(5).fill('PACK-0001'));
    expect(handed[0]?.source).toBe('memory:bay1');

    const m = parsePrometheus(await (await fetch(`${server.url}/metrics`)).text());
    expect(m.get('packchain_gateway_log_entries')).toBe(5);
    expect(m.get('packchain_gateway_frames_stored_total')).toBe(5);
    expect(m.get('packchain_gateway_frames_duplicate_total')).toBe(1);
    expect(m.get('packchain_gateway_checkpoint_size')).toBe(5);
    expect(m.get('packchain_gateway_device_frames_stored_total{serial="PACK-0001"}')).toBe(5);
    expect(m.get('packchain_gateway_transport_channels_open{transport="memory"}')).toBe(1);
    expect(m.get('packchain_gateway_commit_latency_seconds_count')).toBe(s.store.commitLatency?.count);

    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
    running = undefined; // the daemon drops the pipeline when it stops or fails
    expect((await fetch(`${server.url}/healthz`)).status).toBe(503);
  });
});

describe('instrumentLog', () => {
  const entry = (counter: number) => ({ leaf: { receivedAt: 1, source: 'memory:x', certSha256: new Uint8Array(32), frame: pack.frame(counter) }, serial: 'PACK-0001', counter });

  it('when an append fails › rethrows it unchanged, marks the store unwritable until an append succeeds, hands nothing on', async () => {
    const inner = new MemoryLog();
    const handed: StoredFrame[] = [];
    const latency = new LatencyHistogram();
    const log = instrumentLog(inner, { latency, stored: (f) => handed.push(...f) });
    inner.failNext = 1;
    await expect(log.append([entry(0)])).rejects.toSatisfy((e) => isGatewayError(e, 'STORE_IO'));
    expect(log.writable).toBe(false);
    expect(log.lastError).toBe('gateway: store: injected failure');
    expect(handed).toEqual([]);
    expect(latency.snapshot().count).toBe(0);
    const both = [entry(0), entry(1)];
    expect(await log.append(both)).toBe(0);
    expect(log.writable).toBe(true);
    expect(log.lastError).toBeUndefined();
    expect(handed).toEqual(both.map((e) => ({ serial: 'PACK-0001', cose: e.leaf.frame, receivedAt: 1, source: 'memory:x' })));
    expect(latency.snapshot().count).toBe(1);
    expect(log.size).toBe(2);
  });

  it('when the listener throws › the append still resolves and the error is counted', async () => {
    const log = instrumentLog(new MemoryLog(), {
      stored: () => {
        throw new Error('listener bug');
      },
    });
    expect(await log.append([entry(0)])).toBe(0);
    expect(log.listenerErrors).toBe(1);
  });
});
