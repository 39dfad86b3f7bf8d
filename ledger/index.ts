/**
 * ledger: public surface of the module (STYLE.md habit 1) — the upstream ledger: it verifies every
 * gateway upload again, holds each gateway's tree, cosigns accepted checkpoints as witness, detects
 * forks and keeps the evidence, stores frames once across gateways (embedded PGlite or PostgreSQL,
 * one schema), and serves service engineers history, proofs, passports and a web page over HTTP.
 * It imports only protocol/ through protocol/index.js, never another module.
 */
export { LedgerError, isLedgerError, type CoreErrorCode, type LedgerErrorCode, type LedgerErrorOptions, type ServiceErrorCode } from './errors.js';

// Core: storage, verification, witnessing, fork detection, queries (ledger/*.ts, ledger/db/)
export { Ledger } from './ledger.js';
export {
  HISTORY_ROW_FIELDS,
  type EvidenceKind,
  type ForkEvidence,
  type GatewayRecord,
  type HistoryRow,
  type LedgerAlert,
  type LedgerOptions,
  type LedgerStats,
  type PackCertificate,
  type PackDetail,
  type PackGatewaySummary,
  type PackSummary,
  type StorageOptions,
} from './types.js';
export { MAX_HISTORY_LIMIT, MAX_PACKS_LIMIT } from './queries.js';

// Battery passport (ledger/passport.ts)
export {
  buildPassport,
  PARAMETER_NAMES,
  PARAMETER_SPECS,
  PASSPORT_SCHEMA,
  SELF_DISCHARGE_SERIES_MONTHS,
  type FrameCitation,
  type ParameterName,
  type Passport,
  type PassportCertificate,
  type PassportFrame,
  type PassportInput,
  type PassportParameter,
  type SeriesPoint,
} from './passport.js';

// The witness key (ledger/keys.ts)
export { checkWitnessName, createWitnessKey, loadWitnessKey, WITNESS_KEY_MODE, WITNESS_NAME_PREFIX, type WitnessKey } from './keys.js';

// HTTP service and web page (ledger/http/, ledger/web/)
export { createLedgerServer, type LedgerServerOptions } from './http/server.js';
export { LedgerMetrics, LEDGER_METRIC_PREFIX } from './http/metrics.js';
export { errorReply, HTTP_STATUS } from './http/errors.js';
export type { HistoryQuery, LedgerService } from './http/service.js';
export { CONTENT_SECURITY_POLICY, registerWebPage, type WebPageOptions } from './web/plugin.js';
export { buildWebAssets, type WebAsset, type WebAssets } from './web/assets.js';
