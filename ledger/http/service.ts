/**
 * What the HTTP layer needs of the ledger core (ledger/ledger.ts `Ledger`, docs/ledger.md): the
 * methods the routes call, typed structurally so that the server depends on the core's contract
 * and not on its class (the core's own tests cover its storage; the server's tests drive the real
 * Ledger). `setTrust` is optional: a core without it cannot take a reloaded trust bundle (SIGHUP),
 * and the service then says so in its log instead of pretending.
 */
import type { SyncState, TrustStore, UploadResult } from '../../protocol/index.js';
import type { ForkEvidence, GatewayRecord, HistoryRow, LedgerStats, PackDetail, PackSummary, PassportFrame } from '../types.js';

export interface HistoryQuery {
  readonly since?: number;
  readonly until?: number;
  readonly after?: number;
  readonly limit: number;
}

export interface LedgerService {
  authenticateGateway(authorization: string | undefined, method: string, path: string, body: Uint8Array): Promise<GatewayRecord>;
  state(gw: GatewayRecord): Promise<SyncState>;
  upload(gw: GatewayRecord, body: Uint8Array): Promise<UploadResult>;
  packs(prefix: string, limit: number): Promise<PackSummary[]>;
  pack(serial: string): Promise<PackDetail | undefined>;
  history(serial: string, q: HistoryQuery): Promise<{ rows: HistoryRow[]; next: number | null }>;
  proofBundle(serial: string, counter: number): Promise<string | undefined>;
  passportFrames(serial: string): Promise<PassportFrame[]>;
  trustInfo(): Promise<{ witness: string; gateways: { origin: string; vkey: string }[] }>;
  verifyToken(token: string): Promise<string | undefined>;
  gateways(): Promise<GatewayRecord[]>;
  evidence(): Promise<ForkEvidence[]>;
  stats(): LedgerStats;
  setTrust?(trust: TrustStore): void;
}
