/**
 * Builds the StatusSnapshot (snapshot.ts) from the running parts: the LogStore, the transports,
 * the ingest pipeline, the instrumented log port (writability, commit latency), the sync client
 * (gateway/sync/client.ts status())
 * and the MQTT publisher. The parts are typed structurally (only what is read), so the daemon
 * passes the real objects and tests pass real ones or small stand-ins. Everything is read at call
 * time — one snapshot per /status, /metrics or /healthz request — and copied into plain data.
 */
import type { IngestPipeline } from '../ingest/pipeline.js';
import type { LogStore } from '../store/log-store.js';
import type { Transport } from '../transport/types.js';
import type { InstrumentedLog } from './instrument.js';
import type { LatencyHistogram } from './metrics.js';
import type { SyncClientStatus } from '../sync/client.js';
import type { MqttSnapshot, StatusSnapshot, SyncSnapshot } from './snapshot.js';

export interface SnapshotSources {
  readonly name: string;
  readonly origin: string;
  readonly version: string;
  /** ms since the epoch */
  readonly startedAt: number;
  readonly now?: () => number;
  readonly store: Pick<LogStore, 'size' | 'firstIndex' | 'syncedSize' | 'usage' | 'stats' | 'latestCheckpoint' | 'get'>;
  /** When the latest checkpoint was signed (the daemon notes it when maybeCheckpoint signs; at open: the open time). */
  readonly checkpointSignedAt?: () => number | undefined;
  readonly transports: readonly Pick<Transport, 'status'>[];
  /** undefined: not started or closed (the gateway is then unhealthy). */
  readonly pipeline: Pick<IngestPipeline, 'status'> | undefined;
  readonly log?: Pick<InstrumentedLog, 'writable' | 'lastError'>;
  readonly latency?: LatencyHistogram;
  readonly sync?: { readonly url: string | null; readonly client?: { status(): SyncClientStatus } };
  readonly mqtt?: { status(): MqttSnapshot };
}

const MQTT_OFF: MqttSnapshot = { enabled: false, connected: false, published: 0, discoveries: 0, dropped: {}, coalesced: 0, packs: 0 };

function syncOf(src: SnapshotSources, now: number): SyncSnapshot {
  const { store } = src;
  const synced = store.syncedSize;
  const lagEntries = Math.max(0, store.size - synced);
  let lagSeconds = 0;
  if (lagEntries > 0) {
    try {
      lagSeconds = Math.max(0, (now - store.get(Math.max(synced, store.firstIndex)).receivedAt) / 1000);
    } catch {
      lagSeconds = 0; // a damaged entry is reported by the store's own errors, not here
    }
  }
  const s = src.sync;
  const c = s?.client?.status();
  const opt = <K extends keyof SyncClientStatus>(k: K): Partial<Pick<SyncClientStatus, K>> => (c?.[k] === undefined ? {} : ({ [k]: c[k] } as Partial<Pick<SyncClientStatus, K>>));
  return {
    enabled: s?.url != null,
    url: s?.url ?? null,
    syncedSize: synced,
    lagEntries,
    lagSeconds,
    ...opt('lastSyncAt'),
    ...opt('lastError'),
    ...opt('lastErrorCode'),
    ...opt('lastErrorAt'),
    ...opt('nextAttemptAt'),
    ...opt('ledgerSize'),
    ...opt('ledgerStaged'),
    ...opt('cosignedSize'),
    ...(c === undefined
      ? {}
      : {
          consecutiveFailures: c.consecutiveFailures,
          counters: {
            rounds: c.rounds,
            requests: c.requests,
            uploads: c.uploads,
            bytesSent: c.bytesSent,
            entriesStored: c.entriesStored,
            entriesDuplicate: c.entriesDuplicate,
            entriesRejected: c.entriesRejected,
            checkpointsAccepted: c.checkpointsAccepted,
            parseErrors: c.parseErrors,
            missingChains: c.missingChains,
            errors: c.errors,
          },
        }),
  };
}

/** The snapshot now. Throws only what the parts' status() calls throw (a bug there). */
export function assembleSnapshot(src: SnapshotSources): StatusSnapshot {
  const now = (src.now ?? Date.now)();
  const { store } = src;
  const st = store.stats;
  const cp = store.latestCheckpoint();
  const signedAt = src.checkpointSignedAt?.();
  const p = src.pipeline?.status();
  return {
    gateway: { name: src.name, origin: src.origin, version: src.version, pid: process.pid, startedAt: src.startedAt, now },
    store: {
      size: store.size,
      firstIndex: store.firstIndex,
      usageBytes: store.usage.bytes,
      quotaBytes: store.usage.quotaBytes,
      writable: src.log?.writable ?? true,
      ...(src.log?.lastError === undefined ? {} : { lastError: src.log.lastError }),
      appendedEntries: st.appendedEntries,
      commits: st.commits,
      quotaRejects: st.quotaRejects,
      ioErrors: st.ioErrors,
      prunedSegments: st.prunedSegments,
      checkpoints: st.checkpoints,
      ...(cp === undefined ? {} : { checkpoint: { size: cp.size, signedAt: signedAt ?? src.startedAt } }),
      ...(src.latency === undefined ? {} : { commitLatency: src.latency.snapshot() }),
    },
    transports: src.transports.map((t) => t.status()),
    ingest: {
      running: p !== undefined,
      stored: p?.stored ?? 0,
      duplicates: p?.duplicates ?? 0,
      inFlight: p?.inFlight ?? 0,
      inputHeld: p?.inputHeld ?? false,
      inputHolds: p?.inputHolds ?? 0,
      acksSent: p?.acksSent ?? 0,
      appendFailures: p?.appendFailures ?? 0,
      sessions: p?.sessions.length ?? 0,
      verifiedSessions: p?.sessions.filter((s) => s.state === 'verified').length ?? 0,
      quarantine: { total: p?.quarantine.total ?? 0, security: p?.quarantine.security ?? 0, byCode: { ...p?.quarantine.byCode } },
      verify: { workers: p?.verify.workers ?? 0, queued: p?.verify.queued ?? 0, workerFailures: p?.verify.workerFailures ?? 0 },
      devices: (p?.devices ?? []).map((d) => ({
        serial: d.serial,
        channel: d.channel,
        frames: d.frames,
        duplicates: d.duplicates,
        replays: d.replays,
        rejects: d.rejects,
        lastSeen: d.lastSeen,
        lastCounter: d.lastCounter,
        rate: d.rate,
        gaps: d.gaps.length,
        missing: d.missing,
      })),
    },
    sync: syncOf(src, now),
    mqtt: src.mqtt?.status() ?? MQTT_OFF,
  };
}
