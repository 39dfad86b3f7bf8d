/**
 * provisioning: public surface of the module (STYLE.md habit 1) — the line technician's station: the
 * factory root and line CAs with keys encrypted at rest, the registry of every attempt, revocation and
 * CRLs, the trust bundle export, and the pack attempt over the serial line or BLE. It imports only protocol/
 * through protocol/index.js, never another module.
 */
export { EXIT_CODES, EXIT_LINE_FAILURES, isProvisioningError, ProvisioningError, type PackFailureCode, type ProvisioningErrorCode, type StationErrorCode } from './errors.js';
export {
  CA_DEFAULTS,
  MIN_PASSPHRASE_LENGTH,
  readCrlSummaries,
  readTrustBundle,
  refreshRootCrl,
  StationCa,
  type CaCertSummary,
  type CaInitOptions,
  type CaSummary,
  type CrlSummary,
  type IssuedDevice,
  type StationCaOptions,
} from './ca.js';
export { caPaths, type CaPaths } from './ca-store.js';
export { KEY_PBKDF2_ITERATIONS, writeFileAtomic } from './ca-keys.js';
export { Registry, REGISTRY_FILE, scanDataFile, type AttemptRecord, type AttemptResult, type CertStatus, type RegistryOpenOptions } from './registry.js';
export { parseRevocationReason, REVOCATION_REASONS, revokeCertificate, revokeSerial, type RevocationReason, type RevocationResult } from './revoke.js';
export { PackSession, type CallOptions, type PackSessionOptions, type PackSessionStats, type ResultOf } from './device.js';
export { LinkEvents, type PackLink, type PackLinkEvents } from './link.js';
export { SerialLink, type SerialLinkOptions } from './serial-link.js';
export { BleLink, bleLinkName, checkBleAddress, chunkSizeForMtu, DEFAULT_BLE_CONNECT_TIMEOUT_MS, type BleLinkOptions } from './ble-link.js';
export { checkSelfTest, CRITICAL_ALARMS, PLAUSIBLE, SELFTEST_CHECKS, type SelfTestCheck, type SelfTestExpected, type SelfTestResult } from './selftest.js';
export {
  ATTEMPT_STEPS,
  checkPackSerial,
  DEFAULT_ACCEPT_FIRMWARE,
  DEFAULT_KEYGEN_TIMEOUT_MS,
  DEFAULT_TIMEOUT_MS,
  provisionPack,
  resolvePending,
  shortFingerprint,
  type AttemptOutcome,
  type AttemptStep,
  type BleTarget,
  type ProgressEvent,
  type ProvisionPackOptions,
} from './station.js';
export { formatSummary, LineScreen, runLine, summarise, type LineOptions, type LineOutput, type LineSummary } from './line.js';
export { expandPortGlob, formatSerial, parseSerialPattern, serialsFromFile, serialsFromPattern, type SerialPattern, type SerialSource } from './line-sources.js';
