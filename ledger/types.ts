/**
 * The ledger core's public data shapes: options, gateway records, what queries return (the shapes
 * of the service-engineer API, docs/ledger.md), fork evidence, alerts and counters. Plain data, no
 * behaviour; times are ms since the Unix epoch except in HistoryRow/PackSummary, which carry the
 * ISO 8601 text the HTTP API sends.
 */
import type { Ed25519NoteSigner, FrameDisplay, TrustStore } from '../protocol/index.js';

export type StorageOptions =
  | { readonly kind: 'embedded'; readonly dir: string }
  | { readonly kind: 'postgres'; readonly url: string; readonly poolSize?: number };

export interface LedgerOptions {
  readonly storage: StorageOptions;
  /** The ledger's cosigner (protocol createCosigner / signerFromKey). */
  readonly witness: Ed25519NoteSigner;
  /** Device roots, intermediates and CRLs (protocol TrustStore.create). */
  readonly trust: TrustStore;
  /** ms since the epoch (default Date.now). */
  readonly clock?: () => number;
  /** Frame-signature worker threads (default: available cores; 0 verifies on the main thread). */
  readonly verifyThreads?: number;
  /** Fork, bad proof, equivocation, entry conflict: the service logs it and counts it. */
  readonly onAlert?: (a: LedgerAlert) => void;
}

export interface GatewayRecord {
  readonly id: number;
  readonly origin: string;
  readonly vkey: string;
  readonly label: string;
  readonly enrolledAt: number;
  readonly disabled: boolean;
}

/**
 * One frame, once, however many gateways saw it (api.md): the frame's measurements in display
 * units (protocol FrameDisplay, docs/protocol.md §11.1) and where it was first seen.
 */
export interface HistoryRow extends FrameDisplay {
  serial: string;
  /** First sighting, ISO 8601. */
  receivedAt: string;
  origin: string;
  index: number;
  source: string;
  sightings: number;
  witnessed: boolean;
}

/** HistoryRow field names in the order the API shows them. */
export const HISTORY_ROW_FIELDS: readonly (keyof HistoryRow)[] = Object.freeze([
  'serial', 'counter', 'deviceTime', 'receivedAt', 'origin', 'index', 'source', 'socPct', 'sohPct', 'voltageV', 'currentA',
  'cellMinV', 'cellMaxV', 'cellSpreadMv', 'tempMinC', 'tempMaxC', 'cycles', 'alarms', 'alarmNames', 'sightings', 'witnessed',
]);

export interface PackSummary {
  serial: string;
  frames: number;
  firstCounter: number;
  lastCounter: number;
  firstSeen: string;
  lastSeen: string;
  gateways: string[];
  latest: HistoryRow | null;
}

export interface PackGatewaySummary {
  origin: string;
  /** Leaves of that gateway holding verified frames of the pack (sightings). */
  frames: number;
  firstSeen: string;
  lastSeen: string;
}

export interface PackCertificate {
  subject: string;
  /** Certificate serial number, hex. */
  serial: string;
  /** SHA-256 of the DER, hex. */
  fingerprint: string;
  notBefore: string;
  notAfter: string;
  alg: string;
}

export interface PackDetail extends Omit<PackSummary, 'gateways'> {
  gateways: PackGatewaySummary[];
  /** Leaves naming this pack that the ledger refused (stored in the gateway's tree, not in history). */
  rejected: number;
  certificate: PackCertificate | null;
}

/** A verified frame with its provenance, the input of the battery passport: defined by ledger/passport.ts. */
export type { PassportFrame } from './passport.js';

export type EvidenceKind =
  | 'checkpoint-conflict' // the gateway signed a tree that does not extend its accepted checkpoint
  | 'bad-proof' // a consistency proof that fails although the leaves give the signed root
  | 'entry-conflict' // a leaf at a held index with another hash
  | 'equivocation'; // a device signed two different frames with one (serial, counter)

/** Fork evidence as stored: both signed checkpoints where there are two, the proof, what and when. */
export interface ForkEvidence {
  readonly id: number;
  readonly kind: EvidenceKind;
  readonly origin: string;
  readonly at: number;
  /** The checkpoint the ledger had accepted (cosigned note), or null before the first. */
  readonly accepted: string | null;
  /** The offending signed checkpoint, or null for entry conflicts and equivocations. */
  readonly offending: string | null;
  /** The consistency proof sent with it, base64 hashes. */
  readonly proof: readonly string[];
  /** What was compared: sizes, roots, indexes, leaf or frame hashes. */
  readonly detail: string;
}

export interface LedgerAlert {
  readonly kind: EvidenceKind;
  readonly level: 'error' | 'warning';
  readonly origin: string;
  readonly at: number;
  readonly message: string;
  /** Id of the evidence row (every alert keeps evidence). */
  readonly evidenceId: number;
}

/** Counters since this process opened the ledger (for /metrics). */
export interface LedgerStats {
  uploads: number;
  uploadsRefused: Record<string, number>;
  entriesStored: number;
  duplicates: number;
  framesStored: number;
  framesSeenAgain: number;
  framesRejected: Record<string, number>;
  checkpointsCosigned: number;
  conflicts: number;
  badProofs: number;
  equivocations: number;
  authFailures: number;
  replays: number;
}
