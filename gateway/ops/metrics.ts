/**
 * Prometheus metrics of the gateway (docs/gateway.md "Metrics"), on a prom-client Registry of
 * its own — never the global default registry, so two gateways in one process (tests) or a host
 * application's metrics do not mix. Nothing is counted here: every metric has a collect()
 * callback that copies its value from the StatusSnapshot being rendered, so the store, transports
 * and pipeline keep the only counters and a scrape cannot drift from /status. Counters are set
 * with reset() + inc(total) (prom-client counters cannot be set; the total is monotonic at the
 * source). The group-commit latency histogram comes from the snapshot's cumulative buckets
 * (`LatencyHistogram`, which the daemon feeds around LogStore.append; see instrument.ts).
 * Labels are bounded: reject codes (≤ 256 at the source), transport kinds, endpoint states,
 * and pack serials of verified certificates only (the fleet, not what an attacker sends).
 */
import { collectDefaultMetrics, Counter, Gauge, Registry, type Metric } from 'prom-client';
import type { HistogramSnapshot, StatusSnapshot } from './snapshot.js';
import { healthOf } from './snapshot.js';

export const METRIC_PREFIX = 'packchain_gateway_';

/** Seconds, 0.5 ms .. 10 s: wide enough for an fsync on an SSD and on a slow SD card alike. */
export const LATENCY_BOUNDS: readonly number[] = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** A cumulative latency histogram the daemon observes into; its snapshot goes into StatusSnapshot. */
export class LatencyHistogram {
  private readonly counts: number[];
  private count = 0;
  private sum = 0;

  constructor(readonly bounds: readonly number[] = LATENCY_BOUNDS) {
    this.counts = bounds.map(() => 0);
  }

  /** Records one duration in seconds (negative or non-finite values are ignored: a clock step). */
  observe(seconds: number): void {
    if (!Number.isFinite(seconds) || seconds < 0) return;
    this.count++;
    this.sum += seconds;
    for (let i = 0; i < this.bounds.length; i++) if (seconds <= (this.bounds[i] ?? Infinity)) this.counts[i] = (this.counts[i] ?? 0) + 1;
  }

  snapshot(): HistogramSnapshot {
    return { bounds: [...this.bounds], counts: [...this.counts], count: this.count, sum: this.sum };
  }
}

/**
 * A histogram whose series come from a HistogramSnapshot. prom-client's Histogram can only be fed
 * by observe(), so this implements the Metric contract the Registry calls (name, help, type,
 * aggregator, get(), reset()) and is registered through one cast.
 */
class SnapshotHistogram {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  constructor(
    readonly name: string,
    readonly help: string,
    private readonly read: () => HistogramSnapshot | undefined,
  ) {}

  get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: { metricName: string; labels: Record<string, string | number>; value: number }[] }> {
    const h = this.read();
    const values: { metricName: string; labels: Record<string, string | number>; value: number }[] = [];
    if (h !== undefined) {
      h.bounds.forEach((le, i) => values.push({ metricName: `${this.name}_bucket`, labels: { le }, value: h.counts[i] ?? 0 }));
      values.push({ metricName: `${this.name}_bucket`, labels: { le: '+Inf' }, value: h.count });
      values.push({ metricName: `${this.name}_sum`, labels: {}, value: h.sum });
      values.push({ metricName: `${this.name}_count`, labels: {}, value: h.count });
    }
    return Promise.resolve({ name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values });
  }

  reset(): void {
    // Values live in the snapshot.
  }
}

type Labels = Record<string, string | number>;
type Series = number | Iterable<readonly [Labels, number]>;

export interface GatewayMetricsOptions {
  /** Node's process and runtime metrics (process_*, nodejs_*) on the same registry (default true). */
  readonly processMetrics?: boolean;
}

const sec = (ms: number): number => ms / 1000;

export class GatewayMetrics {
  readonly registry = new Registry();
  private current: StatusSnapshot | undefined;
  private chain: Promise<unknown> = Promise.resolve();

