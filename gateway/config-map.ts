/**
 * From a validated GatewayConfig to the option objects of the parts the daemon starts: the serial
 * and BLE transports, the log store and its checkpoint policy, the ingest pipeline and the MQTT
 * publisher and the sync client. One place maps config names to option names (log.groupCommit.maxEntries →
 * maxBatchEntries, ingest.workers "auto" → the pool's default), and the compiler checks the result
 * against each part's own option type, so a renamed option breaks the build rather than a start.
 * The parts validate their options again; config.ts keeps its ranges inside theirs (config-map.test.ts).
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gatewayOrigin, parseVerifierKey } from '../protocol/index.js';
import type { GatewayConfig } from './config.js';
import { GatewayError } from './errors.js';
import type { PipelineOptions } from './ingest/pipeline.js';
import type { Logger } from './ops/logger.js';
import type { MqttPublisherOptions } from './ops/mqtt.js';
import type { CheckpointPolicy } from './store/checkpoints.js';
import type { LogStoreOptions } from './store/open.js';
import type { SyncClientOptions } from './sync/client.js';
import type { BleTransportOptions } from './transport/ble.js';
import type { SerialTransportOptions } from './transport/serial.js';

/** Serial options, or undefined when no ports are configured (no serial transport). */
export function serialTransportOptions(c: GatewayConfig): SerialTransportOptions | undefined {
  const s = c.transports.serial;
  if (s.ports.length === 0) return undefined;
  return { ports: s.ports, baudRate: s.baudRate, pollMs: s.pollMs, maxLineBytes: s.maxLineBytes, writeTimeoutMs: s.writeTimeoutMs, backoff: s.backoff, rate: s.rate };
}

/** BLE options, or undefined when BLE is disabled. */
export function bleTransportOptions(c: GatewayConfig): BleTransportOptions | undefined {
  const b = c.transports.ble;
  if (!b.enabled) return undefined;
  return {
    ...(b.adapter === null ? {} : { adapter: b.adapter }),
    ...(b.addresses.length === 0 ? {} : { addresses: b.addresses }),
    maxDevices: b.maxDevices,
    connectConcurrency: b.connectConcurrency,
    scanIntervalMs: b.scanIntervalMs,
    connectTimeoutMs: b.connectTimeoutMs,
    chunkSize: b.chunkSize,
    backoff: b.backoff,
    rate: b.rate,
  };
}

/** The log lives in `<dataDir>/log`, under origin packchain.gateway/<name>. */
export function logStoreOptions(c: GatewayConfig): LogStoreOptions {
  return { dir: join(c.dataDir, 'log'), origin: gatewayOrigin(c.name), quotaBytes: c.log.quotaBytes, maxBatchEntries: c.log.groupCommit.maxEntries };
}

export function checkpointPolicy(c: GatewayConfig): CheckpointPolicy {
  return { everyEntries: c.log.checkpoint.everyEntries, everyMs: c.log.checkpoint.everyMs };
}

/** Pipeline options but the log port and the trust store, which the daemon builds. ingest-state.json goes in dataDir. */
export function pipelineOptions(c: GatewayConfig): Omit<PipelineOptions, 'log' | 'trust'> {
  const i = c.ingest;
  return {
    stateDir: c.dataDir,
    verify: { ...(i.workers === 'auto' ? {} : { workers: i.workers }), maxQueued: i.maxQueued },
    maxInFlight: i.maxInFlight,
    maxInFlightPerChannel: i.maxInFlightPerChannel,
    holdInputAt: i.holdInputAt,
    skewToleranceMs: i.clockSkewToleranceMs,
  };
}

/**
 * MQTT publisher options, or undefined when MQTT is disabled. Reads mqtt.passwordFile (its first
 * line); throws GatewayError CONFIG when it cannot be read or is empty. The password goes only to
 * the MQTT client: it is never logged or printed.
 */
export async function mqttPublisherOptions(c: GatewayConfig, o: { version: string; logger?: Logger }): Promise<MqttPublisherOptions | undefined> {
  const m = c.mqtt;
  if (!m.enabled) return undefined;
  let password: string | null = null;
  if (m.passwordFile !== null) {
    try {
      password = (await readFile(m.passwordFile, 'utf8')).split(/\r?\n/)[0] ?? '';
    } catch (e) {
      throw new GatewayError('CONFIG', `gateway: config: mqtt.passwordFile: cannot read ${m.passwordFile}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { cause: e });
    }
    if (password === '') throw new GatewayError('CONFIG', `gateway: config: mqtt.passwordFile: ${m.passwordFile} is empty; expected the broker password on its first line`);
  }
  return {
    url: m.url,
    gateway: c.name,
    topicPrefix: m.topicPrefix,
    discoveryPrefix: m.discoveryPrefix,
    discovery: m.discovery,
    minIntervalMs: m.minIntervalMs,
    qos: m.qos,
    username: m.username,
    password,
    clientId: m.clientId,
    version: o.version,
    ...(o.logger === undefined ? {} : { logger: o.logger }),
  };
}

/**
 * Sync client options but the parts the daemon owns (store, chains, signer, logger, clock), or
 * undefined when upstream.url is null (no sync). The backoff base is capped by the max.
 */
export function syncClientOptions(c: GatewayConfig): Omit<SyncClientOptions, 'store' | 'chains' | 'signer' | 'logger' | 'now'> | undefined {
  const u = c.upstream;
  if (u.url === null) return undefined;
  return {
    url: u.url,
    dataDir: c.dataDir,
    intervalMs: u.intervalMs,
    timeoutMs: u.timeoutMs,
    maxBatchEntries: u.maxBatchEntries,
    maxBatchBytes: u.maxBatchBytes,
    maxInFlightBatches: u.maxInFlightBatches,
    backoff: { baseMs: Math.min(u.backoffBaseMs, u.backoffMaxMs), maxMs: u.backoffMaxMs },
    ...(u.witnessKey === null ? {} : { witness: parseVerifierKey(u.witnessKey) }),
  };
}
