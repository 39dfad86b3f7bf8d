/**
 * The BLE transport against real peers (issue 6 item 2): the real node-ble client over a real
 * dbus-daemon to hw-sim's fake BlueZ. A fleet of simulated packs is discovered by service UUID,
 * connected all at once, provisioned and streams signed frames; link drops reconnect and resend.
 * Lighter packs built straight on FakeBluez (no firmware) check what the transport writes, the
 * rate cap, the allow list, and survival when BlueZ goes away or the bus refuses match rules.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { FakeBluez, Fleet, startPrivateBus, type BleDeviceHandle, type PrivateBus } from '../hw-sim/index.js';
import { chunkMessage, encodeDeviceInfo, Reassembler, type Message } from '../protocol/index.js';
import { BleTransport, type BleTransportOptions, type ChannelEvents } from '../gateway/index.js';
import { everyFrameDelivered, GatewayTestHost, Recorder, TestFactory, until } from './gateway-testkit.js';

const PACKS = 6;
const fast: BleTransportOptions = {
  scanIntervalMs: 150,
  connectTimeoutMs: 5000,
  callTimeoutMs: 3000,
  maxDevices: 16,
  connectConcurrency: 3,
  backoff: { initialMs: 50, maxMs: 400 },
  sessionBackoff: { initialMs: 100, maxMs: 500 },
};

describe('BleTransport with a fleet of packs on the fake BlueZ', () => {
  const dir = mkdtempSync(join(tmpdir(), 'gw-ble-'));
  let fleet: Fleet;
  let host: GatewayTestHost;
  let transport: BleTransport;
  const id = (label: string): string => `ble:${fleet.device(label)!.endpoint.endpoint}`;

  beforeAll(async () => {
    fleet = await Fleet.start({ dir, serial: 0, ble: PACKS, seed: 12, periodMs: 250, tickMs: 50 });
    host = new GatewayTestHost(await TestFactory.create());
    transport = new BleTransport({ ...fast, busAddress: fleet.busAddress! });
    await transport.start(host);
  }, 60_000);

  afterAll(async () => {
    await transport.stop();
    await fleet.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('finds every pack by its service UUID, connects them all at once, and carries provisioning and signed frames', async () => {
    const labels = fleet.endpoints().map((e) => e.label);
    await until(() => labels.every((l) => host.pack(id(l)).channel), 'every pack connected');
    await Promise.all(labels.map((l, i) => host.provision(id(l), l, i % 2 === 0 ? -7 : -8)));
    await until(() => labels.every((l) => host.pack(id(l)).accepted.size >= 3), 'three verified frames from every pack');
    const st = transport.status();
    expect(st.open).toBe(PACKS);
    expect(st.endpoints.map((e) => e.id).sort()).toEqual(labels.map(id).sort());
    expect(st.detail.sessions).toBe(1);
    expect(st.rejects).toEqual({});
    for (const l of labels) expect(fleet.device(l)!.ble!.handle.stats.writesRejected).toBe(0);
  });

  it('reports a corrupted chunk as BLE_CRC and a broken sequence as BLE_SEQUENCE, keeps the link, and the frames arrive', async () => {
    const [a, b] = fleet.endpoints();
    await fleet.inject(a!.label, { kind: 'corrupt', part: 'data' });
    await fleet.inject(b!.label, { kind: 'corrupt', part: 'sequence' });
    await until(() => host.pack(id(a!.label)).rejects.includes('BLE_CRC') && host.pack(id(b!.label)).rejects.includes('BLE_SEQUENCE'), 'the reject events');
    await everyFrameDelivered(host.pack(id(a!.label)), fleet.groundTruthPath, a!.label);
    await everyFrameDelivered(host.pack(id(b!.label)), fleet.groundTruthPath, b!.label);
    expect(host.pack(id(a!.label)).closes).toEqual([]);
  });

  it('closes on a link drop, reconnects when the pack is back, gets every unacknowledged frame, and adds no match rules or listeners', async () => {
    const label = fleet.endpoints()[2]!.label;
    const v = host.pack(id(label));
    const rulesBefore = Number(transport.status().detail.matchRules);
    host.acking = false;
    for (let round = 1; round <= 3; round++) {
      const old = v.channel!;
      const mark = v.accepted.size;
      await until(() => v.accepted.size > mark, 'a frame held unacknowledged');
      await fleet.inject(label, { kind: 'ble-drop', downMs: 300 });
      await until(() => !old.isOpen, 'the close');
      expect(v.closes.at(-1)).toBe('link lost');
      await expect(old.send({ type: 'ack', ranges: [[0, 0]] })).rejects.toMatchObject({ code: 'TRANSPORT_DOWN' });
      await until(() => v.channel !== undefined && v.channel !== old, `reconnect ${round}`);
    }
    host.acking = true;
    await host.ackAll(v.id);
    await everyFrameDelivered(v, fleet.groundTruthPath, label);
    // One Device and one characteristic object per session: a reconnect subscribes nothing new,
    // and chunks are not delivered twice (which would show as BLE_SEQUENCE).
    expect(Number(transport.status().detail.matchRules)).toBe(rulesBefore);
    expect(v.rejects.filter((c) => c !== 'BLE_TIMEOUT')).toEqual([]);
    expect(transport.status().endpoints.find((e) => e.id === v.id)!.connects).toBe(4);
  });
});

const hello: Message = { type: 'hello', version: 1, serial: '', model: 'PC-TEST', firmware: '1.0.0', alg: null, publicKey: null, chain: [], nextCounter: 0, unacked: 0 };

/** A pack without firmware: says hello when subscribed, reassembles what the gateway writes. */
function lightPack(bluez: FakeBluez, n: number, opts: { mtu?: number; onSubscribe?: (h: BleDeviceHandle) => void } = {}) {
  const received: Message[] = [];
  const chunkSizes: number[] = [];
  const reassembler = new Reassembler();
  const address = `C0:DE:AA:00:00:${n.toString(16).padStart(2, '0').toUpperCase()}`;
  const handle: BleDeviceHandle = bluez.addDevice({
    address,
    name: `LIGHT-${n}`,
    mtu: opts.mtu ?? 23,
    deviceInfo: encodeDeviceInfo({ serial: '', model: 'PC-TEST', firmware: '1.0.0', alg: null }),
    onWrite: (chunk) => {
      chunkSizes.push(chunk.length);
      for (const ev of reassembler.push(chunk, Date.now())) if (ev.kind === 'message') received.push(ev.message);
    },
    onSubscribe: () => {
      if (opts.onSubscribe) opts.onSubscribe(handle);
      else for (const c of chunkMessage(hello, handle.maxChunk)) handle.notify(c);
    },
    onDisconnect: () => {
      reassembler.reset();
    },
  });
  return { id: `ble:${address}`, address, handle, received, chunkSizes };
}

