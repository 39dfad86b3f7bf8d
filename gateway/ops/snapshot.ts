/**
 * `StatusSnapshot`: the one picture of a running gateway that every operations surface reads —
 * /status (JSON, what `packchain gateway status` prints), /metrics (prom-client collect callbacks
 * read it, so no counter is kept twice and nothing is double-counted) and /healthz (`healthOf`).
 * It is plain JSON-safe data that the daemon assembles (assemble.ts) from the log store, the
 * transports, the ingest pipeline, the sync client and the MQTT publisher at the moment of the
 * request; counters in it are totals since the process started (or, for the store, since open).
 */
import type { TransportStatus } from '../transport/types.js';

/** Cumulative histogram: `counts[i]` observations ≤ `bounds[i]` (seconds); `count` includes those above the last bound. */
export interface HistogramSnapshot {
  readonly bounds: readonly number[];
  readonly counts: readonly number[];
  readonly count: number;
  readonly sum: number;
}

export interface StoreSnapshot {
  /** Entries in the log (durable). */
  readonly size: number;
  /** First entry still on disk (entries below were pruned after the ledger acknowledged them). */
  readonly firstIndex: number;
  readonly usageBytes: number;
  readonly quotaBytes: number;
  /** False once appends fail (quota with nothing prunable, I/O errors) until one succeeds again. */
  readonly writable: boolean;
  readonly lastError?: string;
  readonly appendedEntries: number;
  readonly commits: number;
  readonly quotaRejects: number;
  readonly ioErrors: number;
  readonly prunedSegments: number;
  readonly checkpoints: number;
  /** The latest signed checkpoint: its tree size, and when it was signed (ms since the epoch). */
  readonly checkpoint?: { readonly size: number; readonly signedAt: number };
  /** Time from append call to durable (what an ack waits for), seconds. */
  readonly commitLatency?: HistogramSnapshot;
}

export interface DeviceSnapshot {
  readonly serial: string;
  readonly channel: string;
  readonly frames: number;
  readonly duplicates: number;
  readonly replays: number;
  readonly rejects: number;
  readonly lastSeen: number;
  readonly lastCounter: number;
  /** Stored frames per second, decayed. */
  readonly rate: number;
  /** Open gap ranges and the counters missing in them. */
  readonly gaps: number;
  readonly missing: number;
}

export interface IngestSnapshot {
  readonly running: boolean;
  readonly stored: number;
  readonly duplicates: number;
  readonly inFlight: number;
  /** Whether serial ports are asked to stop reading now (ingest.holdInputAt), and how often they have been. */
  readonly inputHeld: boolean;
  readonly inputHolds: number;
  readonly acksSent: number;
  readonly appendFailures: number;
  readonly sessions: number;
  readonly verifiedSessions: number;
  readonly quarantine: { readonly total: number; readonly security: number; readonly byCode: Readonly<Record<string, number>> };
  readonly verify: { readonly workers: number; readonly queued: number; readonly workerFailures: number };
  readonly devices: readonly DeviceSnapshot[];
}

export interface SyncSnapshot {
  readonly enabled: boolean;
  readonly url: string | null;
  /** Entries the ledger acknowledged (the store's syncedSize). */
  readonly syncedSize: number;
  /** Entries not yet acknowledged, and the age of the oldest of them (s; 0 when none). */
  readonly lagEntries: number;
  readonly lagSeconds: number;
  /** End of the last sync round that succeeded (ms). */
  readonly lastSyncAt?: number;
  readonly lastError?: string;
  /** The GatewayError code of the last failure (SYNC_UNREACHABLE, SYNC_REFUSED, …) and when (ms). */
  readonly lastErrorCode?: string;
  readonly lastErrorAt?: number;
  /** Failed rounds since the last success (0 while syncing fine). */
  readonly consecutiveFailures?: number;
  /** When the next attempt starts after a failure (ms). */
  readonly nextAttemptAt?: number;
  /** The ledger's last known state of this log: accepted (cosigned) size and leaves held. */
  readonly ledgerSize?: number;
  readonly ledgerStaged?: number;
  /** Tree size of the latest checkpoint the ledger cosigned (kept for `gateway prove`). */
  readonly cosignedSize?: number;
  /** Counters of the sync client since start (absent without upstream.url). */
  readonly counters?: SyncCounters;
}

export interface SyncCounters {
  readonly rounds: number;
  readonly requests: number;
  readonly uploads: number;
  readonly bytesSent: number;
  /** Leaves the ledger newly stored, already held (duplicates), and stored but refused as frames. */
  readonly entriesStored: number;
  readonly entriesDuplicate: number;
  readonly entriesRejected: number;
  readonly checkpointsAccepted: number;
  /** Ledger answers that failed to parse or check. */
  readonly parseErrors: number;
  /** Leaves sent without their certificate chain (not in the certificate store). */
  readonly missingChains: number;
  /** Failed rounds by GatewayError code. */
  readonly errors: Readonly<Record<string, number>>;
}

export interface MqttSnapshot {
  readonly enabled: boolean;
  readonly connected: boolean;
  readonly published: number;
  readonly discoveries: number;
  /** Messages not sent, by reason (offline: broker unreachable; backlog: the client fell behind; error: publish failed). */
  readonly dropped: Readonly<Record<string, number>>;
  /** State updates replaced by a newer one within minIntervalMs (by design, not a loss). */
  readonly coalesced: number;
  readonly packs: number;
  readonly lastError?: string;
}

export interface StatusSnapshot {
  readonly gateway: {
    readonly name: string;
    readonly origin: string;
    readonly version: string;
    readonly pid: number;
    /** ms since the epoch */
    readonly startedAt: number;
    readonly now: number;
  };
  readonly store: StoreSnapshot;
  readonly transports: readonly TransportStatus[];
  readonly ingest: IngestSnapshot;
  readonly sync: SyncSnapshot;
  readonly mqtt: MqttSnapshot;
}

export interface Health {
  readonly ok: boolean;
  /** Why not, one line each; empty when ok. */
  readonly reasons: readonly string[];
}

/**
 * The gateway is healthy when frames can be made durable and acknowledged: the store accepts
 * appends and the pipeline runs. A broker or ledger being down is not ill health (ingest carries
 * on; they show in status and metrics), nor is an unplugged port.
 */
export function healthOf(s: StatusSnapshot): Health {
  const reasons: string[] = [];
  if (!s.store.writable) reasons.push(`store not writable${s.store.lastError === undefined ? '' : `: ${s.store.lastError}`}`);
  if (!s.ingest.running) reasons.push('ingest pipeline not running');
  return { ok: reasons.length === 0, reasons };
}
