/**
 * The MQTT publisher against real brokers: the machine's Mosquitto at 127.0.0.1:1883 (as in CI),
 * a private mosquitto started on a free port for the broker-restart case, and a port with nothing
 * listening. A second mqtt client subscribes and checks what arrives. Topics use a prefix unique to
 * the run, and retained messages are cleared afterwards.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { connect, type MqttClient } from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { TestFactory, type TestPack } from '../ingest/ingest-testkit.js';
import { MqttPublisher, type MqttPublisherOptions, type StoredFrame } from './mqtt.js';

const BROKER = 'mqtt://127.0.0.1:1883';
const root = resolve(import.meta.dirname, '../..');

function reachable(port: number): Promise<boolean> {
  return new Promise((done) => {
    const s = new Socket();
    s.setTimeout(1000);
    s.once('connect', () => { s.destroy(); done(true); });
    s.once('timeout', () => { s.destroy(); done(false); });
    s.once('error', () => { done(false); });
    s.connect(port, '127.0.0.1');
  });
}

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => srv.close(() => { r(); }));
  return port;
}

const brokerUp = await reachable(1883);
if (!brokerUp) console.warn('gateway/ops/mqtt.test.ts: SKIPPED the Mosquitto cases: no MQTT broker at 127.0.0.1:1883 (install and start mosquitto to run them)');

interface Received { topic: string; payload: string; retain: boolean }

/** A subscriber on `topics` that records every message. */
async function listen(url: string, topics: string[]): Promise<{ client: MqttClient; got: Received[]; on: (topic: string) => Received[] }> {
  const client = connect(url, { reconnectPeriod: 200 });
  client.on('error', () => undefined);
  const got: Received[] = [];
  client.on('message', (topic, payload, packet) => {
    got.push({ topic, payload: payload.toString(), retain: packet.retain });
  });
  await new Promise<void>((r) => client.once('connect', () => { r(); }));
  await client.subscribeAsync(topics, { qos: 1 });
  return { client, got, on: (t) => got.filter((m) => m.topic === t) };
}

let factory: TestFactory;
let pack: TestPack;
const run = `${process.pid}-${Date.now().toString(36)}`;
const cleanups: (() => Promise<void> | void)[] = [];
const retained = new Set<string>();