describe('BleTransport on its own private bus', () => {
  let dir: string;
  let bus: PrivateBus | undefined;
  let bluez: FakeBluez | undefined;
  let transport: BleTransport | undefined;

  async function lab(limits?: Record<string, number>): Promise<{ bus: PrivateBus; bluez: FakeBluez }> {
    dir = mkdtempSync(join(tmpdir(), 'gw-blelab-'));
    bus = await startPrivateBus({ dir, ...(limits ? { limits } : {}) });
    bluez = await FakeBluez.start({ busAddress: bus.address });
    return { bus, bluez };
  }

  async function run(options: BleTransportOptions, events: ChannelEvents): Promise<BleTransport> {
    transport = new BleTransport({ ...fast, busAddress: bus!.address, ...options });
    await transport.start(events);
    return transport;
  }

  afterEach(async () => {
    await transport?.stop();
    await bluez?.stop();
    await bus?.stop();
    rmSync(dir, { recursive: true, force: true });
    transport = undefined;
    bluez = undefined;
    bus = undefined;
  });

  it('writes each message as write-without-response chunks of the configured size that reassemble on the device', async () => {
    const { bluez: z } = await lab();
    const small = lightPack(z, 1);
    const big = lightPack(z, 2, { mtu: 247 });
    const rec = new Recorder();
    await run({ chunkSize: 20, addresses: [small.address] }, rec);
    await until(() => rec.opens.length === 1 && rec.messages.length === 1, 'the hello');
    expect(rec.messages[0]).toEqual(hello);
    const notice: Message = { type: 'error', code: 'TEST', message: 'x'.repeat(200) };
    await rec.opens[0]!.send(notice);
    await until(() => small.received.length === 1, 'the message on the device');
    expect(small.received).toEqual([notice]);
    expect(Math.max(...small.chunkSizes)).toBe(20);
    expect(small.handle.stats.writesRejected).toBe(0);
    // The allow list kept the other pack out.
    expect(transport!.status().endpoints.map((e) => e.id)).toEqual([small.id]);
    expect(big.handle.stats.connects).toBe(0);
  });

  it('drops notifications over the message cap as RATE_LIMITED and stays connected', async () => {
    const { bluez: z } = await lab();
    const N = 3000;
    const ping: Message = { type: 'error', code: 'P', message: '' };
    lightPack(z, 3, {
      onSubscribe: (h) => {
        for (let i = 0; i < N; i++) for (const c of chunkMessage(ping, h.maxChunk)) h.notify(c);
      },
    });
    const rec = new Recorder();
    const started = performance.now();
    await run({ rate: { messagesPerSecond: 100, burstSeconds: 1 } }, rec);
    await until(() => (transport!.status().endpoints[0]?.messagesIn ?? 0) + (transport!.status().rejects.RATE_LIMITED ?? 0) >= N, 'every notification counted');
    const elapsedS = (performance.now() - started) / 1000;
    const st = transport!.status();
    expect(st.rejects.RATE_LIMITED).toBe(N - st.endpoints[0]!.messagesIn);
    expect(st.endpoints[0]!.messagesIn).toBeLessThanOrEqual(100 + Math.ceil(100 * elapsedS) + 1);
    expect(rec.rejects.filter((r) => r.code === 'RATE_LIMITED').length).toBeLessThanOrEqual(Math.ceil(elapsedS) + 1);
    expect(rec.closes).toEqual([]);
  });

  it('survives BlueZ going away: closes the channel, counts the error, and reconnects when BlueZ is back', async () => {
    const { bus: b, bluez: z } = await lab();
    const pack = lightPack(z, 4);
    const rec = new Recorder();
    await run({}, rec);
    await until(() => rec.opens.length === 1 && rec.messages.length === 1, 'the first connection');
    await z.stop();
    bluez = undefined;
    await until(() => rec.closes.length === 1, 'the close when BlueZ left');
    await until(() => Number(transport!.status().detail.sessionErrors) >= 1, 'the session error');
    bluez = await FakeBluez.start({ busAddress: b.address });
    lightPack(bluez, 4);
    await until(() => rec.opens.length === 2 && rec.messages.length === 2, 'the reconnection after BlueZ came back');
    expect(rec.opens[1]!.id).toBe(pack.id);
    expect(Number(transport!.status().detail.recycles)).toBeGreaterThanOrEqual(1);
  });

  it('replaces its session before the match rules it holds reach the budget, and the packs come back', async () => {
    const { bluez: z } = await lab();
    lightPack(z, 6);
    lightPack(z, 7);
    const rec = new Recorder();
    await run({ maxDevices: 2, matchRuleBudget: 16 }, rec);
    await until(() => transport!.status().open === 2, 'both packs connected');
    // Each close by the gateway ends with node-ble's Disconnect, after which the next connect costs
    // a match rule (dbus-next never removes one): the budget fills up.
    for (let round = 0; round < 20 && Number(transport!.status().detail.recycles) === 0; round++) {
      const opens = rec.opens.length;
      for (const ch of rec.opens.filter((c) => c.isOpen)) await ch.close('test closes');
      await until(() => rec.opens.length >= opens + 2 || Number(transport!.status().detail.recycles) > 0, 'the reconnects');
    }
    const d = transport!.status().detail;
    expect(d.lastRecycle).toMatch(/^match-rule budget reached \(\d+ of 16\)$/);
    expect(d.sessionErrors).toBe(0);
    await until(() => transport!.status().open === 2 && Number(transport!.status().detail.sessions) === 2, 'both packs back in the new session');
    expect(Number(transport!.status().detail.matchRules)).toBeLessThan(16);
  });

  it('survives a bus that refuses match rules (LimitsExceeded): counts it and replaces the session instead of crashing', async () => {
    const { bluez: z } = await lab({ max_match_rules_per_connection: 3 });
    lightPack(z, 5);
    const rec = new Recorder();
    await run({ matchRuleBudget: 1000 }, rec);
    await until(() => /LimitsExceeded/.test(String(transport!.status().detail.lastSessionError)), 'the refused AddMatch');
    await until(() => Number(transport!.status().detail.recycles) >= 2, 'two session replacements');
    expect(transport!.status().state).toBe('running');
  });
});
