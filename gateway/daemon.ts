/**
 * The gateway daemon (`packchain gateway run`, issue 6 items 4–6): assembles the parts from one
 * validated config — the log store (lock, crash recovery), the trust store, the certificate store,
 * the ingest pipeline behind an instrumented log port, the serial and BLE transports, the
 * checkpoint policy (every N entries or T ms, only when the durable size grew: LogStore never signs
 * beyond it), the ops HTTP endpoint (/healthz, /metrics, /status), the optional MQTT publisher
 * fed with every durably stored frame, and the sync client to the upstream ledger when
 * upstream.url is set (kicked after each new checkpoint). `stop()` shuts down in the order that
 * loses nothing: the sync loop ends first (it reads the store), then the
 * pipeline stops taking frames while the channels are still open, so frames already verified are
 * appended and acknowledged; then the transports close, a final checkpoint covers the whole log,
 * and the store releases its lock. Timers and handlers never throw: an unexpected error is logged
 * and counted and the process carries on (systemd restarts it only if it really dies).
 */
import { join } from 'node:path';
import type { TrustStore } from '../protocol/index.js';
import { CertStore } from './certs.js';
import type { GatewayConfig } from './config.js';
import { bleTransportOptions, checkpointPolicy, logStoreOptions, mqttPublisherOptions, pipelineOptions, serialTransportOptions, syncClientOptions } from './config-map.js';
import { IngestPipeline } from './ingest/pipeline.js';
import { logPort } from './ingest/log-port.js';
import { loadKeyFile, type GatewayKey } from './keys.js';
import { assembleSnapshot } from './ops/assemble.js';
import { OpsServer } from './ops/http.js';
import { instrumentLog, type InstrumentedLog } from './ops/instrument.js';
import { createLogger, type Logger } from './ops/logger.js';
import { GatewayMetrics, LatencyHistogram } from './ops/metrics.js';
import { MqttPublisher } from './ops/mqtt.js';
import type { StatusSnapshot } from './ops/snapshot.js';
import type { CheckpointPolicy, StoredCheckpoint } from './store/checkpoints.js';
import { LogStore } from './store/log-store.js';
import { SyncClient } from './sync/client.js';
import { BleTransport } from './transport/ble.js';
import { SerialTransport } from './transport/serial.js';
import type { Transport } from './transport/types.js';
import { loadTrustBundle } from './trust-file.js';

export interface GatewayStartOptions {
  /** Default: pino JSON on stdout at config.logLevel. */
  readonly logger?: Logger;
  /** Gateway clock, ms since the epoch (default Date.now): receive times, checkpoint policy. */
  readonly now?: () => number;
  /** packchain version for /status and MQTT discovery. */
  readonly version?: string;
  /** Transports besides those of the config (tests: a MemoryTransport). */
  readonly transports?: readonly Transport[];
  /** BLE: D-Bus address of BlueZ's bus (default the system bus, or $DBUS_SYSTEM_BUS_ADDRESS). */
  readonly bleBusAddress?: string;
  /** Checkpoint policy tick (default min(everyMs, 1000) ms). */
  readonly tickMs?: number;
  /** Warn when a CRL's nextUpdate is closer than this (default 7 days). */
  readonly crlWarnMs?: number;
  /** Sync client: jitter source for its backoff (default Math.random). */
  readonly syncRandom?: () => number;
}

/** Counters of the daemon itself (errors it survived). */
export interface DaemonStats {
  checkpoints: number;
  checkpointFailures: number;
  trustReloads: number;
  trustReloadFailures: number;
  unexpectedErrors: number;
}

const DAY_MS = 86_400_000;

export class Gateway {
  readonly stats: DaemonStats = { checkpoints: 0, checkpointFailures: 0, trustReloads: 0, trustReloadFailures: 0, unexpectedErrors: 0 };
  readonly startedAt: number;
  #pipeline: IngestPipeline | undefined;
  #trust: TrustStore;
  #timer: NodeJS.Timeout | undefined;
  #crlTimer: NodeJS.Timeout | undefined;
  #checkpointing: Promise<void> | undefined;
  #signedAt: number | undefined;
  #stopping: Promise<void> | undefined;
  #ops: OpsServer | undefined;
  #sync: SyncClient | undefined;

