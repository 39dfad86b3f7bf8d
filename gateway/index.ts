/**
 * gateway: public surface of the module (STYLE.md habit 1) — the shop-floor daemon: serial and BLE
 * transports, the verification pipeline, the durable Merkle log with signed checkpoints, config, keys
 * and operations (logs, /healthz, /metrics, MQTT). It imports only protocol/ through
 * protocol/index.js, never another module.
 */
export { GatewayError, isGatewayError, type ConfigErrorCode, type DaemonErrorCode, type GatewayErrorCode, type IngestErrorCode, type OpsErrorCode, type StoreErrorCode, type SyncErrorCode, type TransportErrorCode } from './errors.js';

// Durable log (gateway/store/)
export { LogStore } from './store/log-store.js';
export type { StoredEntry } from './store/core.js';
export { DEFAULT_QUOTA_BYTES, type LogStoreOptions, type OpenReport } from './store/open.js';
export { checkpointDue, DEFAULT_CHECKPOINT_POLICY, type CheckpointPolicy, type StoredCheckpoint } from './store/checkpoints.js';
export type { AppendResult, AppendedEntry, EncodedLeaf, LeafInput } from './store/appender.js';
export type { PackEntry } from './store/packs.js';
export type { TimeRange } from './store/history.js';

// Transports (gateway/transport/)
export type { ChannelEvents, DeviceChannel, EndpointState, EndpointStatus, InputFlow, RejectCode, Transport, TransportKind, TransportStatus } from './transport/types.js';
export { SerialTransport, type SerialTransportOptions } from './transport/serial.js';
export { EventLoopLinuxBinding, EventLoopPortBinding } from './transport/serial-binding.js';
export { BleTransport, type BleTransportOptions } from './transport/ble.js';
export { MemoryTransport, type MemoryDevice, type MemoryTransportOptions } from './transport/memory.js';
export type { RateCaps } from './transport/endpoint.js';
export type { BackoffOptions } from './transport/limits.js';

// Ingest pipeline (gateway/ingest/)
export { IngestPipeline, type PipelineOptions, type PipelineStatus } from './ingest/pipeline.js';
export { logPort, type IngestEntry, type IngestLog } from './ingest/log-port.js';
export { VerifyPool, type VerifyJob, type VerifyPoolOptions, type VerifyPoolStats } from './ingest/verify.js';
export type { LeafFields } from './ingest/verify-frame.js';
export { SECURITY_CODES, type IngestRejectCode, type QuarantineStatus, type RejectSample } from './ingest/quarantine.js';
export type { SessionInfo } from './ingest/session.js';
export type { DeviceStats } from './ingest/stats.js';
export type { RecoveryReport } from './ingest/state.js';

// Config, keys, init (gateway/config*.ts, keys.ts, init.ts)
export {
  CONFIG_SCHEMA,
  configReference,
  configWarnings,
  loadConfig,
  MAX_CONFIG_BYTES,
  parseConfig,
  type BleConfig,
  type GatewayConfig,
  type HttpConfig,
  type IngestConfig,
  type ListenAddress,
  type LogConfig,
  type LogLevel,
  type MqttConfig,
  type SerialConfig,
  type UpstreamConfig,
} from './config.js';
export { referenceTable, type ReferenceRow } from './config-schema.js';
export { exampleConfig, type ExampleConfigOptions } from './config-example.js';
export { bleTransportOptions, checkpointPolicy, logStoreOptions, mqttPublisherOptions, pipelineOptions, serialTransportOptions, syncClientOptions } from './config-map.js';
export { createKeyFile, KEY_FILE_MODE, loadKeyFile, type GatewayKey } from './keys.js';
export { initGateway, type InitOptions, type InitResult } from './init.js';

// Operations (gateway/ops/)
export { createLogger, REDACT_PATHS, type Logger, type LoggerOptions } from './ops/logger.js';
export { GatewayMetrics, LATENCY_BOUNDS, LatencyHistogram, METRIC_PREFIX } from './ops/metrics.js';
export { OpsServer, type OpsServerOptions } from './ops/http.js';
export { MqttPublisher, type MqttPublisherOptions, type StoredFrame } from './ops/mqtt.js';
export { instrumentLog, type InstrumentedLog, type LogInstruments } from './ops/instrument.js';
export { assembleSnapshot, type SnapshotSources } from './ops/assemble.js';
export { healthOf, type Health, type HistogramSnapshot, type StatusSnapshot, type SyncCounters, type SyncSnapshot } from './ops/snapshot.js';
export { checkSnapshot, fetchStatus } from './ops/status-client.js';

// Sync to the upstream ledger (gateway/sync/)
export { DEFAULT_IN_FLIGHT, SyncClient, type SyncClientOptions, type SyncClientStatus } from './sync/client.js';
export { DEFAULT_BACKOFF, backoffDelay, type BackoffPolicy } from './sync/backoff.js';
export { COSIGNED_FILE, readCosigned, type CosignedCheckpoint } from './sync/cosigned.js';

// The daemon and the log commands (gateway/daemon.ts, certs.ts, trust-file.ts, audit/)
export { Gateway, type DaemonStats, type GatewayStartOptions } from './daemon.js';
export { CertStore } from './certs.js';
export { loadTrustBundle, loadVerifierKey } from './trust-file.js';
export { verifyLog, type LogProblem, type VerifyLogOptions, type VerifyLogReport } from './audit/verify-log.js';
export { formatHistory, HISTORY_FIELDS, historyRows, parseFields, type HistoryFormat, type HistoryRow } from './audit/history.js';
export { proveFrame, type ProvedEntry } from './audit/prove.js';
