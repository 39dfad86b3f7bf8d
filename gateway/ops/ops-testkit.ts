/**
 * Test-only helpers for the operations tests (not exported from gateway/index.ts): a realistic
 * StatusSnapshot with every part filled in (two transports, packs, rejects, a checkpoint, commit
 * latencies, sync lag, MQTT counters) that tests override piecewise, and a parser for the
 * Prometheus text exposition so tests assert on values, not on formatting.
 */
import type { EndpointStatus, TransportStatus } from '../transport/types.js';
import { LatencyHistogram } from './metrics.js';
import type { StatusSnapshot } from './snapshot.js';

export const NOW = Date.parse('2026-03-01T08:00:00Z');

export function endpoint(id: string, over: Partial<EndpointStatus> = {}): EndpointStatus {
  return {
    id,
    state: 'open',
    connects: 1,
    disconnects: 0,
    failures: 0,
    lastError: undefined,
    openSince: NOW - 3_600_000,
    nextAttemptAt: undefined,
    bytesIn: 1000,
    bytesOut: 100,
    messagesIn: 10,
    messagesOut: 2,
    rejects: {},
    droppedBytes: 0,
    ...over,
  };
}

export function transport(kind: TransportStatus['kind'], endpoints: EndpointStatus[], over: Partial<TransportStatus> = {}): TransportStatus {
  return {
    kind,
    state: 'running',
    endpoints,
    open: endpoints.filter((e) => e.state === 'open').length,
    reconnects: endpoints.reduce((a, e) => a + Math.max(0, e.connects - 1), 0),
    rejects: {},
    handlerErrors: 0,
    lastHandlerError: undefined,
    detail: {},
    ...over,
  };
}

export function sampleSnapshot(): StatusSnapshot {
  const latency = new LatencyHistogram();
  for (const s of [0.003, 0.004, 0.004, 0.012, 0.3]) latency.observe(s);
  return {
    gateway: { name: 'line-3-gw1', origin: 'packchain.gateway/line-3-gw1', version: '0.1.0', pid: 4242, startedAt: NOW - 7_200_000, now: NOW },
    store: {
      size: 12_345,
      firstIndex: 0,
      usageBytes: 5 * 2 ** 20,
      quotaBytes: 8 * 2 ** 30,
      writable: true,
      appendedEntries: 12_345,
      commits: 321,
      quotaRejects: 0,
      ioErrors: 0,
      prunedSegments: 0,
      checkpoints: 12,
      checkpoint: { size: 12_000, signedAt: NOW - 4000 },
      commitLatency: latency.snapshot(),
    },
    transports: [
      transport('serial', [
        endpoint('serial:/dev/serial/by-id/usb-FTDI_A1', { connects: 3, bytesIn: 200_000, rejects: { LINE_CRC: 3 } }),
        endpoint('serial:/dev/serial/by-id/usb-FTDI_B2', { state: 'absent', openSince: undefined, connects: 0, bytesIn: 0, bytesOut: 0, messagesIn: 0, lastError: 'ENOENT' }),
      ], { rejects: { LINE_CRC: 3 } }),
      transport('ble', [endpoint('ble:C0:DE:00:07:00:04', { bytesIn: 5000, bytesOut: 300 })]),
    ],
    ingest: {
      running: true,
      stored: 12_345,
      duplicates: 7,
      inFlight: 2,
      inputHeld: true,
      inputHolds: 5,
      acksSent: 12_000,
      appendFailures: 0,
      sessions: 2,
      verifiedSessions: 2,
      quarantine: { total: 4, security: 1, byCode: { LINE_CRC: 3, COSE_SIGNATURE: 1 } },
      verify: { workers: 2, queued: 0, workerFailures: 0 },
      devices: [
        { serial: 'PACK-0001', channel: 'serial:/dev/serial/by-id/usb-FTDI_A1', frames: 10_000, duplicates: 7, replays: 0, rejects: 1, lastSeen: NOW - 2000, lastCounter: 9999, rate: 1.5, gaps: 1, missing: 3 },
        { serial: 'PACK-0002', channel: 'ble:C0:DE:00:07:00:04', frames: 2345, duplicates: 0, replays: 0, rejects: 0, lastSeen: NOW - 1000, lastCounter: 2344, rate: 0.5, gaps: 0, missing: 0 },
      ],
    },
    sync: { enabled: true, url: 'https://ledger.example.com', syncedSize: 12_000, lagEntries: 345, lagSeconds: 90, lastSyncAt: NOW - 5000 },
    mqtt: { enabled: true, connected: true, published: 50, discoveries: 26, dropped: { offline: 4 }, coalesced: 9, packs: 2 },
  };
}

/** `name{a="x",b="y"}` → value, labels sorted; HELP/TYPE lines skipped. */
export function parsePrometheus(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (m === null) throw new Error(`not a sample line: ${line}`);
    const labels = [...(m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)].map((x) => `${x[1] ?? ''}="${x[2] ?? ''}"`).sort();
    out.set(labels.length === 0 ? (m[1] ?? '') : `${m[1] ?? ''}{${labels.join(',')}}`, Number(m[3]));
  }
  return out;
}

/** The TYPE of each metric family. */
export function metricTypes(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) out.set(m[1] ?? '', m[2] ?? '');
  return out;
}