  private constructor(
    readonly config: GatewayConfig,
    readonly logger: Logger,
    readonly store: LogStore,
    readonly certs: CertStore,
    readonly key: GatewayKey,
    readonly transports: readonly Transport[],
    readonly log: InstrumentedLog,
    readonly latency: LatencyHistogram,
    readonly mqtt: MqttPublisher | undefined,
    readonly policy: CheckpointPolicy,
    private readonly o: GatewayStartOptions & { now: () => number; version: string },
    trust: TrustStore,
  ) {
    this.#trust = trust;
    this.startedAt = o.now();
  }

  /**
   * Starts everything the config names and returns once frames can flow. Throws (after undoing
   * what was started): CONFIG/KEY_FILE/KEY_PERMISSIONS (key), TRUST_LOAD, STORE_LOCKED, STORE_CORRUPT,
   * STORE_IO, STORE_CONFIG, CERT_STORE, INGEST_*, TRANSPORT_CONFIG, OPS_LISTEN.
   */
  static async start(config: GatewayConfig, options: GatewayStartOptions = {}): Promise<Gateway> {
    const now = options.now ?? Date.now;
    const logger = options.logger ?? createLogger({ level: config.logLevel, gateway: config.name });
    const o = { ...options, now, version: options.version ?? '0.0.0' };
    const undo: (() => Promise<void>)[] = [];
    try {
      const key = await loadKeyFile(config.keyFile, config.name);
      const trust = await loadTrustBundle(config.trustBundle);
      const store = await LogStore.open({ ...logStoreOptions(config), clock: now });
      undo.push(() => store.close());
      logger.info({ report: store.report }, `gateway: log opened at ${store.size} entries${store.report.cutEntries > 0 ? `, cut a torn tail of ${store.report.cutEntries} entries` : ''}`);
      const certs = CertStore.open(join(config.dataDir, 'certs'), true);
      const latency = new LatencyHistogram();
      const mqttOptions = await mqttPublisherOptions(config, { version: o.version, logger });
      const mqtt = mqttOptions === undefined ? undefined : new MqttPublisher(mqttOptions);
      if (mqtt) undo.push(() => mqtt.close());
      const gwRef: { gw?: Gateway } = {};
      const log = instrumentLog(logPort(store), {
        latency,
        stored: (frames) => {
          mqtt?.offer(frames);
          gwRef.gw?.afterAppend();
        },
      });
      const transports: Transport[] = [...(options.transports ?? [])];
      const serial = serialTransportOptions(config);
      if (serial) transports.push(new SerialTransport(serial));
      const ble = bleTransportOptions(config);
      if (ble) transports.push(new BleTransport({ ...ble, ...(options.bleBusAddress === undefined ? {} : { busAddress: options.bleBusAddress }) }));
      const gw = new Gateway(config, logger, store, certs, key, transports, log, latency, mqtt, checkpointPolicy(config), o, trust);
      gwRef.gw = gw;
      gw.#pipeline = await IngestPipeline.open({
        ...pipelineOptions(config),
        log,
        trust,
        now,
        chainVerified: (chain, device) => {
          const before = certs.writes;
          certs.remember(chain);
          if (certs.writes > before) logger.info({ serial: device.packSerial }, `gateway: stored the certificate chain of ${device.packSerial}`);
        },
      });
      const pipeline = gw.#pipeline;
      undo.push(() => pipeline.close());
      logger.info({ recovery: pipeline.recovery }, 'gateway: ingest state recovered');
      if (config.http.listen !== null) {
        const metrics = new GatewayMetrics();
        gw.#ops = await OpsServer.start({ listen: config.http.listen, metrics, snapshot: () => gw.snapshot(), logger });
        const ops = gw.#ops;
        undo.push(() => ops.close());
        logger.info({ url: ops.url }, `gateway: http listening on ${ops.url}`);
      }
      for (const t of transports) {
        await t.start(pipeline.events);
        undo.push(() => t.stop());
      }
      const syncOptions = syncClientOptions(config);
      if (syncOptions !== undefined) {
        const sync = new SyncClient({
          ...syncOptions,
          store,
          chains: (sha) => certs.chain(sha),
          signer: key.signer,
          logger,
          now,
          ...(options.syncRandom === undefined ? {} : { random: options.syncRandom }),
        });
        await sync.start();
        gw.#sync = sync;
        undo.push(() => sync.stop());
        logger.info({ url: syncOptions.url, limits: sync.limits }, `gateway: syncing to ${syncOptions.url}`);
      }
      gw.#startTimers();
      gw.#checkCrls();
      logger.info({ origin: key.origin, size: store.size, transports: transports.map((t) => t.status().kind) }, 'gateway: running');
      return gw;
    } catch (e) {
      for (const u of undo.reverse()) await u().catch(() => undefined);
      throw e;
    }
  }

  get origin(): string {
    return this.key.origin;
  }
  get pipeline(): IngestPipeline | undefined {
    return this.#pipeline;
  }
  get trust(): TrustStore {
    return this.#trust;
  }
  /** The sync client, when upstream.url is set. */
  get sync(): SyncClient | undefined {
    return this.#sync;
  }
  /** The ops endpoint's base URL, when it listens. */
  get url(): string | undefined {
    return this.#ops?.url;
  }

  /** One status snapshot (what /status serves). Never throws for a stopped pipeline. */
  snapshot(): StatusSnapshot {
    return assembleSnapshot({
      name: this.config.name,
      origin: this.origin,
      version: this.o.version,
      startedAt: this.startedAt,
      now: this.o.now,
      store: this.store,
      checkpointSignedAt: () => this.#signedAt,
      transports: this.transports,
      pipeline: this.#pipeline,
      log: this.log,
      latency: this.latency,
      sync: { url: this.config.upstream.url, ...(this.#sync === undefined ? {} : { client: this.#sync }) },
      ...(this.mqtt ? { mqtt: this.mqtt } : {}),
    });
  }

  /**
   * Reloads the trust bundle file and re-judges every session (SIGHUP). On failure keeps the old
   * trust store, logs and counts, and returns false. Never throws.
   */
  async reloadTrust(): Promise<boolean> {
    try {
      const trust = await loadTrustBundle(this.config.trustBundle);
      this.#trust = trust;
      this.#pipeline?.setTrust(trust);
      this.stats.trustReloads++;
      this.logger.info({ crlsValidUntil: trust.crlsValidUntil?.toISOString() }, 'gateway: trust bundle reloaded');
      this.#checkCrls();
      return true;
    } catch (e) {
      this.stats.trustReloadFailures++;
      this.logger.error({ err: e }, 'gateway: trust bundle reload failed; keeping the previous one');
      return false;
    }
  }

  /**
   * Signs a checkpoint now if the log grew (serialised with the policy's). Returns the latest
   * checkpoint, or undefined for an empty log. Throws STORE_* (the caller decides; the policy
   * timer only logs).
   */
  async checkpointNow(): Promise<StoredCheckpoint | undefined> {
    await this.#checkpointing;
    if (this.store.size === 0) return this.store.latestCheckpoint();
    const before = this.store.latestCheckpoint()?.size;
    const cp = await this.store.checkpoint(this.key.signer, this.o.now());
    if (cp.size !== before) this.#signed(cp);
    return cp;
  }

  /**
   * Stops in the order that loses nothing (see the module comment) and releases the store.
   * Idempotent; never throws (failures are logged).
   */
  stop(): Promise<void> {
    this.#stopping ??= this.#stop();
    return this.#stopping;
  }

  async #stop(): Promise<void> {
    clearInterval(this.#timer);
    clearInterval(this.#crlTimer);
    const step = async (what: string, f: () => Promise<unknown>): Promise<void> => {
      try {
        await f();
      } catch (e) {
        this.stats.unexpectedErrors++;
        this.logger.error({ err: e }, `gateway: stop: ${what} failed`);
      }
    };
    await step('stopping the sync loop', async () => this.#sync?.stop());
    const pipeline = this.#pipeline;
    // No new frames; frames already verified are appended and their acks queued while channels are open.
    await step('closing the ingest pipeline', async () => {
      await pipeline?.close();
      await new Promise<void>((r) => setImmediate(r)); // the pipeline sends coalesced acks on the next turn
      await new Promise<void>((r) => setTimeout(r, 50)); // and let the transports write them
    });
    this.#pipeline = undefined;
    for (const t of this.transports) await step(`stopping the ${t.status().kind} transport`, () => t.stop());
    await this.#checkpointing;
    await step('signing the final checkpoint', async () => {
      const cp = await this.checkpointNow();
      this.logger.info({ size: cp?.size ?? 0 }, `gateway: final checkpoint at ${cp?.size ?? 0} entries`);
    });
    await step('closing the http endpoint', async () => this.#ops?.close());
    await step('closing mqtt', async () => this.mqtt?.close());
    await step('closing the log', () => this.store.close());
    this.logger.info('gateway: stopped');
  }

  /** Called after every durable append: sign at once when the entry count of the policy is reached. */
  private afterAppend(): void {
    const last = this.store.latestCheckpoint()?.size ?? 0;
    if (this.store.size - last >= this.policy.everyEntries) this.#maybeCheckpoint();
  }

  #startTimers(): void {
    const tick = this.o.tickMs ?? Math.min(this.policy.everyMs, 1000);
    this.#timer = setInterval(() => {
      this.#maybeCheckpoint();
    }, tick);
    this.#timer.unref();
    this.#crlTimer = setInterval(() => {
      this.#checkCrls();
    }, 3_600_000);
    this.#crlTimer.unref();
  }

  #maybeCheckpoint(): void {
    if (this.#checkpointing !== undefined || this.#stopping !== undefined) return;
    this.#checkpointing = this.store
      .maybeCheckpoint(this.key.signer, this.policy, this.o.now())
      .then(
        (cp) => {
          if (cp) this.#signed(cp);
        },
        (e: unknown) => {
          this.stats.checkpointFailures++;
          this.logger.error({ err: e }, 'gateway: checkpoint failed; retrying at the next tick');
        },
      )
      .finally(() => {
        this.#checkpointing = undefined;
      });
  }

  #signed(cp: StoredCheckpoint): void {
    this.#signedAt = this.o.now();
    if (this.#stopping === undefined) this.#sync?.kick();
    this.stats.checkpoints++;
    this.logger.debug({ size: cp.size }, `gateway: checkpoint signed at ${cp.size} entries`);
  }

  /** Warns while the earliest CRL nextUpdate is near or past (frames then fail CRL_STALE). */
  #checkCrls(): void {
    try {
      const until = this.#trust.crlsValidUntil;
      if (until === undefined) return;
      const left = until.getTime() - this.o.now();
      const warnMs = this.o.crlWarnMs ?? 7 * DAY_MS;
      if (left <= 0) this.logger.error({ crlsValidUntil: until.toISOString() }, 'gateway: a CRL of the trust bundle is past its nextUpdate: frames are refused with CRL_STALE; load a fresh bundle (SIGHUP)');
      else if (left <= warnMs) this.logger.warn({ crlsValidUntil: until.toISOString(), daysLeft: Math.floor(left / DAY_MS) }, 'gateway: a CRL of the trust bundle expires soon; load a fresh bundle (SIGHUP)');
    } catch (e) {
      this.stats.unexpectedErrors++;
      this.logger.error({ err: e }, 'gateway: CRL check failed');
    }
  }
}
