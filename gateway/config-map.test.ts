import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { bleTransportOptions, checkpointPolicy, logStoreOptions, mqttPublisherOptions, pipelineOptions, serialTransportOptions } from './config-map.js';
import { parseConfig, type GatewayConfig } from './config.js';
import { isGatewayError } from './errors.js';
import { LogStore } from './store/log-store.js';
import { BleTransport } from './transport/ble.js';
import { SerialTransport } from './transport/serial.js';

const tmp = mkdtempSync(join(tmpdir(), 'gw-config-map-'));
afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
});

const cfg = (extra = ''): GatewayConfig => parseConfig(`name: gw1\ndataDir: ${JSON.stringify(tmp)}\n${extra}`, { baseDir: tmp });

describe('config → part options', () => {
  it('with defaults › no serial (no ports), no BLE, no MQTT; the store under dataDir/log with the origin', async () => {
    const c = cfg();
    expect(serialTransportOptions(c)).toBeUndefined();
    expect(bleTransportOptions(c)).toBeUndefined();
    expect(await mqttPublisherOptions(c, { version: '0.1.0' })).toBeUndefined();
    expect(logStoreOptions(c)).toEqual({ dir: join(tmp, 'log'), origin: 'packchain.gateway/gw1', quotaBytes: 8 * 2 ** 30, maxBatchEntries: 1024 });
    expect(checkpointPolicy(c)).toEqual({ everyEntries: 1000, everyMs: 10_000 });
    expect(pipelineOptions(c)).toEqual({ stateDir: tmp, verify: { maxQueued: 8192 }, maxInFlight: 16_384, maxInFlightPerChannel: 1024, holdInputAt: 2048, skewToleranceMs: 300_000 });
  });

  it('the parts accept the options of the smallest and largest values the config allows', async () => {
    for (const lo of [true, false]) {
      const pick = (a: number, b: number): number => (lo ? a : b);
      const c = cfg(`transports:
  serial: {ports: ["/dev/ttyUSB*"], baudRate: ${pick(50, 16_000_000)}, pollMs: ${pick(10, 3_600_000)}, maxLineBytes: ${pick(64, 4096)}, writeTimeoutMs: ${pick(1, 600_000)},
           backoff: {initialMs: 1, maxMs: ${pick(1, 3_600_000)}}, rate: {messagesPerSecond: ${pick(1, 1_000_000)}, bytesPerSecond: ${pick(1, 2 ** 30)}, burstSeconds: ${pick(1, 3600)}}}
  ble: {enabled: true, adapter: hci0, addresses: ["c0:de:00:07:00:04"], maxDevices: ${pick(1, 50)}, connectConcurrency: ${pick(1, 16)}, scanIntervalMs: ${pick(100, 3_600_000)},
        connectTimeoutMs: ${pick(100, 600_000)}, chunkSize: ${pick(20, 244)}}
log: {quotaBytes: ${pick(2 ** 20, 2 ** 50)}, groupCommit: {maxEntries: ${pick(1, 65_536)}}}
`);
      const serial = serialTransportOptions(c);
      const ble = bleTransportOptions(c);
      expect(serial).toBeDefined();
      expect(ble).toBeDefined();
      if (serial === undefined || ble === undefined) return;
      expect(() => new SerialTransport(serial)).not.toThrow();
      expect(() => new BleTransport(ble)).not.toThrow();
      const store = await LogStore.open({ ...logStoreOptions(c), dir: join(tmp, `log-${lo ? 'lo' : 'hi'}`) });
      await store.close();
    }
  });

  it('with MQTT enabled › reads the password file, first line only', async () => {
    const pw = join(tmp, 'mqtt.pass');
    writeFileSync(pw, 's3cret\n', { mode: 0o600 });
    const o = await mqttPublisherOptions(cfg(`mqtt: {enabled: true, username: gw, passwordFile: ${JSON.stringify(pw)}, clientId: gw1-main}\n`), { version: '0.1.0' });
    expect(o).toMatchObject({ url: 'mqtt://127.0.0.1:1883', gateway: 'gw1', username: 'gw', password: 's3cret', clientId: 'gw1-main', topicPrefix: 'packchain', discoveryPrefix: 'homeassistant', minIntervalMs: 5000, qos: 0, version: '0.1.0' });
  });

  it('when the MQTT password file is missing or empty › throws CONFIG naming mqtt.passwordFile', async () => {
    await expect(mqttPublisherOptions(cfg('mqtt: {enabled: true, passwordFile: nope}\n'), { version: '0' })).rejects.toSatisfy((e) => isGatewayError(e, 'CONFIG') && (e as Error).message.includes('mqtt.passwordFile: cannot read') && (e as Error).message.includes('ENOENT'));
    writeFileSync(join(tmp, 'empty.pass'), '\n');
    await expect(mqttPublisherOptions(cfg('mqtt: {enabled: true, passwordFile: empty.pass}\n'), { version: '0' })).rejects.toThrow(/mqtt\.passwordFile: .* is empty/);
  });
});
