/**
 * Prometheus metrics of the ledger service (docs/ledger.md "Metrics"), on a prom-client Registry of
 * its own (never the global one: two ledgers in one test process, or a host application, do not
 * mix). Three sources: the core's counters (Ledger.stats(), copied at scrape time by collect()
 * callbacks, so nothing is counted twice), the HTTP layer's requests (by route pattern, method and
 * status class — route patterns, never raw URLs, so labels stay bounded whatever clients send), and
 * alerts (fork, bad proof, entry conflict, equivocation) by kind and level, fed by the core's
 * onAlert. Labels from the core's counters are error codes (a fixed set).
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { LedgerAlert, LedgerStats } from '../types.js';

export const LEDGER_METRIC_PREFIX = 'packchain_ledger_';

export interface LedgerMetricsOptions {
  /** Node's process and runtime metrics (process_*, nodejs_*) on the same registry (default true). */
  readonly processMetrics?: boolean;
}

export class LedgerMetrics {
  readonly registry = new Registry();
  #stats: (() => LedgerStats) | undefined;
  readonly #requests: Counter;
  readonly #duration: Histogram;
  readonly #alerts: Counter;
  #alertsTotal = 0;

  constructor(o: LedgerMetricsOptions = {}) {
    if (o.processMetrics !== false) collectDefaultMetrics({ register: this.registry });
    const p = LEDGER_METRIC_PREFIX;
    const reg = [this.registry];
    this.#requests = new Counter({ name: `${p}http_requests_total`, help: 'HTTP requests by route pattern, method and status', labelNames: ['route', 'method', 'status'], registers: reg });
    this.#duration = new Histogram({
      name: `${p}http_request_duration_seconds`,
      help: 'HTTP request duration by route pattern, seconds',
      labelNames: ['route'],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: reg,
    });
    this.#alerts = new Counter({ name: `${p}alerts_total`, help: 'alerts raised: fork (checkpoint-conflict), bad-proof, entry-conflict, equivocation', labelNames: ['kind', 'level'], registers: reg });
    const stat = (name: string, help: string, read: (s: LedgerStats) => number | Record<string, number>, label?: string): void => {
      const c: Counter = new Counter({
        name: `${p}${name}`,
        help,
        labelNames: label === undefined ? [] : [label],
        registers: reg,
        collect: () => {
          c.reset();
          const s = this.#stats?.();
          if (s === undefined) return;
          const v = read(s);
          if (typeof v === 'number') c.inc(Math.max(0, v));
          else for (const [k, n] of Object.entries(v)) c.inc({ [label ?? 'code']: k }, Math.max(0, n));
        },
      });
    };
    stat('uploads_total', 'uploads accepted (answered 200)', (s) => s.uploads);
    stat('uploads_refused_total', 'uploads refused, by code', (s) => s.uploadsRefused, 'code');
    stat('entries_stored_total', 'log leaves newly stored', (s) => s.entriesStored);
    stat('entries_duplicate_total', 'log leaves uploaded again (already held, stored nothing)', (s) => s.duplicates);
    stat('frames_stored_total', 'verified frames entered into pack history (first sighting)', (s) => s.framesStored);
    stat('frames_seen_again_total', 'verified frames another gateway (or a re-upload) carried again: a sighting only', (s) => s.framesSeenAgain);
    stat('frames_rejected_total', 'leaves stored but refused as frames, by verdict code', (s) => s.framesRejected, 'code');
    stat('checkpoints_cosigned_total', 'gateway checkpoints accepted and cosigned as witness', (s) => s.checkpointsCosigned);
    stat('checkpoint_conflicts_total', 'checkpoints refused as a fork (CHECKPOINT_CONFLICT)', (s) => s.conflicts);
    stat('bad_proofs_total', 'consistency proofs that failed (CONSISTENCY_PROOF_INVALID)', (s) => s.badProofs);
    stat('equivocations_total', 'devices that signed two frames with one counter', (s) => s.equivocations);
    stat('auth_failures_total', 'gateway requests refused by authentication', (s) => s.authFailures);
    stat('replays_total', 'gateway requests refused as replays (nonce seen)', (s) => s.replays);
    const last = new Gauge({ name: `${p}alerts_raised`, help: 'alerts raised since start (all kinds): alert when it rises', registers: reg, collect: () => { last.set(this.#alertsTotal); } });
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The core's counters, read at every scrape. */
  bindStats(read: () => LedgerStats): void {
    this.#stats = read;
  }

  /** Counts an alert (the core's onAlert). */
  alert(a: LedgerAlert): void {
    this.#alertsTotal++;
    this.#alerts.inc({ kind: a.kind, level: a.level });
  }

  /** Counts one answered request. `route` is the route pattern (e.g. /api/v1/packs/:serial), never the raw URL. */
  request(route: string, method: string, status: number, seconds: number): void {
    this.#requests.inc({ route, method, status: String(status) });
    if (Number.isFinite(seconds) && seconds >= 0) this.#duration.observe({ route }, seconds);
  }

  render(): Promise<string> {
    return this.registry.metrics();
  }
}