beforeAll(async () => {
  factory = await TestFactory.create();
  pack = await factory.pack('PACK-0001');
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
afterAll(async () => {
  if (!brokerUp || retained.size === 0) return;
  const c = connect(BROKER);
  await new Promise<void>((r) => c.once('connect', () => { r(); }));
  for (const t of retained) await c.publishAsync(t, '', { retain: true, qos: 1 });
  await c.endAsync();
});

let n = 0;
function topics() {
  n++;
  return { topicPrefix: `pctest/${run}/${n}`, discoveryPrefix: `hatest/${run}/${n}` };
}

function publisher(o: Partial<MqttPublisherOptions> & Pick<MqttPublisherOptions, 'topicPrefix' | 'discoveryPrefix'>): MqttPublisher {
  const p = new MqttPublisher({ url: BROKER, gateway: 'gw1', version: '0.1.0', minIntervalMs: 0, reconnectPeriodMs: 200, connectTimeoutMs: 2000, ...o });
  cleanups.push(() => p.close());
  return p;
}

const stored = (counter: number, over: Parameters<TestPack['frame']>[1] = {}): StoredFrame => ({ serial: 'PACK-0001', cose: pack.frame(counter, over), receivedAt: Date.parse('2026-03-01T08:00:00Z') + counter, source: 'serial:/dev/ttyUSB0' });
const json = (m: Received | undefined): Record<string, unknown> => JSON.parse(m?.payload ?? 'null') as Record<string, unknown>;

describe.skipIf(!brokerUp)('MqttPublisher with the Mosquitto broker', () => {
  it('publishes availability, Home Assistant discovery per pack and the retained state in display units', async () => {
    const t = topics();
    const sub = await listen(BROKER, [`${t.topicPrefix}/#`, `${t.discoveryPrefix}/#`]);
    cleanups.push(() => sub.client.endAsync());
    const p = publisher(t);
    await expect.poll(() => p.status().connected).toBe(true);
    p.offer([stored(7, { alarms: 0b101 })]);
    const stateTopic = `${t.topicPrefix}/gw1/PACK-0001/state`;
    await expect.poll(() => sub.on(stateTopic).length).toBe(1);
    cleanups.push(() => { for (const m of sub.got) retained.add(m.topic); });

    expect(sub.on(`${t.topicPrefix}/gw1/status`).map((m) => m.payload)).toEqual(['online']);
    const state = json(sub.on(stateTopic)[0]);
    expect(state).toMatchObject({ serial: 'PACK-0001', counter: 7, soc: 81.5, soh: 96.2, voltage: 52.48, current: 12.5, tempMin: 21.5, tempMax: 24.8, cycles: 312, alarms: 5, alarmNames: ['cellOverVoltage', 'overTemperature'], receivedAt: '2026-03-01T08:00:00.007Z', source: 'serial:/dev/ttyUSB0' });
    expect(state.cells).toEqual([3.281, 3.28, 3.279, 3.282]);

    const soc = sub.got.find((m) => m.topic === `${t.discoveryPrefix}/sensor/packchain_gw1_PACK-0001_soc/config`);
    expect(json(soc)).toMatchObject({
      unique_id: 'packchain_gw1_PACK-0001_soc',
      state_topic: stateTopic,
      value_template: '{{ value_json.soc }}',
      unit_of_measurement: '%',
      device_class: 'battery',
      state_class: 'measurement',
      availability_topic: `${t.topicPrefix}/gw1/status`,
      device: { identifiers: ['packchain_pack_PACK-0001'], serial_number: 'PACK-0001', via_device: 'packchain_gateway_gw1' },
    });
    expect(json(sub.got.find((m) => m.topic.endsWith('_voltage/config')))).toMatchObject({ unit_of_measurement: 'V', device_class: 'voltage' });
    expect(json(sub.got.find((m) => m.topic === `${t.discoveryPrefix}/binary_sensor/packchain_gw1_PACK-0001_alarms/config`))).toMatchObject({ device_class: 'problem' });
    expect(json(sub.got.find((m) => m.topic === `${t.discoveryPrefix}/binary_sensor/packchain_gw1_online/config`))).toMatchObject({ device_class: 'connectivity', state_topic: `${t.topicPrefix}/gw1/status` });
    expect(p.status()).toMatchObject({ enabled: true, connected: true, published: 1, packs: 1, dropped: {} });

    // Retained: a subscriber that comes later (Home Assistant starting) gets state, configs and availability.
    const configs = new Set(sub.got.filter((m) => m.topic.endsWith('/config')).map((m) => m.topic));
    expect(configs.size).toBe(13); // 12 per pack + the gateway's connectivity sensor
    const late = await listen(BROKER, [`${t.topicPrefix}/#`, `${t.discoveryPrefix}/#`]);
    cleanups.push(() => late.client.endAsync());
    await expect.poll(() => late.got.length).toBe(configs.size + 2);
    expect(late.got.every((m) => m.retain)).toBe(true);
    expect(new Set(late.got.map((m) => m.topic))).toEqual(new Set([...configs, stateTopic, `${t.topicPrefix}/gw1/status`]));
  });

  it('sends at most one state per pack per interval: frames in between are coalesced, the latest wins', async () => {
    const t = topics();
    const sub = await listen(BROKER, [`${t.topicPrefix}/#`]);
    cleanups.push(() => sub.client.endAsync());
    const p = publisher({ ...t, minIntervalMs: 300, discovery: false });
    await expect.poll(() => p.status().connected).toBe(true);
    const stateTopic = `${t.topicPrefix}/gw1/PACK-0001/state`;
    p.offer([stored(1), stored(2), stored(3)]);
    await expect.poll(() => sub.on(stateTopic).map((m) => json(m).counter)).toEqual([1, 3]);
    retained.add(stateTopic).add(`${t.topicPrefix}/gw1/status`);
    expect(p.status()).toMatchObject({ published: 2, coalesced: 1 });
  });

  it('when Home Assistant announces a restart › sends the discovery configs again', async () => {
    const t = topics();
    const sub = await listen(BROKER, [`${t.discoveryPrefix}/#`]);
    cleanups.push(() => sub.client.endAsync());
    const p = publisher(t);
    await expect.poll(() => p.status().connected).toBe(true);
    p.offer([stored(1)]);
    const socTopic = `${t.discoveryPrefix}/sensor/packchain_gw1_PACK-0001_soc/config`;
    await expect.poll(() => sub.on(socTopic).length).toBe(1);
    await sub.client.publishAsync(`${t.discoveryPrefix}/status`, 'online');
    await expect.poll(() => sub.on(socTopic).length).toBe(2);
    for (const m of sub.got) retained.add(m.topic);
    retained.add(`${t.topicPrefix}/gw1/status`).add(`${t.topicPrefix}/gw1/PACK-0001/state`);
  });

  it('on close › publishes "offline" (retained) on the availability topic', async () => {
    const t = topics();
    const sub = await listen(BROKER, [`${t.topicPrefix}/gw1/status`]);
    cleanups.push(() => sub.client.endAsync());
    const p = publisher({ ...t, discovery: false });
    await expect.poll(() => sub.got.map((m) => m.payload)).toEqual(['online']);
    await p.close();
    await expect.poll(() => sub.got.map((m) => m.payload)).toEqual(['online', 'offline']);
    retained.add(`${t.topicPrefix}/gw1/status`);
  });

  it('when the gateway process dies (kill -9) › the broker publishes the last will "offline"', async () => {
    const t = topics();
    const sub = await listen(BROKER, [`${t.topicPrefix}/gw-lwt/status`]);
    cleanups.push(() => sub.client.endAsync());
    const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', join(root, 'gateway/ops/mqtt-lwt-child.ts'), BROKER, t.topicPrefix, t.discoveryPrefix], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
    cleanups.push(() => { if (child.exitCode === null) child.kill('SIGKILL'); });
    await new Promise<void>((r, fail) => {
      child.stdout?.on('data', (d: Buffer) => { if (d.toString().includes('ready')) r(); });
      child.once('exit', (code) => { fail(new Error(`child exited ${code}`)); });
    });
    await expect.poll(() => sub.got.map((m) => m.payload)).toEqual(['online']);
    child.kill('SIGKILL');
    await expect.poll(() => sub.got.map((m) => m.payload), { timeout: 10_000 }).toEqual(['online', 'offline']);
    retained.add(`${t.topicPrefix}/gw-lwt/status`);
  });
});

describe('MqttPublisher when the broker is unreachable', () => {
  it('keeps running: offer() returns at once, nothing is sent, every state is dropped and counted', async () => {
    const port = await freePort(); // nothing listens there
    const p = publisher({ url: `mqtt://127.0.0.1:${port}`, topicPrefix: 'x', discoveryPrefix: 'y' });
    for (let c = 0; c < 5; c++) p.offer([stored(c)]);
    const s = p.status();
    expect(s.connected).toBe(false);
    expect(s.published).toBe(0);
    expect(s.dropped.offline).toBe(5);
    await expect.poll(() => p.status().lastError).toMatch(/ECONNREFUSED/);
    await p.close(); // does not hang on a broker that is not there
  });
});

const mosquitto = await new Promise<boolean>((done) => {
  const c = spawn('mosquitto', ['-h'], { stdio: 'ignore' });
  c.once('error', () => { done(false); });
  c.once('exit', () => { done(true); });
});

describe.skipIf(!mosquitto)('MqttPublisher when its broker restarts', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'gw-mqtt-'));
  });
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  async function broker(port: number): Promise<ChildProcess> {
    const conf = join(dir, 'mosquitto.conf');
    writeFileSync(conf, `listener ${port} 127.0.0.1\nallow_anonymous true\npersistence false\n`);
    const b = spawn('mosquitto', ['-c', conf], { stdio: 'ignore' });
    await expect.poll(() => reachable(port)).toBe(true);
    return b;
  }
  const stop = (b: ChildProcess): Promise<void> => new Promise((r) => {
    if (b.exitCode !== null) { r(); return; }
    b.once('exit', () => { r(); });
    b.kill('SIGKILL');
  });

  it('drops while it is down, reconnects by itself, then sends discovery and state again', async () => {
    const port = await freePort();
    const url = `mqtt://127.0.0.1:${port}`;
    let b = await broker(port);
    cleanups.push(() => stop(b));
    const p = publisher({ url, topicPrefix: 'pc', discoveryPrefix: 'ha' });
    await expect.poll(() => p.status().connected).toBe(true);
    p.offer([stored(1)]);
    await expect.poll(() => p.status().published).toBe(1);
    const discoveries = p.status().discoveries;

    await stop(b);
    await expect.poll(() => p.status().connected).toBe(false);
    p.offer([stored(2)]);
    expect(p.status().dropped.offline).toBe(1);

    b = await broker(port);
    const sub = await listen(url, ['pc/#', 'ha/#']);
    cleanups.push(() => sub.client.endAsync());
    await expect.poll(() => p.status().connected, { timeout: 10_000 }).toBe(true);
    p.offer([stored(3)]);
    await expect.poll(() => sub.on('pc/gw1/PACK-0001/state').map((m) => json(m).counter)).toEqual([3]);
    expect(p.status().discoveries).toBeGreaterThan(discoveries); // a fresh broker has no retained configs: sent again
    expect(sub.got.some((m) => m.topic === 'ha/sensor/packchain_gw1_PACK-0001_soc/config')).toBe(true);
  });
});
