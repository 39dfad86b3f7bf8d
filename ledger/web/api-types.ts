/**
 * Shapes shared by the web page (browser, ledger/web/page/) and the server side (the plugin, the
 * fixture server of the tests): the JSON of the service-engineer API (/work/briefs/api.md,
 * docs/service-engineer.md) and the report of the in-browser proof verifier (verifier.ts). Pure
 * types, no imports, so both the Node program and the DOM program of the page can include it.
 */

/** One frame, once, however many gateways saw it (display units, docs/protocol.md §2.1.1). */
export interface HistoryRow {
  readonly serial: string;
  readonly counter: number;
  /** ISO 8601. */
  readonly deviceTime: string;
  /** ISO 8601, the first sighting's gateway receive time. */
  readonly receivedAt: string;
  readonly origin: string;
  readonly index: number;
  readonly source: string;
  readonly socPct: number;
  readonly sohPct: number;
  readonly voltageV: number;
  readonly currentA: number;
  readonly cellMinV: number;
  readonly cellMaxV: number;
  readonly cellSpreadMv: number;
  readonly tempMinC: number;
  readonly tempMaxC: number;
  readonly cycles: number;
  readonly alarms: number;
  readonly alarmNames: readonly string[];
  readonly sightings: number;
  readonly witnessed: boolean;
}

export interface PackSummary {
  readonly serial: string;
  readonly frames: number;
  readonly firstCounter: number;
  readonly lastCounter: number;
  readonly firstSeen: string;
  readonly lastSeen: string;
  readonly gateways: readonly string[];
  readonly latest: HistoryRow | null;
}

export interface GatewaySighting {
  readonly origin: string;
  readonly frames: number;
  readonly firstSeen: string;
  readonly lastSeen: string;
}

export interface CertificateSummary {
  readonly subject: string;
  readonly serial: string;
  readonly fingerprint: string;
  readonly notBefore: string;
  readonly notAfter: string;
  readonly alg: string;
}

export interface PackDetail extends Omit<PackSummary, 'gateways'> {
  readonly gateways: readonly GatewaySighting[];
  readonly rejected: number;
  readonly certificate: CertificateSummary | null;
}

export interface PacksResponse {
  readonly packs: readonly PackSummary[];
}

export interface HistoryResponse {
  readonly serial: string;
  readonly rows: readonly HistoryRow[];
  readonly next: number | null;
}

/** GET /api/v1/trust: what the browser needs to verify a proof bundle itself. */
export interface TrustResponse {
  /** Text of protocol encodeTrustBundle. */
  readonly trustBundle: string;
  /** C2SP verifier key of the ledger (the witness). */
  readonly witness: string;
  readonly gateways: readonly { readonly origin: string; readonly vkey: string }[];
}

export interface ApiErrorBody {
  readonly error: { readonly code: string; readonly message: string };
}

/**
 * The checks of the in-browser verification, in the order protocol verifyProofBundle runs them
 * (docs/protocol.md §9), after loading the trust material (TrustStore, CRL signatures, note keys).
 */
export const PROOF_CHECKS = ['trust', 'bundle', 'checkpoint', 'witness', 'inclusion', 'chain', 'cose', 'serial'] as const;
export type ProofCheck = (typeof PROOF_CHECKS)[number];

export interface ProofCheckResult {
  readonly check: ProofCheck;
  /** ok: passed; fail: the first check that failed; skipped: not reached after a failure. */
  readonly status: 'ok' | 'fail' | 'skipped';
  /** What was checked (ok) or why it failed (fail: the ProtocolError code and message). */
  readonly detail: string;
}

export interface ProofReport {
  readonly ok: boolean;
  readonly checks: readonly ProofCheckResult[];
  /** ProtocolError code of the failure (or INTERNAL for a non-protocol exception). */
  readonly code?: string;
  /** Set when verified: what the proof establishes. */
  readonly verified?: {
    readonly origin: string;
    readonly treeSize: number;
    readonly index: number;
    readonly serial: string;
    readonly counter: number;
    readonly receivedAt: string;
    readonly witnesses: readonly string[];
  };
}

/** The verifier bundle (assets verify-*.js) exports exactly this. */
export interface VerifierModule {
  verifyProof(bundleText: string, trust: TrustResponse): Promise<ProofReport>;
}