  constructor(o: GatewayMetricsOptions = {}) {
    if (o.processMetrics !== false) collectDefaultMetrics({ register: this.registry });
    this.define();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The Prometheus text exposition for `snapshot`. Renders one at a time (collect() reads `current`). */
  render(snapshot: StatusSnapshot): Promise<string> {
    const run = this.chain.then(async () => {
      this.current = snapshot;
      try {
        return await this.registry.metrics();
      } finally {
        this.current = undefined;
      }
    });
    this.chain = run.catch(() => undefined);
    return run;
  }

  private series(kind: 'gauge' | 'counter', name: string, help: string, labelNames: readonly string[], read: (s: StatusSnapshot) => Series): void {
    const apply = (m: { reset(): void; remove(labels: Labels): void }, put: (labels: Labels, v: number) => void): void => {
      m.reset();
      // reset() leaves an unlabelled metric at 0; remove it so that "no value" (e.g. no checkpoint yet) is absent, not 0.
      if (labelNames.length === 0) m.remove({});
      const s = this.current;
      if (s === undefined) return;
      const v = read(s);
      if (typeof v === 'number') put({}, v);
      else for (const [labels, x] of v) put(labels, x);
    };
    const full = METRIC_PREFIX + name;
    if (kind === 'gauge') {
      const g: Gauge = new Gauge({ name: full, help, labelNames, registers: [this.registry], collect: () => { apply(g, (l, v) => { g.set(l, v); }); } });
    } else {
      const c: Counter = new Counter({ name: full, help, labelNames, registers: [this.registry], collect: () => { apply(c, (l, v) => { c.inc(l, Math.max(0, v)); }); } });
    }
  }

  private define(): void {
    const g = (name: string, help: string, read: (s: StatusSnapshot) => Series, labels: readonly string[] = []): void => {
      this.series('gauge', name, help, labels, read);
    };
    const c = (name: string, help: string, read: (s: StatusSnapshot) => Series, labels: readonly string[] = []): void => {
      this.series('counter', name, help, labels, read);
    };
    const byCode = (rec: Readonly<Record<string, number>>, extra: Labels = {}): [Labels, number][] => Object.entries(rec).map(([code, n]) => [{ ...extra, code }, n]);

    g('info', 'gateway identity (value 1)', (s) => [[{ name: s.gateway.name, origin: s.gateway.origin, version: s.gateway.version }, 1]], ['name', 'origin', 'version']);
    g('start_time_seconds', 'process start, Unix seconds', (s) => sec(s.gateway.startedAt));
    g('healthy', '1 when the store is writable and the pipeline runs (/healthz 200)', (s) => (healthOf(s).ok ? 1 : 0));

    g('log_entries', 'entries in the Merkle log (durable)', (s) => s.store.size);
    g('log_first_index', 'first entry still on disk (older ones pruned after the ledger acknowledged them)', (s) => s.store.firstIndex);
    g('log_disk_bytes', 'bytes used by the log directory', (s) => s.store.usageBytes);
    g('log_quota_bytes', 'disk quota of the log', (s) => s.store.quotaBytes);
    g('log_writable', '1 while appends succeed', (s) => (s.store.writable ? 1 : 0));
    c('log_appended_entries_total', 'entries appended since open', (s) => s.store.appendedEntries);
    c('log_commits_total', 'group commits (write + fsync) since open', (s) => s.store.commits);
    c('log_quota_rejects_total', 'appends refused over the quota (STORE_QUOTA)', (s) => s.store.quotaRejects);
    c('log_io_errors_total', 'file system errors of the log', (s) => s.store.ioErrors);
    c('log_pruned_segments_total', 'segments pruned since open', (s) => s.store.prunedSegments);
    c('checkpoints_total', 'checkpoints signed since open', (s) => s.store.checkpoints);
    g('checkpoint_size', 'tree size of the latest signed checkpoint', (s) => s.store.checkpoint?.size ?? []);
    g('checkpoint_timestamp_seconds', 'when the latest checkpoint was signed, Unix seconds', (s) => (s.store.checkpoint === undefined ? [] : sec(s.store.checkpoint.signedAt)));
    g('checkpoint_age_seconds', 'seconds since the latest checkpoint was signed', (s) => (s.store.checkpoint === undefined ? [] : Math.max(0, sec(s.gateway.now - s.store.checkpoint.signedAt))));
    this.registry.registerMetric(
      new SnapshotHistogram(`${METRIC_PREFIX}commit_latency_seconds`, 'append call to durable (what an ack waits for), seconds', () => this.current?.store.commitLatency) as unknown as Metric,
    );

    c('frames_stored_total', 'verified frames stored in the log', (s) => s.ingest.stored);
    c('frames_duplicate_total', 'copies of stored frames received (acked again, stored once)', (s) => s.ingest.duplicates);
    c('frames_rejected_total', 'rejects by reason code (transport and pipeline; not acked)', (s) => byCode(s.ingest.quarantine.byCode), ['code']);
    c('frames_rejected_security_total', 'rejects that are security events (forgery, replay, revoked, untrusted)', (s) => s.ingest.quarantine.security);
    g('frames_in_flight', 'frames received and not yet acked', (s) => s.ingest.inFlight);
    g('input_held', '1 while serial ports stop reading (ingest.holdInputAt frames in flight)', (s) => (s.ingest.inputHeld ? 1 : 0));
    c('input_holds_total', 'times serial ports were asked to stop reading', (s) => s.ingest.inputHolds);
    c('acks_sent_total', 'ack messages sent to devices', (s) => s.ingest.acksSent);
    c('append_failures_total', 'appends the log refused (frames not acked)', (s) => s.ingest.appendFailures);
    g('sessions', 'device sessions (open channels)', (s) => s.ingest.sessions);
    g('sessions_verified', 'sessions whose certificate chain verified', (s) => s.ingest.verifiedSessions);
    g('verify_workers', 'verification worker threads', (s) => s.ingest.verify.workers);
    g('verify_queue', 'frames queued for verification', (s) => s.ingest.verify.queued);
    c('verify_worker_failures_total', 'verification workers that died', (s) => s.ingest.verify.workerFailures);
    g('gap_ranges', 'open counter gaps, all packs', (s) => s.ingest.devices.reduce((a, d) => a + d.gaps, 0));
    g('missing_counters', 'frame counters missing in open gaps, all packs', (s) => s.ingest.devices.reduce((a, d) => a + d.missing, 0));

    const dev = (read: (d: StatusSnapshot['ingest']['devices'][number]) => number) => (s: StatusSnapshot): [Labels, number][] => s.ingest.devices.map((d) => [{ serial: d.serial }, read(d)]);
    g('devices', 'packs seen since start', (s) => s.ingest.devices.length);
    c('device_frames_stored_total', 'frames stored per pack', dev((d) => d.frames), ['serial']);
    c('device_duplicates_total', 'duplicates per pack', dev((d) => d.duplicates), ['serial']);
    c('device_rejects_total', 'rejects per pack (replays included)', dev((d) => d.rejects + d.replays), ['serial']);
    g('device_last_seen_timestamp_seconds', 'last frame from the pack, Unix seconds', dev((d) => sec(d.lastSeen)), ['serial']);
    g('device_last_counter', 'highest frame counter stored per pack', dev((d) => d.lastCounter), ['serial']);
    g('device_frame_rate', 'frames stored per second per pack (decayed)', dev((d) => d.rate), ['serial']);
    g('device_missing_counters', 'counters missing in open gaps per pack', dev((d) => d.missing), ['serial']);

    const tr = (read: (t: StatusSnapshot['transports'][number]) => number) => (s: StatusSnapshot): [Labels, number][] => s.transports.map((t) => [{ transport: t.kind }, read(t)]);
    const sumEp = (t: StatusSnapshot['transports'][number], f: (e: StatusSnapshot['transports'][number]['endpoints'][number]) => number): number => t.endpoints.reduce((a, e) => a + f(e), 0);
    g('transport_channels_open', 'connected devices per transport', tr((t) => t.open), ['transport']);
    g('transport_endpoints', 'endpoints per transport and state', (s) => s.transports.flatMap((t) => {
      const n = new Map<string, number>();
      for (const e of t.endpoints) n.set(e.state, (n.get(e.state) ?? 0) + 1);
      return [...n].map(([state, v]): [Labels, number] => [{ transport: t.kind, state }, v]);
    }), ['transport', 'state']);
    c('transport_reconnects_total', 'reconnects (opens after an endpoint\'s first)', tr((t) => t.reconnects), ['transport']);
    c('transport_received_bytes_total', 'bytes received from devices', tr((t) => sumEp(t, (e) => e.bytesIn)), ['transport']);
    c('transport_sent_bytes_total', 'bytes sent to devices', tr((t) => sumEp(t, (e) => e.bytesOut)), ['transport']);
    c('transport_received_messages_total', 'messages received from devices', tr((t) => sumEp(t, (e) => e.messagesIn)), ['transport']);
    c('transport_dropped_bytes_total', 'input bytes dropped over the byte-rate cap', tr((t) => sumEp(t, (e) => e.droppedBytes)), ['transport']);
    c('transport_rejects_total', 'transport rejects by code (decoder errors, caps)', (s) => s.transports.flatMap((t) => byCode(t.rejects as Record<string, number>, { transport: t.kind })), ['transport', 'code']);
    c('transport_handler_errors_total', 'pipeline handlers that threw (a bug; counted, never fatal)', tr((t) => t.handlerErrors), ['transport']);

    g('sync_enabled', '1 when an upstream ledger is configured', (s) => (s.sync.enabled ? 1 : 0));
    g('sync_synced_entries', 'entries the ledger acknowledged', (s) => s.sync.syncedSize);
    g('sync_lag_entries', 'entries not yet acknowledged by the ledger', (s) => s.sync.lagEntries);
    g('sync_lag_seconds', 'age of the oldest entry not yet acknowledged, seconds', (s) => s.sync.lagSeconds);
    const sc = (read: (k: NonNullable<StatusSnapshot['sync']['counters']>) => number) => (s: StatusSnapshot): Series => (s.sync.counters === undefined ? [] : read(s.sync.counters));
    g('sync_consecutive_failures', 'failed sync rounds since the last success', (s) => s.sync.consecutiveFailures ?? []);
    g('sync_last_success_timestamp_seconds', 'end of the last sync round that succeeded, Unix seconds', (s) => (s.sync.lastSyncAt === undefined ? [] : sec(s.sync.lastSyncAt)));
    g('sync_last_error_timestamp_seconds', 'time of the last sync failure, Unix seconds', (s) => (s.sync.lastErrorAt === undefined ? [] : sec(s.sync.lastErrorAt)));
    g('sync_ledger_size', 'the ledger\'s accepted (cosigned) size of this log', (s) => s.sync.ledgerSize ?? []);
    g('sync_cosigned_size', 'tree size of the latest checkpoint the ledger cosigned', (s) => s.sync.cosignedSize ?? []);
    c('sync_rounds_total', 'sync rounds started', sc((k) => k.rounds));
    c('sync_requests_total', 'requests sent to the ledger', sc((k) => k.requests));
    c('sync_uploads_total', 'uploads the ledger answered', sc((k) => k.uploads));
    c('sync_sent_bytes_total', 'upload body bytes sent', sc((k) => k.bytesSent));
    c('sync_entries_total', 'leaves by the ledger\'s verdict: stored, duplicate, rejected (stored but not a verified frame)', (s) => {
      const k = s.sync.counters;
      return k === undefined ? [] : [[{ result: 'stored' }, k.entriesStored], [{ result: 'duplicate' }, k.entriesDuplicate], [{ result: 'rejected' }, k.entriesRejected]];
    }, ['result']);
    c('sync_checkpoints_accepted_total', 'checkpoints the ledger accepted and cosigned', sc((k) => k.checkpointsAccepted));
    c('sync_parse_errors_total', 'ledger answers that failed to parse or check', sc((k) => k.parseErrors));
    c('sync_missing_chains_total', 'leaves sent without their certificate chain', sc((k) => k.missingChains));
    c('sync_errors_total', 'failed sync rounds by code', (s) => byCode(s.sync.counters?.errors ?? {}), ['code']);

    g('mqtt_connected', '1 while connected to the MQTT broker', (s) => (s.mqtt.connected ? 1 : 0));
    c('mqtt_published_total', 'MQTT state messages published', (s) => s.mqtt.published);
    c('mqtt_dropped_total', 'MQTT messages not sent, by reason', (s) => Object.entries(s.mqtt.dropped).map(([reason, n]): [Labels, number] => [{ reason }, n]), ['reason']);
    c('mqtt_coalesced_total', 'state updates replaced by a newer one within minIntervalMs', (s) => s.mqtt.coalesced);
  }
}
